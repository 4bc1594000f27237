"""The database's log groups (issue 25): the stack owns the groups RDS exports to, under the data key and the
environment's retention, through Custom::AdoptedLogGroup resources and their function
(generator/functions/rds_log_groups/handler.py), run here against moto's CloudWatch Logs.

moto 5.2.5 implements neither AssociateKmsKey nor PutLogGroupDeletionProtection: a stand-in registered on the
client's `before-call` event records those two requests and answers them; the tests assert what was asked, and
never claim CloudWatch Logs did it.
"""

from __future__ import annotations

import copy
import json
import re

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto import mock_aws

from generator import config
from generator.diff import REPLACED, diff_templates
from generator.diff import cli as diff_cli
from generator.functions.rds_log_groups import handler as log_groups

from cfn_responses import Response, response_server
from conftest import dummy_credentials, grants, inline_statements, resources_of_type, sources

pytestmark = pytest.mark.slow  # seconds in moto's harness: CI runs it, the fast loop leaves it out

ENVS = ("dev", "staging", "prod")
ADOPTED = "Custom::AdoptedLogGroup"
KEY = "arn:aws:kms:ap-northeast-1:123456789012:key/11111111-2222-3333-4444-555555555555"
# What RDS writes to, as "Publishing database logs to Amazon CloudWatch Logs" states it (written out here, not taken
# from generator.names): https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_LogAccess.Procedural.UploadtoCloudWatch.html
RDS_WRITES_TO = "/aws/rds/instance/{DBInstanceIdentifier}/{log_type}"


def adopted_groups(templates, env) -> dict[str, dict]:
    return resources_of_type(templates[env]["storage"], ADOPTED)


@pytest.mark.parametrize("env", ENVS)
def test_every_exported_log_has_a_group_named_as_rds_names_it(templates, env):
    """For each EnableCloudwatchLogsExports value exactly one owned group, whose name, once CloudFormation puts the
    database's identifier (its Ref) in, is the group RDS writes that log to."""
    storage = templates[env]["storage"]
    [(db_title, db)] = resources_of_type(storage, "AWS::RDS::DBInstance").items()
    identifier = "vp-storage-database-1a2b3c4d5e6f"  # what CloudFormation generates; any name will do
    named = {}
    for title, group in adopted_groups(templates, env).items():
        template = group["Properties"]["LogGroupName"]["Fn::Sub"]
        assert re.findall(r"\$\{([^}]+)\}", template) == [db_title], f"{title}: named after the database's Ref only"
        named[template.replace("${" + db_title + "}", identifier)] = title
    expected = {RDS_WRITES_TO.format(DBInstanceIdentifier=identifier, log_type=t)
                for t in db["Properties"]["EnableCloudwatchLogsExports"]}
    assert set(named) == expected and len(named) == len(adopted_groups(templates, env))


@pytest.mark.parametrize("env", ENVS)
def test_the_groups_use_the_data_key_the_environment_retention_and_policies(templates, env):
    cfg = config.get(env)
    kept = "Retain" if cfg.retain_data else "Delete"
    groups = adopted_groups(templates, env)
    assert groups
    for title, group in groups.items():
        p = group["Properties"]
        assert sources(templates, env, "storage", p["KmsKeyId"]) == {("storage", "DataKey")}, title
        assert p["RetentionInDays"] == cfg.log_retention_days, title
        assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == (kept, kept), title
        assert ("DeletionProtectionEnabled" in p) == cfg.retain_data, title
        assert sources(templates, env, "storage", p["ServiceToken"]) == {("storage", "DatabaseLogGroupsFunction")}


@pytest.mark.parametrize("env", ENVS)
def test_the_function_may_change_only_this_databases_groups(templates, env):
    """Its role names the database's groups by its Ref; deleting only where the groups go with the stack; nothing
    on the data key (CloudWatch Logs uses the key as itself) and no secret."""
    role = templates[env]["storage"]["Resources"]["DatabaseLogGroupsFunctionRole"]
    allowed = grants(templates, env, "storage", "DatabaseLogGroupsFunctionRole")
    own = {"logs:CreateLogGroup", "logs:AssociateKmsKey", "logs:PutRetentionPolicy",
           "logs:PutLogGroupDeletionProtection" if config.get(env).retain_data else "logs:DeleteLogGroup"}
    database_groups = {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
                                  "log-group:/aws/rds/instance/${Database}/*"}
    [statement] = [s for s in inline_statements(role) if own & set(s["Action"])]
    assert set(statement["Action"]) == own and statement["Resource"] == [database_groups]
    for action in own:
        assert allowed.pop(action) == {("storage", "Database")}, action
    assert set(allowed) == {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTelemetryRecords",
                            "xray:PutTraceSegments"}
    function = templates[env]["storage"]["Resources"]["DatabaseLogGroupsFunction"]["Properties"]
    assert function["Code"] == "functions/rds_log_groups.zip" and function["Handler"] == "handler.handler"


def test_the_review_diff_shows_the_groups_like_other_log_groups():
    """A retention change updates in place; a removed group is a data-loss risk; a new name replaces it."""
    generated = diff_cli.generate(["dev"])
    key = "dev/storage.json"

    def changed(edit) -> object:
        new = copy.deepcopy(generated)
        edit(new[key]["Resources"])
        return diff_templates(generated, new)

    report = changed(lambda r: r["DatabasePostgresqlLogGroup"]["Properties"].update(RetentionInDays=3653))
    [rc] = [rc for sd in report.stacks for rc in sd.resources]
    assert (rc.logical_id, rc.action, rc.replacement) == ("DatabasePostgresqlLogGroup", "changed", None)
    assert not report.data_loss

    report = changed(lambda r: r.pop("DatabaseUpgradeLogGroup"))
    assert [(r.logical_id, r.type, r.risk) for r in report.data_loss] == [
        ("DatabaseUpgradeLogGroup", ADOPTED, "removed")]

    report = changed(lambda r: r["DatabaseUpgradeLogGroup"]["Properties"].update(LogGroupName="/other"))
    assert [(r.logical_id, r.risk) for r in report.data_loss] == [("DatabaseUpgradeLogGroup", REPLACED)]


# --------------------------------------------------------------------------------------------------
# The handler against moto's CloudWatch Logs; responses to a local pre-signed URL stand-in


RESPONSES: list[Response] = []  # what the handler PUT to the response URL, in this test


@pytest.fixture
def response_url():
    with response_server(RESPONSES) as url:
        yield url


@pytest.fixture
def logs(monkeypatch):
    """A moto CloudWatch Logs client; `logs.stood_in` records the requests moto cannot serve (see the docstring)."""
    dummy_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("logs", region_name="ap-northeast-1")
        stood_in: list[tuple[str, dict]] = []

        def stand_in(model, params, **kwargs):
            stood_in.append((model.name, json.loads(params["body"])))
            return AWSResponse(params["url"], 200, {}, None), {}

        for operation in ("AssociateKmsKey", "PutLogGroupDeletionProtection"):
            client.meta.events.register(f"before-call.cloudwatch-logs.{operation}", stand_in)
        client.stood_in = stood_in  # type: ignore[attr-defined]
        yield client


def event(kind: str, url: str, name: str = "/aws/rds/instance/db-1/postgresql", **extra) -> dict:
    return {"RequestType": kind, "ResponseURL": url, "StackId": "arn:aws:cloudformation:stack/s/1",
            "RequestId": "req-1", "LogicalResourceId": "DatabasePostgresqlLogGroup", "ResourceType": ADOPTED,
            "ResourceProperties": {"ServiceToken": "arn:fn", "LogGroupName": name, "KmsKeyId": KEY,
                                   "RetentionInDays": "30"}, **extra}


def group(logs, name: str) -> dict:
    [found] = [g for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] if g["logGroupName"] == name]
    return found


def test_create_makes_the_group_under_the_key_with_the_retention(logs, response_url):
    log_groups.handler(event("Create", response_url), None, logs=logs)
    made = group(logs, "/aws/rds/instance/db-1/postgresql")
    assert (made.get("kmsKeyId"), made.get("retentionInDays")) == (KEY, 30)
    assert logs.stood_in == [], "a group created under the key needs no association"
    [(_, _, body)] = RESPONSES
    assert (body["Status"], body["PhysicalResourceId"]) == ("SUCCESS", "/aws/rds/instance/db-1/postgresql")
    assert body["Reason"].startswith("created /aws/rds/instance/db-1/postgresql")


def test_create_adopts_the_group_rds_made_first(logs, response_url):
    """RDS created the group (its own encryption, kept forever): the key is associated and the retention set."""
    logs.create_log_group(logGroupName="/aws/rds/instance/db-1/postgresql")
    log_groups.handler(event("Create", response_url), None, logs=logs)
    assert logs.stood_in == [("AssociateKmsKey", {"logGroupName": "/aws/rds/instance/db-1/postgresql",
                                                  "kmsKeyId": KEY})]
    assert group(logs, "/aws/rds/instance/db-1/postgresql")["retentionInDays"] == 30
    assert RESPONSES[0].body["Reason"].startswith("adopted")


def test_where_data_is_kept_the_group_is_protected_from_deletion(logs, response_url):
    request = event("Create", response_url)
    request["ResourceProperties"]["DeletionProtectionEnabled"] = "true"
    log_groups.handler(request, None, logs=logs)
    assert logs.stood_in == [("PutLogGroupDeletionProtection", {
        "logGroupIdentifier": "/aws/rds/instance/db-1/postgresql", "deletionProtectionEnabled": True})]


def test_an_update_to_a_new_name_owns_the_new_group_and_reports_its_name(logs, response_url):
    """A replaced database writes to new groups: the new physical id tells CloudFormation to delete the old
    resource (unless its UpdateReplacePolicy keeps it)."""
    log_groups.handler(event("Update", response_url, name="/aws/rds/instance/db-2/postgresql",
                             PhysicalResourceId="/aws/rds/instance/db-1/postgresql"), None, logs=logs)
    assert RESPONSES[0].body["PhysicalResourceId"] == "/aws/rds/instance/db-2/postgresql"
    assert group(logs, "/aws/rds/instance/db-2/postgresql")["kmsKeyId"] == KEY


def test_delete_removes_the_group_and_tolerates_its_absence(logs, response_url):
    logs.create_log_group(logGroupName="/aws/rds/instance/db-1/postgresql")
    for _ in range(2):
        log_groups.handler(event("Delete", response_url, PhysicalResourceId="/aws/rds/instance/db-1/postgresql"),
                           None, logs=logs)
    assert [r.body["Status"] for r in RESPONSES] == ["SUCCESS", "SUCCESS"]
    assert logs.describe_log_groups(logGroupNamePrefix="/aws/rds/")["logGroups"] == []


def test_delete_after_a_failed_create_touches_nothing(logs, response_url):
    logs.create_log_group(logGroupName="/aws/rds/instance/db-1/postgresql")
    log_groups.handler(event("Delete", response_url, PhysicalResourceId="failed-req-0"), None, logs=logs)
    assert RESPONSES[0].body["Status"] == "SUCCESS"
    assert group(logs, "/aws/rds/instance/db-1/postgresql")


def test_a_refusal_is_reported_to_cloudformation_not_raised(logs, response_url):
    def refuse(**kwargs):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "CreateLogGroup")

    logs.meta.events.register("before-call.cloudwatch-logs.CreateLogGroup", refuse)

    class Context:
        log_stream_name = "2026/01/01/[$LATEST]abc"

    log_groups.handler(event("Create", response_url), Context(), logs=logs)
    [(_, _, body)] = RESPONSES
    assert body["Status"] == "FAILED" and body["PhysicalResourceId"] == "failed-req-1"
    assert "AccessDeniedException" in body["Reason"] and body["Reason"].endswith("(log stream 2026/01/01/[$LATEST]abc)")
