"""network: subnets per AZ and kind, NAT per environment, flow logs, and security groups without public ingress."""

from __future__ import annotations

import ipaddress

import pytest

from generator import config

from conftest import as_list, grants, one_resource, resources_of_type, sources

ENVS = ("dev", "staging", "prod")


@pytest.mark.parametrize("env", ENVS)
def test_vpc_uses_the_environment_range_with_dns(templates, env):
    vpc = one_resource(templates[env]["network"], "AWS::EC2::VPC")["Properties"]
    assert vpc["CidrBlock"] == config.get(env).vpc_cidr
    assert vpc["EnableDnsHostnames"] is True and vpc["EnableDnsSupport"] is True


@pytest.mark.parametrize("env", ENVS)
def test_each_az_has_a_public_private_and_data_subnet_chosen_with_getazs(templates, env):
    cfg = config.get(env)
    subnets = resources_of_type(templates[env]["network"], "AWS::EC2::Subnet")
    assert len(subnets) == 3 * cfg.az_count
    vpc = ipaddress.ip_network(cfg.vpc_cidr)
    cidrs = [ipaddress.ip_network(s["Properties"]["CidrBlock"]) for s in subnets.values()]
    assert all(c.subnet_of(vpc) for c in cidrs)
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1:])
    for kind in ("Public", "Private", "Data"):
        of_kind = [s["Properties"] for title, s in subnets.items() if title.startswith(f"{kind}Subnet")]
        assert sorted(az_index(s) for s in of_kind) == list(range(cfg.az_count)), f"one {kind} subnet per AZ"
        assert not any(s["MapPublicIpOnLaunch"] for s in of_kind)


def az_index(subnet_props: dict) -> int:
    """Which of the region's AZs (by Fn::GetAZs position, never a hard-coded name) a subnet is placed in."""
    index, azs = subnet_props["AvailabilityZone"]["Fn::Select"]
    assert azs == {"Fn::GetAZs": ""}, "AZs come from the region the stack is deployed in"
    return index


@pytest.mark.parametrize("env, nat_count", [("dev", 1), ("staging", 1), ("prod", 3)])
def test_nat_gateways_one_or_one_per_az(templates, env, nat_count):
    assert len(resources_of_type(templates[env]["network"], "AWS::EC2::NatGateway")) == nat_count


def routes_by_table(template: dict) -> dict[str, list[dict]]:
    routes: dict[str, list[dict]] = {}
    for r in resources_of_type(template, "AWS::EC2::Route").values():
        routes.setdefault(r["Properties"]["RouteTableId"]["Ref"], []).append(r["Properties"])
    return routes


def table_of(template: dict, subnet: str) -> str:
    for a in resources_of_type(template, "AWS::EC2::SubnetRouteTableAssociation").values():
        if a["Properties"]["SubnetId"] == {"Ref": subnet}:
            return a["Properties"]["RouteTableId"]["Ref"]
    raise AssertionError(f"{subnet} has no route table")


def default_route_target(template: dict, subnet: str) -> tuple[str, str] | None:
    """(target kind, logical id) of the 0.0.0.0/0 route of a subnet's table, or None if it has none."""
    table = table_of(template, subnet)
    targets = [(kind, r[kind]["Ref"]) for r in routes_by_table(template).get(table, [])
               if r.get("DestinationCidrBlock") == "0.0.0.0/0" for kind in ("NatGatewayId", "GatewayId") if kind in r]
    assert len(targets) <= 1, f"{subnet}: several default routes {targets}"
    return targets[0] if targets else None


@pytest.mark.parametrize("env", ENVS)
def test_every_private_subnet_routes_to_a_nat_in_its_own_az_in_prod_or_to_the_one_nat_elsewhere(templates, env):
    """Prod survives the loss of an AZ (no cross-AZ NAT dependency); dev and staging pay for one NAT."""
    t = templates[env]["network"]
    r = t["Resources"]
    cfg = config.get(env)
    nats_used = set()
    for title, subnet in resources_of_type(t, "AWS::EC2::Subnet").items():
        if not title.startswith("PrivateSubnet"):
            continue
        _kind, nat = default_route_target(t, title)
        assert r[nat]["Type"] == "AWS::EC2::NatGateway", f"{title} must egress through a NAT gateway"
        nat_subnet = r[nat]["Properties"]["SubnetId"]["Ref"]
        assert default_route_target(t, nat_subnet)[1] == "InternetGateway", f"{nat} must sit in a public subnet"
        if cfg.nat_per_az:
            assert az_index(r[nat_subnet]["Properties"]) == az_index(subnet["Properties"]), f"{title}: {nat}"
        nats_used.add(nat)
    assert len(nats_used) == (cfg.az_count if cfg.nat_per_az else 1)


@pytest.mark.parametrize("env", ENVS)
def test_data_subnets_have_no_route_to_the_internet_and_public_subnets_route_through_the_internet_gateway(
        templates, env):
    t = templates[env]["network"]
    for title in resources_of_type(t, "AWS::EC2::Subnet"):
        if title.startswith("DataSubnet"):
            assert table_of(t, title) not in routes_by_table(t), f"{title} must not reach the internet"
        elif title.startswith("PublicSubnet"):
            _kind, gateway = default_route_target(t, title)
            assert t["Resources"][gateway]["Type"] == "AWS::EC2::InternetGateway"


@pytest.mark.parametrize("env", ENVS)
def test_s3_gateway_endpoint_serves_private_and_data_route_tables(templates, env):
    t = templates[env]["network"]
    endpoint = t["Resources"]["S3GatewayEndpoint"]["Properties"]
    assert endpoint["VpcEndpointType"] == "Gateway"
    tables = {r["Ref"] for r in endpoint["RouteTableIds"]}
    cfg = config.get(env)
    assert tables == {table_of(t, f"{kind}Subnet{az}") for kind in ("Private", "Data")
                      for az in range(1, cfg.az_count + 1)}


@pytest.mark.parametrize("env", ENVS)
def test_flow_logs_go_to_an_encrypted_log_group_with_retention(templates, env):
    t = templates[env]["network"]
    flow = one_resource(t, "AWS::EC2::FlowLog")["Properties"]
    assert flow["TrafficType"] == "ALL" and flow["ResourceType"] == "VPC"
    assert sources(templates, env, "network", flow["ResourceId"]) == {("network", "Vpc")}, "the whole VPC"
    group = t["Resources"][flow["LogGroupName"]["Ref"]]["Properties"]
    assert group["RetentionInDays"] == config.get(env).log_retention_days
    [(_, key)] = sources(templates, env, "network", group["KmsKeyId"])
    assert t["Resources"][key]["Properties"]["EnableKeyRotation"] is True


def ingress_rules(template: dict) -> list[dict]:
    rules = [r for g in resources_of_type(template, "AWS::EC2::SecurityGroup").values()
             for r in g["Properties"].get("SecurityGroupIngress", [])]
    return rules + [r["Properties"] for r in resources_of_type(template, "AWS::EC2::SecurityGroupIngress").values()]


@pytest.mark.parametrize("env", ENVS)
def test_no_ingress_from_anywhere(templates, env):
    for rule in ingress_rules(templates[env]["network"]):
        assert rule.get("CidrIp") not in ("0.0.0.0/0",) and rule.get("CidrIpv6") != "::/0"
        assert "SourceSecurityGroupId" in rule, "ingress only by group reference"


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("group, port", [("DatabaseSecurityGroup", 5432), ("CacheSecurityGroup", 6379),
                                         ("FileSystemSecurityGroup", 2049)])
def test_data_stores_are_reachable_only_on_their_port_from_the_task_group(templates, env, group, port):
    """E.g. the file system admits TCP 2049 from the processing tasks' group and nothing else, and sends nothing;
    the database also admits the bootstrap function's group (the schema tier applies migrations), the cache the API
    function's (GET /videos/{videoId} reads progress), on 6379 only."""
    t = templates[env]["network"]
    props = t["Resources"][group]["Properties"]
    standalone = [r["Properties"] for r in resources_of_type(t, "AWS::EC2::SecurityGroupIngress").values()
                  if sources(templates, env, "network", r["Properties"]["GroupId"]) == {("network", group)}]
    admitted = {(next(iter(sources(templates, env, "network", r.get("SourceSecurityGroupId")) or {("", "")}))[1]
                  if not (set(r) & {"CidrIp", "CidrIpv6", "SourcePrefixListId"}) else "an address range",
                  r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in props["SecurityGroupIngress"] + standalone}
    also = {"DatabaseSecurityGroup": ["DatabaseBootstrapSecurityGroup"], "CacheSecurityGroup": [
        "ApiFunctionSecurityGroup"]}
    groups = ["TaskSecurityGroup", *also.get(group, [])]
    assert admitted == {(g, "tcp", port, port) for g in groups}
    assert [r["CidrIp"] for r in props["SecurityGroupEgress"]] == ["255.255.255.255/32"], "no egress"


def egress_of(templates, env: str, group: str) -> set[tuple]:
    """Where a group may send: (destination, protocol, from port, to port), the destination an address range or a
    (template, group) reference, over its inline rules and the standalone SecurityGroupEgress resources."""
    t = templates[env]["network"]
    standalone = [r["Properties"] for r in resources_of_type(t, "AWS::EC2::SecurityGroupEgress").values()
                  if sources(templates, env, "network", r["Properties"]["GroupId"]) == {("network", group)}]
    return {(r.get("CidrIp") or r.get("CidrIpv6") or r.get("DestinationPrefixListId")
             or next(iter(sources(templates, env, "network", r.get("DestinationSecurityGroupId")))),
             r["IpProtocol"], r["FromPort"], r["ToPort"])
            for r in t["Resources"][group]["Properties"]["SecurityGroupEgress"] + standalone}


def ingress_rules_of(templates, env: str, group: str) -> list[dict]:
    t = templates[env]["network"]
    standalone = [r["Properties"] for r in resources_of_type(t, "AWS::EC2::SecurityGroupIngress").values()
                  if sources(templates, env, "network", r["Properties"]["GroupId"]) == {("network", group)}]
    return t["Resources"][group]["Properties"]["SecurityGroupIngress"] + standalone


HTTPS_OUT = ("0.0.0.0/0", "tcp", 443, 443)


@pytest.mark.parametrize("env", ENVS)
def test_the_api_function_group_sends_https_out_and_redis_to_the_cache_only(templates, env):
    """The API function reaches AWS APIs over HTTPS and the cache on 6379 (GET's progress), no other data store:
    the egress side of the cache's ingress rule."""
    assert egress_of(templates, env, "ApiFunctionSecurityGroup") == {
        HTTPS_OUT, (("network", "CacheSecurityGroup"), "tcp", 6379, 6379)}


@pytest.mark.parametrize("env", ENVS)
def test_only_the_api_function_and_the_tasks_reach_the_cache_and_the_scheduler_only_https(templates, env):
    """Least privilege on the network: the scheduler has no cache user, so its group must not reach Redis either.
    Over every group of the network tier: the cache admits exactly the API function's and the tasks' groups, only
    those two send to the cache, and the scheduler's group sends HTTPS and nothing else (no data store)."""
    t = templates[env]["network"]
    groups = resources_of_type(t, "AWS::EC2::SecurityGroup")
    cache = ("network", "CacheSecurityGroup")
    admitted_by_cache = {sources(templates, env, "network", r["SourceSecurityGroupId"]).pop()
                         for r in ingress_rules_of(templates, env, "CacheSecurityGroup")}
    reaching_cache = {("network", g) for g in groups
                      if any(dest == cache for dest, *_ in egress_of(templates, env, g))}
    expected = {("network", "ApiFunctionSecurityGroup"), ("network", "TaskSecurityGroup")}
    assert admitted_by_cache == expected
    assert reaching_cache == expected
    assert egress_of(templates, env, "SchedulerFunctionSecurityGroup") == {HTTPS_OUT}
    for store in ("DatabaseSecurityGroup", "CacheSecurityGroup", "FileSystemSecurityGroup"):
        assert ("network", "SchedulerFunctionSecurityGroup") not in {
            sources(templates, env, "network", r["SourceSecurityGroupId"]).pop()
            for r in ingress_rules_of(templates, env, store)}, f"{store} admits the scheduler"


def test_the_endpoints_admit_the_group_of_every_function_in_the_vpc_and_nothing_else(templates):
    """With private DNS an interface endpoint is the only way to its service (prod): a VPC-attached function whose
    group the endpoints' group does not admit on 443 has no route to Step Functions or SNS at all (the scheduler's
    own group, e.g.). The tasks' group too; no data store's group (they call no AWS API)."""
    admitted = {(sources(templates, "prod", "network", r["SourceSecurityGroupId"]).pop(), r["FromPort"], r["ToPort"])
                for r in ingress_rules_of(templates, "prod", "EndpointSecurityGroup")}
    function_groups = {group for tier, template in templates["prod"].items()
                       for function in resources_of_type(template, "AWS::Lambda::Function").values()
                       for g in function["Properties"].get("VpcConfig", {}).get("SecurityGroupIds", [])
                       for group in sources(templates, "prod", tier, g)}
    assert ("network", "SchedulerFunctionSecurityGroup") in function_groups
    assert admitted == {(g, 443, 443) for g in function_groups | {("network", "TaskSecurityGroup")}}


def test_function_and_task_groups_accept_no_ingress(templates):
    r = templates["dev"]["network"]["Resources"]
    for group in ("TaskSecurityGroup", "ApiFunctionSecurityGroup", "SchedulerFunctionSecurityGroup",
                  "DatabaseBootstrapSecurityGroup"):
        assert r[group]["Properties"]["SecurityGroupIngress"] == [], group


def test_outputs_cover_vpc_subnets_per_kind_and_every_group(templates):
    outputs = templates["prod"]["network"]["Outputs"]
    assert {"VpcId", "PublicSubnetIds", "PrivateSubnetIds", "DataSubnetIds", "TaskSecurityGroupId",
            "ApiFunctionSecurityGroupId", "SchedulerFunctionSecurityGroupId", "DatabaseSecurityGroupId",
            "CacheSecurityGroupId", "FileSystemSecurityGroupId"} <= set(outputs)
    for kind in ("Public", "Private", "Data"):
        assert sources(templates, "prod", "network", outputs[f"{kind}SubnetIds"]["Value"]) == {
            ("network", title) for title in resources_of_type(templates["prod"]["network"], "AWS::EC2::Subnet")
            if title.startswith(f"{kind}Subnet")}, f"{kind}SubnetIds lists every {kind.lower()} subnet and no other"


def _sub_arn(value) -> str:
    """`arn:${AWS::Partition}:sns:...:<name>` of an endpoint policy's Resource, as written (Fn::Sub)."""
    return value["Fn::Sub"] if isinstance(value, dict) else value


def test_vpc_functions_publish_to_sns_through_an_endpoint_admitting_exactly_their_topics(templates):
    """Prod keeps every AWS call of the VPC-attached functions inside the VPC: SNS too (issue 25). Each topic such
    a function may publish to (its role's sns:Publish, traced to the notification tier's topic) is admitted by the
    SNS endpoint's policy, named by partition, region, account and physical name, and no other topic is; its
    security group may reach the endpoint. Step Functions publishes from the service and is not covered here."""
    t = templates["prod"]
    network = t["network"]["Resources"]
    endpoint = network["SnsEndpoint"]["Properties"]
    assert endpoint["VpcEndpointType"] == "Interface" and endpoint["PrivateDnsEnabled"] is True
    [statement] = endpoint["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and as_list(statement["Action"]) == ["sns:Publish"]
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}
    admitted = {_sub_arn(r) for r in as_list(statement["Resource"])}
    endpoint_groups = {sources(templates, "prod", "network", rule["SourceSecurityGroupId"]).pop()
                       for rule in network["EndpointSecurityGroup"]["Properties"]["SecurityGroupIngress"]}

    published = set()
    for tier, template in sorted(t.items()):
        for title, function in resources_of_type(template, "AWS::Lambda::Function").items():
            props = function["Properties"]
            if "VpcConfig" not in props:
                continue
            [(role_tier, role)] = sources(templates, "prod", tier, props["Role"])
            for tier_and_topic in grants(templates, "prod", role_tier, role).get("sns:Publish", set()):
                topic_tier, topic = tier_and_topic
                name = t[topic_tier]["Resources"][topic]["Properties"]["TopicName"]
                published.add(f"arn:${{AWS::Partition}}:sns:${{AWS::Region}}:${{AWS::AccountId}}:{name}")
                groups = {sources(templates, "prod", tier, g).pop() for g in props["VpcConfig"]["SecurityGroupIds"]}
                assert groups & endpoint_groups, f"{tier}/{title} cannot reach the SNS endpoint"
    assert published, "the scheduler publishes to the error topic from the VPC"
    assert admitted == published


@pytest.mark.parametrize("env", ("dev", "staging"))
def test_environments_without_interface_endpoints_reach_sns_through_the_nat(templates, env):
    assert not config.get(env).vpc_endpoints
    assert "SnsEndpoint" not in templates[env]["network"]["Resources"]
