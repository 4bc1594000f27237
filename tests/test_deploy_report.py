"""deploytools.cfn: parameter checks, change-set summary, root cause, templates as GetTemplate returns them."""

import datetime as dt
import json
from pathlib import Path

import pytest

from deploytools import cfn

ROOT = Path(__file__).resolve().parent.parent
PARENT = json.loads((ROOT / "tests" / "fixtures" / "deploy" / "main.json").read_text())


def test_params_accepts_defaults_and_valid_values():
    assert cfn.check_params(PARENT, {}) == []
    assert cfn.check_params(PARENT, {"Greeting": "bonjour"}) == []


def test_params_names_every_problem():
    problems = cfn.check_params(PARENT, {"Greeting": "Hi there", "Nope": "1"})
    assert any(p.startswith("Nope: no such parameter") for p in problems)
    assert any("Greeting='Hi there': must match ^[a-z]+$ (lower-case letters only)" in p for p in problems)


def test_params_required_and_allowed_values():
    template = {"Parameters": {"Size": {"Type": "String", "AllowedValues": ["s", "m"]}}}
    assert cfn.check_params(template, {}) == ["Size: required (no default); pass --param Size=VALUE"]
    assert cfn.check_params(template, {"Size": "xl"}) == ["Size='xl': must be one of s, m"]


@pytest.mark.parametrize("pair", ["novalue", "=x"])
def test_param_syntax(pair):
    with pytest.raises(cfn.ParameterError):
        cfn.parse_params([pair])


def test_param_value_may_hold_equals_and_commas():
    assert cfn.parse_params(["A=b=c,d"]) == {"A": "b=c,d"}


class FakeChangeSets:
    """describe_change_set over a dict of change set id -> changes (one page each)."""

    def __init__(self, change_sets):
        self.change_sets = change_sets

    def describe_change_set(self, ChangeSetName, NextToken=None):
        return {"Changes": [{"ResourceChange": rc} for rc in self.change_sets[ChangeSetName]]}


def test_summary_per_nested_stack_with_stateful_replacements_highlighted():
    fake = FakeChangeSets({
        "parent": [{"Action": "Modify", "LogicalResourceId": "StorageStack", "Replacement": "False",
                    "ResourceType": "AWS::CloudFormation::Stack", "ChangeSetId": "storage"},
                   {"Action": "Add", "LogicalResourceId": "ApiStack", "ResourceType": "AWS::CloudFormation::Stack"}],
        "storage": [{"Action": "Modify", "LogicalResourceId": "Database", "Replacement": "True",
                     "ResourceType": "AWS::RDS::DBInstance"},
                    {"Action": "Modify", "LogicalResourceId": "Role", "Replacement": "False",
                     "ResourceType": "AWS::IAM::Role"},
                    {"Action": "Remove", "LogicalResourceId": "Files", "ResourceType": "AWS::EFS::FileSystem"}],
    })
    stacks = cfn.collect_changes(fake, "parent", "app")
    assert [s.label for s in stacks] == ["app", "app/StorageStack"]
    storage = stacks[1]
    assert storage.replaced == ["Database (AWS::RDS::DBInstance)"]
    assert storage.modified == ["Role (AWS::IAM::Role)"]
    assert storage.removed == ["Files (AWS::EFS::FileSystem)"]
    text = cfn.format_summary(stacks)
    assert "app: +1 ~1 -0 replaced 0" in text
    assert "app/StorageStack: +0 ~1 -1 replaced 1" in text
    assert "DATA AT RISK" in text
    assert "app/StorageStack: Database (AWS::RDS::DBInstance) is REPLACED" in text
    assert "app/StorageStack: Files (AWS::EFS::FileSystem) is REMOVED" in text


def _event(n, stack, logical, status, reason=None):
    return {"Timestamp": dt.datetime(2026, 1, 1, 0, 0, n), "StackId": stack, "StackName": stack,
            "LogicalResourceId": logical, "ResourceType": "AWS::X::Y", "ResourceStatus": status,
            "ResourceStatusReason": reason, "EventId": f"{stack}-{n}"}


def test_root_cause_skips_echoes_and_keeps_time_order():
    events = [
        _event(5, "parent", "NetworkStack", "CREATE_FAILED", "Embedded stack arn:... was not successfully created"),
        _event(3, "net", "Vpc", "CREATE_FAILED", "Resource creation cancelled"),
        _event(2, "net", "FlowLogGroup", "CREATE_FAILED", "KMS key is pending deletion"),
        _event(4, "net", "net", "CREATE_FAILED", "KMS key is pending deletion"),
        _event(1, "net", "Subnet", "CREATE_COMPLETE"),
    ]
    causes = cfn.root_causes(events)
    assert [c["LogicalResourceId"] for c in causes] == ["FlowLogGroup"]
    text = cfn.format_root_causes(causes, {"net": "app/NetworkStack"})
    assert "app/NetworkStack FlowLogGroup (AWS::X::Y) CREATE_FAILED: KMS key is pending deletion" in text


def test_root_cause_falls_back_to_echoes():
    events = [_event(1, "p", "A", "CREATE_FAILED", "Resource creation cancelled")]
    assert cfn.root_causes(events) == events


def test_terminal_statuses():
    for s in ("CREATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_COMPLETE"):
        assert cfn.TERMINAL.match(s)
    for s in ("CREATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
              "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"):
        assert not cfn.TERMINAL.match(s)


def test_parse_template_json_dict_and_packaged_yaml():
    assert cfn.parse_template({"Resources": {}}) == {"Resources": {}}
    body = ("Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    DeletionPolicy: Retain\n    Properties:\n"
            "      QueueName: !Ref N\n")
    parsed = cfn.parse_template(body)
    assert parsed["Resources"]["Q"]["DeletionPolicy"] == "Retain"
    assert parsed["Resources"]["Q"]["Properties"]["QueueName"] == {"Ref": "N"}
