"""network: subnets per AZ and kind, NAT per environment, flow logs, and security groups without public ingress."""

from __future__ import annotations

import ipaddress

import pytest

from generator import config

from conftest import one_resource, resources_of_type

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
        for az in range(cfg.az_count):
            props = subnets[f"{kind}Subnet{az + 1}"]["Properties"]
            assert props["AvailabilityZone"] == {"Fn::Select": [az, {"Fn::GetAZs": ""}]}
            assert props["MapPublicIpOnLaunch"] is False


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


@pytest.mark.parametrize("env", ENVS)
def test_private_subnets_egress_through_nat_and_data_subnets_have_no_internet_route(templates, env):
    t = templates[env]["network"]
    routes = routes_by_table(t)
    cfg = config.get(env)
    for az in range(1, cfg.az_count + 1):
        private = routes[table_of(t, f"PrivateSubnet{az}")]
        assert [r["DestinationCidrBlock"] for r in private] == ["0.0.0.0/0"] and "NatGatewayId" in private[0]
        expected_nat = f"NatGateway{az}" if cfg.nat_per_az else "NatGateway1"
        assert private[0]["NatGatewayId"] == {"Ref": expected_nat}
        assert table_of(t, f"DataSubnet{az}") not in routes, "data subnets must not reach the internet"
        public = routes[table_of(t, f"PublicSubnet{az}")]
        assert public[0]["GatewayId"] == {"Ref": "InternetGateway"}


@pytest.mark.parametrize("env", ENVS)
def test_s3_gateway_endpoint_serves_private_and_data_route_tables(templates, env):
    t = templates[env]["network"]
    endpoint = one_resource(t, "AWS::EC2::VPCEndpoint")["Properties"]
    assert endpoint["VpcEndpointType"] == "Gateway"
    tables = {r["Ref"] for r in endpoint["RouteTableIds"]}
    cfg = config.get(env)
    assert tables == {table_of(t, f"{kind}Subnet{az}") for kind in ("Private", "Data")
                      for az in range(1, cfg.az_count + 1)}


@pytest.mark.parametrize("env", ENVS)
def test_flow_logs_go_to_an_encrypted_log_group_with_retention(templates, env):
    t = templates[env]["network"]
    flow = one_resource(t, "AWS::EC2::FlowLog")["Properties"]
    assert flow["TrafficType"] == "ALL" and flow["ResourceId"] == {"Ref": "Vpc"}
    group = t["Resources"][flow["LogGroupName"]["Ref"]]["Properties"]
    assert group["RetentionInDays"] == config.get(env).log_retention_days
    assert group["KmsKeyId"] == {"Fn::GetAtt": ["FlowLogsKey", "Arn"]}
    assert t["Resources"]["FlowLogsKey"]["Properties"]["EnableKeyRotation"] is True


def ingress_rules(template: dict) -> list[dict]:
    rules = [r for g in resources_of_type(template, "AWS::EC2::SecurityGroup").values()
             for r in g["Properties"].get("SecurityGroupIngress", [])]
    return rules + [r["Properties"] for r in resources_of_type(template, "AWS::EC2::SecurityGroupIngress").values()]


@pytest.mark.parametrize("env", ENVS)
def test_no_ingress_from_anywhere(templates, env):
    for rule in ingress_rules(templates[env]["network"]):
        assert rule.get("CidrIp") not in ("0.0.0.0/0",) and rule.get("CidrIpv6") != "::/0"
        assert "SourceSecurityGroupId" in rule, "ingress only by group reference"


@pytest.mark.parametrize("group, port", [("DatabaseSecurityGroup", 5432), ("CacheSecurityGroup", 6379),
                                         ("FileSystemSecurityGroup", 2049)])
def test_data_groups_admit_only_the_processing_tasks_on_their_port(templates, group, port):
    props = templates["dev"]["network"]["Resources"][group]["Properties"]
    assert [(r["SourceSecurityGroupId"], r["FromPort"], r["ToPort"]) for r in props["SecurityGroupIngress"]] == [
        ({"Fn::GetAtt": ["TaskSecurityGroup", "GroupId"]}, port, port)]
    assert [r["CidrIp"] for r in props["SecurityGroupEgress"]] == ["255.255.255.255/32"], "no egress"


def test_api_function_and_tasks_accept_no_ingress(templates):
    r = templates["dev"]["network"]["Resources"]
    assert r["TaskSecurityGroup"]["Properties"]["SecurityGroupIngress"] == []
    assert r["ApiFunctionSecurityGroup"]["Properties"]["SecurityGroupIngress"] == []


def test_outputs_cover_vpc_subnets_per_kind_and_every_group(templates):
    outputs = templates["prod"]["network"]["Outputs"]
    assert {"VpcId", "PublicSubnetIds", "PrivateSubnetIds", "DataSubnetIds", "TaskSecurityGroupId",
            "ApiFunctionSecurityGroupId", "DatabaseSecurityGroupId", "CacheSecurityGroupId",
            "FileSystemSecurityGroupId"} <= set(outputs)
    assert outputs["PrivateSubnetIds"]["Value"] == {"Fn::Join": [",", [
        {"Ref": "PrivateSubnet1"}, {"Ref": "PrivateSubnet2"}, {"Ref": "PrivateSubnet3"}]]}
