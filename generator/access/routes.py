"""The network route a call takes from where its caller runs to the AWS service it calls.

From a subnet: a gateway endpoint for the service on the subnet's route table (S3, DynamoDB: the route table's
prefix-list route wins over the default route), else an interface endpoint for the service in the VPC with private
DNS (the service's public name resolves to it everywhere in the VPC), else the default route's NAT gateway, else
no route. https://docs.aws.amazon.com/vpc/latest/privatelink/gateway-endpoints.html
https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html#interface-endpoint-private-dns

An interface endpoint answers only callers its security groups admit on 443 (and whose own groups let HTTPS out to
it): with private DNS the service's name leads nowhere else, so a caller whose group is not admitted has no route
(https://docs.aws.amazon.com/vpc/latest/privatelink/create-interface-endpoint.html#interface-endpoint-prerequisites).

Calls AWS services make on our behalf (Step Functions' integrations, Lambda's log and dead-letter deliveries,
EventBridge's and API Gateway's invocations, KMS use by a service) leave from the service itself: no VPC endpoint
carries them ("service-side"). Connections inside the VPC (PostgreSQL, Redis, NFS) are no AWS API call.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator import graph
from generator.access.policy import GATEWAY, INTERFACE, Policy
from generator.access.values import Renderer

SERVICE_SIDE, IN_VPC, PUBLIC, NAT, NONE = "service-side", "in-VPC connection", "public endpoint", "NAT gateway", "none"
SUBNET = "AWS::EC2::Subnet"
SECURITY_GROUP = "AWS::EC2::SecurityGroup"
HTTPS_PORT = 443


@dataclass(frozen=True)
class Route:
    kind: str  # GATEWAY, INTERFACE, NAT, SERVICE_SIDE, IN_VPC, PUBLIC or NONE
    where: str = ""  # the endpoint's or NAT gateway's "<env>/<template>.json <logical id>"
    policy: Policy | None = None
    refused: str = ""  # why the route does not carry the call at all (security groups), else ""

    def describe(self) -> str:
        return f"the {self.kind} {self.where}" if self.where else self.kind


SERVICE_SIDE_ROUTE, IN_VPC_ROUTE, PUBLIC_ROUTE = Route(SERVICE_SIDE), Route(IN_VPC), Route(PUBLIC)


def subnets(stacks: graph.Stacks, tier: str, value: object) -> list[tuple[str, str]]:
    """The subnets (template, logical id) a value (a subnet list, a Ref, a comma-joined Output) names."""
    return sorted({(t, i) for t, i, _ in graph.trace(stacks, tier, value)
                   if i in (stacks[t].get("Resources") or {}) and stacks[t]["Resources"][i]["Type"] == SUBNET})


def route_tables(stacks: graph.Stacks, subnet: tuple[str, str]) -> list[tuple[str, str]]:
    tier, _ = subnet
    found = set()
    for t, _i, r in graph.each_resource({tier: stacks[tier]}, "AWS::EC2::SubnetRouteTableAssociation"):
        p = r.get("Properties", {})
        if graph.resolve(stacks, t, p.get("SubnetId")) == subnet:
            table = graph.resolve(stacks, t, p.get("RouteTableId"))
            if table:
                found.add(table)
    return sorted(found)


def endpoint_service(r: Renderer, tier: str, endpoint: dict) -> str:
    """The service an endpoint serves: `com.amazonaws.<region>.<service>` -> "<service>" ("ecr.dkr", "s3")."""
    name = r.text(tier, endpoint.get("Properties", {}).get("ServiceName"))
    return name.removeprefix(f"com.amazonaws.{r.region}.")


def security_groups(stacks: graph.Stacks, tier: str, value: object) -> list[tuple[str, str]]:
    """The security groups (template, logical id) a value (a group list, a Ref, a Parameter) names."""
    return sorted({(t, i) for t, i, _ in graph.trace(stacks, tier, value)
                   if i in (stacks[t].get("Resources") or {}) and stacks[t]["Resources"][i]["Type"] == SECURITY_GROUP})


def routes(r: Renderer, env: str, tier: str, subnet_value: object, service: str,
           group_value: object = None) -> list[Route]:
    """Every route the call to `service` ("dynamodb", "ecr.api", ...) takes from the subnets a value names, one
    per distinct route (a caller spread over subnets whose routes differ takes each of them); `group_value` names
    the caller's security groups, which an interface endpoint's groups must admit."""
    stacks = r.stacks
    named = subnets(stacks, tier, subnet_value)
    if not named:
        return [PUBLIC_ROUTE]  # not attached to a VPC: the service's public endpoint, no endpoint policy
    endpoints = [(t, i, e) for t, i, e in graph.each_resource(stacks, "AWS::EC2::VPCEndpoint")
                 if endpoint_service(r, t, e) == service]
    callers = security_groups(stacks, tier, group_value)
    found: dict[str, Route] = {}
    for subnet in named:
        route = _route(r, env, subnet, endpoints, callers)
        found.setdefault(route.describe(), route)
    return [found[k] for k in sorted(found)]


def _rules(stacks: graph.Stacks, group: tuple[str, str], direction: str) -> list[tuple[str, dict]] | None:
    """(template, rule) of a group's inline and standalone rules in a direction ("Ingress", "Egress"); None for the
    egress of a group whose SecurityGroupEgress is absent or empty: EC2 then keeps its default rule, all egress
    allowed (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-ec2-securitygroup.html)."""
    inline = graph.resource(stacks, group).get("Properties", {}).get(f"SecurityGroup{direction}")
    if direction == "Egress" and not inline:
        return None
    found = [(group[0], rule) for rule in inline or []]
    for t, _i, r in graph.each_resource(stacks, f"AWS::EC2::SecurityGroup{direction}"):
        p = r.get("Properties", {})
        if graph.resolve(stacks, t, p.get("GroupId")) == group:
            found.append((t, p))
    return found


def _carries_https(rule: dict) -> bool:
    if str(rule.get("IpProtocol")) == "-1":
        return True
    try:
        return (str(rule.get("IpProtocol")) in ("tcp", "6")
                and int(rule["FromPort"]) <= HTTPS_PORT <= int(rule["ToPort"]))
    except (KeyError, TypeError, ValueError):
        return False


def _admits(stacks: graph.Stacks, endpoint_groups: list[tuple[str, str]], callers: list[tuple[str, str]]) -> bool:
    """Some caller group may send HTTPS to the endpoint (egress to anywhere, or to an endpoint group) and some
    endpoint group admits it (ingress from that caller group). Address-range ingress is not followed: the project
    admits by group reference only (rule VP2xx)."""
    for caller in callers:
        egress = _rules(stacks, caller, "Egress")
        sends = egress is None or any(
            _carries_https(rule) and (rule.get("CidrIp") == "0.0.0.0/0"
                                      or graph.resolve(stacks, t, rule.get("DestinationSecurityGroupId"))
                                      in endpoint_groups)
            for t, rule in egress)
        admitted = any(_carries_https(rule) and graph.resolve(stacks, t, rule.get("SourceSecurityGroupId")) == caller
                       for group in endpoint_groups for t, rule in _rules(stacks, group, "Ingress") or [])
        if sends and admitted:
            return True
    return False


def _route(r: Renderer, env: str, subnet: tuple[str, str], endpoints: list[tuple[str, str, dict]],
           callers: list[tuple[str, str]]) -> Route:
    stacks = r.stacks
    tables = route_tables(stacks, subnet)
    for t, i, e in endpoints:
        p = e.get("Properties", {})
        if p.get("VpcEndpointType", "Gateway") == "Gateway" and any(
                graph.resolve(stacks, t, rt) in tables for rt in p.get("RouteTableIds") or []):
            return Route(GATEWAY, f"{env}/{t}.json {i}", endpoint_policy(r, env, t, i, e, GATEWAY))
    for t, i, e in endpoints:
        p = e.get("Properties", {})
        if p.get("VpcEndpointType") == "Interface" and p.get("PrivateDnsEnabled") is True:
            endpoint_groups = security_groups(stacks, t, p.get("SecurityGroupIds"))
            refused = "" if _admits(stacks, endpoint_groups, callers) else (
                f"no security group of the endpoint ({_named(env, endpoint_groups)}) admits HTTPS from the "
                f"caller's ({_named(env, callers)})")
            return Route(INTERFACE, f"{env}/{t}.json {i}", endpoint_policy(r, env, t, i, e, INTERFACE), refused)
    for table in tables:
        for t, _i, route in graph.each_resource({table[0]: stacks[table[0]]}, "AWS::EC2::Route"):
            p = route.get("Properties", {})
            if (graph.resolve(stacks, t, p.get("RouteTableId")) == table
                    and p.get("DestinationCidrBlock") == "0.0.0.0/0" and "NatGatewayId" in p):
                nat = graph.resolve(stacks, t, p["NatGatewayId"])
                return Route(NAT, f"{env}/{nat[0]}.json {nat[1]}" if nat else "")
    return Route(NONE, f"{env}/{subnet[0]}.json {subnet[1]}")


def _named(env: str, groups: list[tuple[str, str]]) -> str:
    return ", ".join(f"{env}/{t}.json {i}" for t, i in groups) or "none"


def endpoint_policy(r: Renderer, env: str, tier: str, logical_id: str, endpoint: dict, kind: str) -> Policy:
    """The endpoint's policy; without one, AWS attaches the default, which allows everything
    (https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html#default-endpoint-policy)."""
    document = endpoint.get("Properties", {}).get("PolicyDocument")
    statements = (r.value(tier, document).get("Statement") if document
                  else [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}])
    return Policy(kind, f"{env}/{tier}.json {logical_id}", tuple(statements if isinstance(statements, list)
                                                                  else [statements]))
