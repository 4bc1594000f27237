"""generator/aws_facts.py: the one list of stateful types is true to AWS and used by every tool that needs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.helpers import valid_snapshot_types
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from deploytools import cfn
from generator import aws_facts
from generator.config import DEFAULT_REGION
from generator.diff import diff_templates

STATEFUL = sorted(aws_facts.STATEFUL_TYPES)


@pytest.mark.parametrize("rtype", [*STATEFUL, aws_facts.NESTED_STACK_TYPE])
def test_every_type_exists_in_the_pipeline_region(rtype):
    assert PROVIDER_SCHEMA_MANAGER.get_resource_schema(DEFAULT_REGION, rtype).schema["typeName"] == rtype
    assert aws_facts.resource_schema(rtype)["typeName"] == rtype


def test_every_retaining_policy_keeps_data():
    assert set(aws_facts.RETAINING_POLICY.values()) <= set(aws_facts.RETAINING_POLICIES)
    assert "Delete" not in aws_facts.RETAINING_POLICIES


def test_snapshot_exactly_where_cloudformation_supports_it():
    # DeletionPolicy "Snapshot" is valid only for the types listed in
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html
    # (cfn-lint's E3035 checks the same list); elsewhere the stack fails to deploy. Where it is supported, a
    # final snapshot is preferred to keeping a running (and billed) resource.
    snapshot = {t for t, policy in aws_facts.RETAINING_POLICY.items() if policy == "Snapshot"}
    assert snapshot == aws_facts.STATEFUL_TYPES & valid_snapshot_types


def test_sns_topic_is_not_counted_stateful():
    # Decided in aws_facts: a topic stores no messages and its subscriptions come back with the templates.
    assert "AWS::SNS::Topic" not in aws_facts.STATEFUL_TYPES


def _stack_with(rtype: str) -> dict:
    return {"Resources": {"Thing": {"Type": rtype, "Properties": {}}}}


@pytest.mark.parametrize("rtype", STATEFUL)
def test_the_review_diff_flags_a_removed_stateful_resource(rtype):
    report = diff_templates({"dev/storage.json": _stack_with(rtype)}, {"dev/storage.json": {"Resources": {}}})
    assert [(r.logical_id, r.type, r.risk) for r in report.data_loss] == [("Thing", rtype, "removed")]


class OneChangeSet:
    """describe_change_set with one page holding the given resource changes."""

    def __init__(self, *changes: dict):
        self.changes = changes

    def describe_change_set(self, ChangeSetName, NextToken=None):
        return {"Changes": [{"ResourceChange": rc} for rc in self.changes]}


@pytest.mark.parametrize("rtype", STATEFUL)
def test_the_deploy_report_flags_a_replaced_stateful_resource(rtype):
    fake = OneChangeSet({"Action": "Modify", "LogicalResourceId": "Thing", "Replacement": "True",
                         "ResourceType": rtype})
    [stack] = cfn.collect_changes(fake, "set", "app")
    assert stack.stateful == [f"Thing ({rtype}) is REPLACED"]


def test_neither_tool_flags_a_stateless_resource():
    rtype = "AWS::SNS::Topic"
    report = diff_templates({"dev/n.json": _stack_with(rtype)}, {"dev/n.json": {"Resources": {}}})
    assert report.data_loss == []
    fake = OneChangeSet({"Action": "Remove", "LogicalResourceId": "Thing", "ResourceType": rtype})
    assert cfn.collect_changes(fake, "set", "app")[0].stateful == []


def test_create_only_properties_come_from_the_schema():
    always, conditional = aws_facts.create_only("AWS::RDS::DBInstance")
    assert ("DBName",) in always and ("MultiAZ",) in conditional
    assert {("FifoQueue",), ("QueueName",)} <= set(aws_facts.create_only("AWS::SQS::Queue")[0])
    assert aws_facts.create_only("Custom::Unknown") == ((), ())
    assert aws_facts.create_only("AWS::RDS::DBInstance") is aws_facts.create_only("AWS::RDS::DBInstance")  # cached


def test_importing_the_facts_loads_neither_boto3_nor_cfn_lint():
    code = ("import sys, generator.aws_facts; "
            "print(sorted(m for m in ('boto3', 'botocore', 'cfnlint') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.strip() == "[]"
