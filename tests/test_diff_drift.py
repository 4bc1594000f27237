"""`diff --stack NAME --drift`: drift detection on the parent and every nested stack, folded into the report.

moto does not implement drift detection (DetectStackDrift, DescribeStackDriftDetectionStatus,
DescribeStackResourceDrifts), so `detect_drift` is tested against botocore's Stubber, and the command
against moto (reading the stacks) with the detection replaced by a recorded answer."""

from __future__ import annotations

import copy
import json

import boto3
import pytest
from botocore.stub import Stubber
from test_diff import CHILD, ENV, aws, parent  # noqa: F401 - aws is the moto fixture

from generator.diff import cli as diff_cli
from generator.diff import drift as drift_mod
from generator.diff.drift import Drift, detect_drift

STACKS = {f"{ENV}/main.json": "arn:parent", f"{ENV}/notification.json": "arn:child"}


def drift_entry(lid: str, rtype: str, status: str, diffs: list | None = None) -> dict:
    out = {"StackId": "arn:x", "LogicalResourceId": lid, "ResourceType": rtype, "StackResourceDriftStatus": status,
           "Timestamp": "2026-01-01T00:00:00Z"}
    return {**out, "PropertyDifferences": diffs} if diffs is not None else out


@pytest.fixture
def stubbed():
    cfn = boto3.client("cloudformation", region_name="ap-northeast-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    with Stubber(cfn) as stub:
        yield cfn, stub
        stub.assert_no_pending_responses()


def test_detection_runs_on_every_stack_waits_and_reads_every_page(stubbed):
    cfn, stub = stubbed
    for sid, det in (("arn:parent", "d1"), ("arn:child", "d2")):  # both started before any wait
        stub.add_response("detect_stack_drift", {"StackDriftDetectionId": det}, {"StackName": sid})
    status = {"StackId": "arn:x", "Timestamp": "2026-01-01T00:00:00Z"}
    stub.add_response("describe_stack_drift_detection_status",
                      {**status, "StackDriftDetectionId": "d1", "DetectionStatus": "DETECTION_COMPLETE"})
    stub.add_response("describe_stack_drift_detection_status",
                      {**status, "StackDriftDetectionId": "d2", "DetectionStatus": "DETECTION_IN_PROGRESS"})
    stub.add_response("describe_stack_drift_detection_status",
                      {**status, "StackDriftDetectionId": "d2", "DetectionStatus": "DETECTION_COMPLETE"})
    filters = ["MODIFIED", "DELETED"]
    stub.add_response("describe_stack_resource_drifts", {"StackResourceDrifts": [
        drift_entry("NotificationStack", "AWS::CloudFormation::Stack", "MODIFIED", [])]},
        {"StackName": "arn:parent", "StackResourceDriftStatusFilters": filters})
    stub.add_response("describe_stack_resource_drifts", {"NextToken": "p2", "StackResourceDrifts": [
        drift_entry("Queue", "AWS::SQS::Queue", "MODIFIED", [
            {"PropertyPath": "/VisibilityTimeout", "ExpectedValue": "30", "ActualValue": "45",
             "DifferenceType": "NOT_EQUAL"}])]},
        {"StackName": "arn:child", "StackResourceDriftStatusFilters": filters})
    stub.add_response("describe_stack_resource_drifts", {"StackResourceDrifts": [
        drift_entry("Alarm", "AWS::CloudWatch::Alarm", "DELETED")]},
        {"StackName": "arn:child", "StackResourceDriftStatusFilters": filters, "NextToken": "p2"})
    slept = []
    got = detect_drift(cfn, STACKS, sleep=slept.append)
    assert slept == [drift_mod.POLL_SECONDS]  # one wait, for the child still in progress
    assert got == [  # the nested stack's own entry is left to its child
        Drift(f"{ENV}/notification.json", "Queue", "AWS::SQS::Queue", "MODIFIED", "/VisibilityTimeout", "30", "45",
              "NOT_EQUAL"),
        Drift(f"{ENV}/notification.json", "Alarm", "AWS::CloudWatch::Alarm", "DELETED", "", "", "", "")]


def test_detection_that_never_ends_is_an_aws_error(stubbed):
    from generator import errors

    cfn, stub = stubbed
    stub.add_response("detect_stack_drift", {"StackDriftDetectionId": "d1"})
    for _ in range(3):
        stub.add_response("describe_stack_drift_detection_status", {
            "StackId": "a", "Timestamp": "2026-01-01T00:00:00Z", "StackDriftDetectionId": "d1",
            "DetectionStatus": "DETECTION_IN_PROGRESS"})
    with pytest.raises(errors.AwsError, match="still running"):
        detect_drift(cfn, {"dev/main.json": "arn:parent"}, sleep=lambda s: None, timeout=2 * drift_mod.POLL_SECONDS)


def test_drift_is_folded_into_the_report_with_what_the_deploy_reverts(aws, tmp_path, monkeypatch, capsys):  # noqa: F811
    child = copy.deepcopy(CHILD)
    child["Resources"]["Queue"]["Properties"]["VisibilityTimeout"] = 60  # this deploy updates the queue
    child["Resources"]["Other"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    for name, body in (("main.json", parent("notification.json")), ("notification.json", child)):
        (tmp_path / "templates" / ENV).mkdir(parents=True, exist_ok=True)
        (tmp_path / "templates" / ENV / name).write_text(json.dumps(body))
    monkeypatch.setattr(diff_cli, "REPO", tmp_path)
    asked = {}

    def recorded(cfn, stacks, **kwargs):
        asked.update(stacks)
        return [Drift(f"{ENV}/notification.json", "Queue", "AWS::SQS::Queue", "MODIFIED", "/VisibilityTimeout",
                      "30", "45", "NOT_EQUAL"),
                Drift(f"{ENV}/notification.json", "Lonely", "AWS::SNS::Topic", "MODIFIED", "/DisplayName",
                      "", "\"manual\"", "ADD")]
    monkeypatch.setattr(drift_mod, "detect_drift", recorded)
    argv = ["--stack", "video-dev", "--env", ENV, "--worktree", "--drift"]
    assert diff_cli.main([*argv, "--format", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert sorted(asked) == sorted(STACKS) and all(asked.values())  # the parent and its nested stack, by id
    assert [(d["logical_id"], d["reverted"]) for d in body["drift"]] == [("Queue", True), ("Lonely", False)]
    assert body["drift"][0]["expected"] == "30" and body["drift"][0]["actual"] == "45"
    assert diff_cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "Drift: 2 drifted propert(ies), 1 reverted by this deploy" in text
    assert "Queue (AWS::SQS::Queue) /VisibilityTimeout: expected 30, actual 45 - this deploy REVERTS it" in text
    assert text.index("Drift:") < text.index(f"== {ENV} ==")


def test_without_drift_the_json_says_not_checked_and_drift_needs_a_stack(capsys):
    from generator.diff import diff_templates, render

    assert json.loads(render(diff_templates({}, {}), "json"))["drift"] is None
    assert diff_cli.main(["--drift", "--env", ENV]) == 2
    assert "--drift needs --stack" in capsys.readouterr().err


def _repository_like_the_stack(tmp_path, monkeypatch) -> list[str]:
    for name, body in (("main.json", parent("notification.json")), ("notification.json", CHILD)):
        (tmp_path / "templates" / ENV).mkdir(parents=True, exist_ok=True)
        (tmp_path / "templates" / ENV / name).write_text(json.dumps(body))
    monkeypatch.setattr(diff_cli, "REPO", tmp_path)
    return ["diff", "--stack", "video-dev", "--env", ENV, "--worktree", "--drift"]


def parse_error(*args, **kwargs):
    """What botocore raises when an emulator answers DetectStackDrift with an HTML error page (moto's server)."""
    from botocore.parsers import ResponseParserError

    raise ResponseParserError("Unable to parse response (syntax error: line 1, column 0), invalid XML received")


@pytest.mark.parametrize("detection", [None, parse_error], ids=["moto in-process", "an emulator's error page"])
def test_an_endpoint_without_drift_detection_says_not_checked_and_diffs_the_rest(aws, tmp_path, monkeypatch,  # noqa: F811
                                                                                  capsys, detection):
    """It used to crash (exit 70) instead."""
    from generator.__main__ import main

    argv = _repository_like_the_stack(tmp_path, monkeypatch)
    if detection:
        monkeypatch.setattr(drift_mod, "detect_drift", detection)
    assert main([*argv, "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["drift"] is None  # "not checked", as without --drift
    [line] = captured.err.splitlines()
    assert line.startswith("drift: not checked: ") and "does not implement drift detection" in line


def test_a_drift_detection_the_account_refuses_is_still_an_aws_error(aws, tmp_path, monkeypatch, capsys):  # noqa: F811
    from botocore.exceptions import ClientError

    from generator.__main__ import main

    def denied(*args, **kwargs):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed: DetectStackDrift"}},
                          "DetectStackDrift")
    argv = _repository_like_the_stack(tmp_path, monkeypatch)
    monkeypatch.setattr(drift_mod, "detect_drift", denied)
    assert main(argv) == 2
    assert "not allowed: DetectStackDrift" in capsys.readouterr().err
