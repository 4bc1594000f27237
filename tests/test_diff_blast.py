"""Blast radius of the review diff: a replacement followed through references, outputs and parameters."""

from __future__ import annotations

import dataclasses
import json

import pytest
from test_diff import generated, new, old  # noqa: F401 - fixtures

from generator import config
from generator.diff import REPLACED, diff_templates, render
from generator.diff.cli import failing
from generator.graph import references
from generator.render import render_environment

ENV = "dev"


@pytest.fixture(scope="module")
def vpc_moved(generated):  # noqa: F811 - the fixture imported above
    """The dev templates before and after a VPC CIDR change, and the report."""
    cfg = dataclasses.replace(config.get(ENV), vpc_cidr="10.11.0.0/16")
    after = {f"{ENV}/{n}": json.loads(t) for n, t in render_environment(cfg).items()}
    return generated, after, diff_templates(generated, after)


def consequence(report, key, lid):
    return next(c for c in report.consequences if (c.stack, c.logical_id) == (key, lid))


def test_vpc_cidr_change_replaces_what_references_the_vpc_and_subnets(vpc_moved):
    _, _, report = vpc_moved
    direct = {rc.logical_id for _, rc in report.replacements}
    assert "Vpc" in direct
    groups = consequence(report, f"{ENV}/network.json", "DatabaseSecurityGroup")
    assert (groups.effect, groups.property) == (REPLACED, "VpcId")
    assert groups.chain == ["network/DatabaseSecurityGroup replaced", "VpcId", "network/Vpc replaced", "CidrBlock"]
    # Across stacks: subnet -> network output -> parent -> storage parameter -> create-only SubnetId.
    mount = consequence(report, f"{ENV}/storage.json", "MountTarget1")
    assert mount.effect == REPLACED
    assert mount.chain[:2] == ["storage/MountTarget1 replaced", "SubnetId"]
    assert "network output PrivateSubnetIds" in mount.chain and mount.chain[-1] == "CidrBlock"
    assert mount.chain[-2].startswith("network/PrivateSubnet") and mount.chain[-2].endswith(" replaced")
    # Never a directly replaced resource again.
    assert not {c.logical_id for c in report.consequences if c.stack == f"{ENV}/network.json"} & direct


def test_vpc_cidr_change_reaches_every_tier_that_consumes_network_ids(vpc_moved):
    _, after, report = vpc_moved
    consumers = {key.split("/")[1] for key, t in after.items() for p in (t.get("Parameters") or {})
                 if key != f"{ENV}/main.json" and p in (after[f"{ENV}/network.json"].get("Outputs") or {})}
    reached = {c.stack.split("/")[1] for c in report.consequences}
    assert consumers and consumers <= reached
    assert {"storage.json", "cache.json", "workflow.json", "api.json"} <= reached
    assert consequence(report, f"{ENV}/cache.json", "CacheReplicationGroup").effect == "updated"


def test_every_stateful_resource_reached_is_at_the_top(vpc_moved):
    _, _, report = vpc_moved
    from generator.aws_facts import STATEFUL_TYPES
    reached = {(c.stack, c.logical_id) for c in report.consequences if c.type in STATEFUL_TYPES}
    flagged = {(r.stack, r.logical_id) for r in report.data_loss if r.chain}
    assert reached and reached == flagged
    assert (f"{ENV}/storage.json", "Database") in flagged
    text = render(report, "text")
    assert text.index("DATA-LOSS RISK") < text.index("Blast radius") < text.index(f"== {ENV} ==")
    assert "storage/Database updated <- VPCSecurityGroups" in text


def test_consequences_are_in_json_markdown_and_fail_on(vpc_moved):
    _, _, report = vpc_moved
    body = json.loads(render(report, "json"))
    n = sum(c["effect"] != "updated" for c in body["consequences"])
    assert body["summary"]["consequential_replacements"] == n > 0
    mount = next(c for c in body["consequences"] if c["logical_id"] == "MountTarget1")
    assert mount["chain"][0] == "storage/MountTarget1 replaced" and mount["stack"] == f"{ENV}/storage.json"
    assert "Blast radius" in render(report, "markdown")
    [reason] = failing(report, ["replacement"])
    assert f"{len(report.replacements) + n} resource(s)" in reason and f"({n} as a consequence)" in reason


def vpc_template(cidr: str) -> dict:
    return {"Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": cidr}},
        "Group": {"Type": "AWS::EC2::SecurityGroup",
                  "Properties": {"GroupDescription": "g", "VpcId": {"Ref": "Vpc"}}},
        "Rule": {"Type": "AWS::EC2::SecurityGroupIngress",
                 "Properties": {"GroupId": {"Fn::GetAtt": ["Group", "GroupId"]}, "IpProtocol": "-1",
                                "CidrIp": "10.0.0.0/8"}},
        "Unrelated": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}}},
        "Outputs": {"VpcId": {"Value": {"Ref": "Vpc"}, "Export": {"Name": "shared-vpc"}}}}


def importer() -> dict:
    return {"Resources": {"Other": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
        "GroupDescription": "o", "VpcId": {"Fn::ImportValue": "shared-vpc"}}}}}


def test_fixed_point_follows_chains_of_any_length_and_exports():
    before = {"x/a.json": vpc_template("10.0.0.0/16"), "x/b.json": importer()}
    after = {"x/a.json": vpc_template("10.1.0.0/16"), "x/b.json": importer()}
    report = diff_templates(before, after)
    got = {(c.stack, c.logical_id): c.chain_text for c in report.consequences}
    assert got == {
        ("x/a.json", "Group"): "a/Group replaced <- VpcId <- a/Vpc replaced <- CidrBlock",
        ("x/a.json", "Rule"): "a/Rule replaced <- GroupId <- a/Group replaced <- VpcId <- a/Vpc replaced <- CidrBlock",
        ("x/b.json", "Other"): "b/Other replaced <- VpcId <- a output VpcId <- a/Vpc replaced <- CidrBlock",
    }


def test_a_seed_that_may_be_replaced_gives_consequences_that_may_be_replaced():
    def t(multi_az: bool) -> dict:
        return {"Resources": {
            "Db": {"Type": "AWS::RDS::DBInstance", "Properties": {"MultiAZ": multi_az}},
            "Group": {"Type": "AWS::EC2::SecurityGroup",
                      "Properties": {"GroupDescription": "g", "VpcId": {"Fn::GetAtt": ["Db", "Endpoint.Address"]}}}}}
    [c] = diff_templates({"x/a.json": t(False)}, {"x/a.json": t(True)}).consequences
    assert (c.logical_id, c.effect) == ("Group", "may be replaced")


def test_references_skip_sub_literals_and_local_variables():
    value = {"Fn::Sub": ["${!Literal} ${Local} ${A.Arn} ${B}", {"Local": {"Ref": "C"}}]}
    assert sorted(n for _, n, _ in references(value)) == ["A", "B", "C"]


def test_no_replacement_no_consequences(old, new):  # noqa: F811
    for t in new.values():  # in-place updates everywhere: no new physical id, nothing follows
        for r in t["Resources"].values():
            if r["Type"] == "AWS::Logs::LogGroup":
                r["Properties"]["RetentionInDays"] = 3653
    report = diff_templates(old, new)
    assert report.has_changes and report.consequences == []


def test_fail_on_stateful_counts_replaced_stateful_resources_not_interruptions(old, new, vpc_moved):  # noqa: F811
    _, _, moved = vpc_moved
    assert moved.data_loss and failing(moved, ["stateful"]) == []  # only updates (interruptions) reached
    for t in new.values():
        for r in t["Resources"].values():
            if r["Type"] == "AWS::RDS::DBInstance":
                r["Properties"]["StorageEncrypted"] = not r["Properties"].get("StorageEncrypted", False)
    [reason] = failing(diff_templates(old, new), ["stateful"])
    # The database and the two log groups named after its identifier (issue 25).
    assert reason.startswith("3 stateful resource(s)") and "storage.json Database," in reason
    assert "storage.json DatabasePostgresqlLogGroup" in reason
