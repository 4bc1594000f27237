"""The network route a call takes from where its caller runs to the AWS service it calls.

From a subnet: a gateway endpoint for the service on the subnet's route table (S3, DynamoDB: the route table's
prefix-list route wins over the default route), else an interface endpoint for the service in the VPC with private
DNS (the service's public name resolves to it everywhere in the VPC), else the default route's NAT gateway, else
no route. https://docs.aws.amazon.com/vpc/latest/privatelink/gateway-endpoints.html
https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html#interface-endpoint-private-dns

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


@dataclass(frozen=True)
class Route:
    kind: str  # GATEWAY, INTERFACE, NAT, SERVICE_SIDE, IN_VPC, PUBLIC or NONE
    where: str = ""  # the endpoint's or NAT gateway's "<env>/<template>.json <logical id>"
    policy: Policy | None = None

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


def routes(r: Renderer, env: str, tier: str, subnet_value: object, service: str) -> list[Route]:
    """Every route the call to `service` ("dynamodb", "ecr.api", ...) takes from the subnets a value names, one
    per distinct route (a caller spread over subnets whose routes differ takes each of them)."""
    stacks = r.stacks
    named = subnets(stacks, tier, subnet_value)
    if not named:
        return [PUBLIC_ROUTE]  # not attached to a VPC: the service's public endpoint, no endpoint policy
    endpoints = [(t, i, e) for t, i, e in graph.each_resource(stacks, "AWS::EC2::VPCEndpoint")
                 if endpoint_service(r, t, e) == service]
    found: dict[str, Route] = {}
    for subnet in named:
        route = _route(r, env, subnet, endpoints)
        found.setdefault(route.describe(), route)
    return [found[k] for k in sorted(found)]


def _route(r: Renderer, env: str, subnet: tuple[str, str], endpoints: list[tuple[str, str, dict]]) -> Route:
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
            return Route(INTERFACE, f"{env}/{t}.json {i}", endpoint_policy(r, env, t, i, e, INTERFACE))
    for table in tables:
        for t, _i, route in graph.each_resource({table[0]: stacks[table[0]]}, "AWS::EC2::Route"):
            p = route.get("Properties", {})
            if (graph.resolve(stacks, t, p.get("RouteTableId")) == table
                    and p.get("DestinationCidrBlock") == "0.0.0.0/0" and "NatGatewayId" in p):
                nat = graph.resolve(stacks, t, p["NatGatewayId"])
                return Route(NAT, f"{env}/{nat[0]}.json {nat[1]}" if nat else "")
    return Route(NONE, f"{env}/{subnet[0]}.json {subnet[1]}")


def endpoint_policy(r: Renderer, env: str, tier: str, logical_id: str, endpoint: dict, kind: str) -> Policy:
    """The endpoint's policy; without one, AWS attaches the default, which allows everything
    (https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html#default-endpoint-policy)."""
    document = endpoint.get("Properties", {}).get("PolicyDocument")
    statements = (r.value(tier, document).get("Statement") if document
                  else [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}])
    return Policy(kind, f"{env}/{tier}.json {logical_id}", tuple(statements if isinstance(statements, list)
                                                                  else [statements]))
