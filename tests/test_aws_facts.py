"""generator/aws_facts.py: the one list of stateful types is true to AWS and used by every tool that needs it; the
unscopable IAM actions come from AWS's reference as cfn-lint ships it; every limit names its page; the facts know
nothing of the project's settings."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.helpers import valid_snapshot_types
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from deploytools import cfn
from generator import aws_facts, config
from generator.config import DEFAULT_REGION
from generator.diff import diff_templates

STATEFUL = sorted(aws_facts.STATEFUL_TYPES)


@pytest.mark.parametrize("rtype", [*[t for t in STATEFUL if not t.startswith("Custom::")],
                                   *aws_facts.CUSTOM_TYPES_AS_AWS.values(), aws_facts.NESTED_STACK_TYPE])
def test_every_type_exists_in_the_pipeline_region(rtype):
    assert PROVIDER_SCHEMA_MANAGER.get_resource_schema(DEFAULT_REGION, rtype).schema["typeName"] == rtype
    assert aws_facts.resource_schema(rtype)["typeName"] == rtype


def test_a_custom_type_standing_for_an_aws_type_is_read_as_it():
    """The adopted RDS log groups (issue 25): stateful, kept like a log group, replaced when their name changes."""
    for custom, aws in aws_facts.CUSTOM_TYPES_AS_AWS.items():
        assert custom.startswith("Custom::") and custom in aws_facts.STATEFUL_TYPES
        assert aws_facts.RETAINING_POLICY[custom] == aws_facts.RETAINING_POLICY[aws]
        assert aws_facts.create_only(custom) == aws_facts.create_only(aws)
    assert ("LogGroupName",) in aws_facts.create_only("Custom::AdoptedLogGroup")[0]


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


ROOT = Path(__file__).resolve().parent.parent


def test_importing_the_facts_loads_neither_boto3_nor_cfn_lint_nor_the_settings():
    """Facts know nothing of the project: config imports aws_facts, never the other way round."""
    code = ("import sys, generator.aws_facts; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'cfnlint') "
            "or m.startswith('generator.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "['generator.aws_facts']"


def test_every_type_the_templates_use_has_the_schema_it_has_in_every_environments_region(templates):
    """create_only() reads us-east-1's schemas: for our types they must be the pipeline regions' too."""
    used = {r["Type"] for env in templates.values() for body in env.values()  # Custom:: types have no schema
            for r in body.get("Resources", {}).values() if r["Type"].startswith("AWS::")}
    regions = {cfg.region for cfg in config.ENVIRONMENTS.values()}
    differ = [(rtype, region) for rtype in sorted(used) for region in sorted(regions)
              if PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, rtype).schema != aws_facts.resource_schema(rtype)]
    assert differ == []


# ------------------------------------------------------------------------------------------------------------
# Actions AWS cannot scope to a resource

# Per the Service Authorization Reference (each action's "Resource types" column is empty): log delivery, X-Ray
# ingestion, EC2 describes, the ECR login token, account-wide lists.
KNOWN_UNSCOPABLE = ("states:ListStateMachines", "logs:CreateLogDelivery", "logs:PutResourcePolicy",
                    "logs:DescribeLogGroups", "xray:PutTraceSegments", "xray:GetSamplingRules",
                    "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ecr:GetAuthorizationToken")
# Each names a resource type: a topic, an object, a state machine, a log group, a table, a role, and a container
# instance (ecs:ListTasks, scoped by the container instance or the ecs:cluster condition).
KNOWN_SCOPABLE = ("sns:Publish", "s3:GetObject", "states:StartExecution", "logs:PutLogEvents",
                  "dynamodb:GetItem", "iam:PassRole", "ecs:ListTasks", "ecs:RunTask")


@pytest.mark.parametrize("action", KNOWN_UNSCOPABLE)
def test_an_action_without_resource_types_is_unscopable(action):
    assert aws_facts.is_unscopable(action)
    assert action.lower() in aws_facts.unscopable_actions()


@pytest.mark.parametrize("action", KNOWN_SCOPABLE)
def test_an_action_with_a_resource_type_is_scopable(action):
    assert not aws_facts.is_unscopable(action)


def test_action_names_are_compared_as_iam_does_without_case():
    assert aws_facts.is_unscopable("XRAY:puttracesegments") and aws_facts.is_unscopable("xray:PutTraceSegments")


@pytest.mark.parametrize("action", ["xray:*", "logs:*Delivery", "ec2:Describe*", "*", "xray:PutTraceSegment",
                                    "nosuchservice:Describe", "PutTraceSegments"])
def test_wildcards_typos_and_unknown_actions_are_not_unscopable(action):
    """Fails closed: a rule that admits Resource "*" only for unscopable actions refuses these."""
    assert not aws_facts.is_unscopable(action)


def test_the_reference_covers_aws_not_a_handful_of_services():
    """A truncated or reshaped data file would make every action look scopable (or none): it has AWS's breadth."""
    unscopable = aws_facts.unscopable_actions()
    assert len({a.split(":")[0] for a in unscopable}) > 200 and len(unscopable) > 3000
    assert aws_facts.unscopable_actions() is unscopable  # read once


# ------------------------------------------------------------------------------------------------------------
# Every limit with its page

def _numeric_constants_without_a_page() -> list[str]:
    """Module-level UPPER_CASE figures of aws_facts (a number anywhere in the value, not a Fact/Assumption, which
    carry their own source) whose comment cites no https:// page: the figure's own lines, and the nearest comment
    above it (past the assignments it also introduces, as one comment above four CloudFormation quotas)."""
    source = (ROOT / "generator" / "aws_facts.py").read_text(encoding="utf-8")
    lines = source.splitlines()
    missing = []
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        values = list(ast.walk(node.value))
        numbers = any(isinstance(v, ast.Constant) and type(v.value) in (int, float) for v in values)
        carries_source = any(isinstance(v, ast.Call) and getattr(v.func, "id", "") in ("Fact", "Assumption")
                             for v in values)
        if not name.isupper() or not numbers or carries_source:
            continue
        start = node.lineno - 1
        while start > 0 and lines[start - 1].strip() and not lines[start - 1].lstrip().startswith("#"):
            start -= 1  # an assignment the same comment introduces
        while start > 0 and lines[start - 1].lstrip().startswith("#"):
            start -= 1
        if "https://" not in "\n".join(lines[start:node.end_lineno]):
            missing.append(name)
    return missing


def test_every_limit_in_the_facts_names_the_page_that_states_it():
    assert _numeric_constants_without_a_page() == []


def test_the_settings_check_against_the_facts_not_copies_of_them():
    """A figure AWS documents is spelled in aws_facts only: config imports it (a copy would drift)."""
    source = (ROOT / "generator" / "config.py").read_text(encoding="utf-8")
    for fact in ("LOG_RETENTION_DAYS", "FARGATE_TASK_SIZES", "FARGATE_CPU_UNITS_PER_VCPU", "RDS_GP3_STORAGE_GIB",
                 "RDS_MAX_BACKUP_RETENTION_DAYS", "ELASTICACHE_MAX_SNAPSHOT_RETENTION_DAYS",
                 "API_GATEWAY_ACCOUNT_RATE_LIMIT", "API_GATEWAY_ACCOUNT_BURST_LIMIT", "RDS_POSTGRES_MAX_CONNECTIONS"):
        assert fact in source, f"config.py no longer checks against aws_facts.{fact}"
    for copy in ("= 5000", "= 35", "(1, 3, 5, 7, 14", "10_000", "(20, 65536)", "* 1.1"):
        assert copy not in source, f"config.py spells an AWS figure itself: {copy!r}"
