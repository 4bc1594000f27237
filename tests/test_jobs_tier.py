"""jobs: the job table, the scheduler and the rules that run it, as properties the job-control code relies on
(generator/functions/video_jobs/contract.py) and the security posture asks for, not copies of the templates."""

from __future__ import annotations

import pytest

from generator import config, job_control, names, tiers
from generator.functions.video_jobs import contract
from generator.tiers import jobs

from conftest import (
    as_list,
    grants,
    inline_statements,
    pop_vpc_function_grants,
    resources_of_type,
    sources,
    statements,
    subnets_of_kind,
    trusted_services,
)

ENVS = ("dev", "staging", "prod")
TABLE_ACTIONS = {"dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
                 "dynamodb:UpdateItem"}
TABLE_KEY_ACTIONS = {"kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"}
ENDINGS = ["ABORTED", "FAILED", "SUCCEEDED", "TIMED_OUT"]


def resources(templates, env="dev") -> dict:
    return templates[env]["jobs"]["Resources"]


def props(templates, title, env="dev") -> dict:
    return resources(templates, env)[title]["Properties"]


def table_of(templates, env) -> tuple[str, dict]:
    [(title, table)] = resources_of_type(templates[env]["jobs"], "AWS::DynamoDB::Table").items()
    return title, table


# --------------------------------------------------------------------------------------------------
# The table: what the functions rely on


@pytest.mark.parametrize("env", ENVS)
def test_the_tables_keys_and_status_index_are_the_contracts(templates, env):
    """The runtime reads and writes items by these names and types; any drift breaks every request."""
    _, table = table_of(templates, env)
    p = table["Properties"]
    types = {a["AttributeName"]: a["AttributeType"] for a in p["AttributeDefinitions"]}
    assert types == {contract.PARTITION_KEY: "S", contract.SORT_KEY: "N",
                     contract.STATUS_INDEX_PARTITION_KEY: "S", contract.STATUS_INDEX_SORT_KEY: "N"}
    assert p["KeySchema"] == [{"AttributeName": contract.PARTITION_KEY, "KeyType": "HASH"},
                              {"AttributeName": contract.SORT_KEY, "KeyType": "RANGE"}]
    [index] = p["GlobalSecondaryIndexes"]
    assert index["IndexName"] == contract.STATUS_INDEX
    assert index["KeySchema"] == [{"AttributeName": contract.STATUS_INDEX_PARTITION_KEY, "KeyType": "HASH"},
                                  {"AttributeName": contract.STATUS_INDEX_SORT_KEY, "KeyType": "RANGE"}]
    assert index["Projection"] == {"ProjectionType": "ALL"}, "GET /videos?status= answers from the index alone"
    assert "LocalSecondaryIndexes" not in p
    assert p["BillingMode"] == "PAY_PER_REQUEST" and "ProvisionedThroughput" not in p


@pytest.mark.parametrize("env", ENVS)
def test_the_table_is_encrypted_with_a_rotating_key_of_this_stack_and_recoverable_to_a_point_in_time(templates,
                                                                                                     env):
    title, table = table_of(templates, env)
    sse = table["Properties"]["SSESpecification"]
    assert (sse["SSEEnabled"], sse["SSEType"]) == (True, "KMS")
    [(tier, key)] = sources(templates, env, "jobs", sse["KMSMasterKeyId"])
    assert tier == "jobs" and resources(templates, env)[key]["Type"] == "AWS::KMS::Key"
    assert props(templates, key, env)["EnableKeyRotation"] is True
    assert table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    # The key outlives the table where the table is kept: its backups stay readable.
    assert resources(templates, env)[key]["DeletionPolicy"] == table["DeletionPolicy"]
    outputs = templates[env]["jobs"]["Outputs"]
    assert sources(templates, env, "jobs", outputs["JobsKeyArn"]["Value"]) == {("jobs", key)}
    assert sources(templates, env, "jobs", outputs["JobsTableArn"]["Value"]) == {("jobs", title)}


@pytest.mark.parametrize("env", ENVS)
def test_the_table_is_retained_and_protected_only_where_the_environment_keeps_data(templates, env):
    _, table = table_of(templates, env)
    kept = config.get(env).retain_data
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == (("Retain",) * 2 if kept else ("Delete",) * 2)
    assert table["Properties"].get("DeletionProtectionEnabled", False) is kept
    assert kept == (env == "prod")
    # Retained, so no fixed name: a re-create after a delete would collide with it.
    assert "TableName" not in table["Properties"]


@pytest.mark.parametrize("env", ENVS)
def test_the_table_key_is_used_only_through_dynamodb_by_the_account_and_never_by_dynamodb_itself(templates, env):
    """As AWS documents for DynamoDB: the account's principals through dynamodb.<region> (kms:ViaService,
    kms:CallerAccount); the DynamoDB service principal reads the key's metadata only."""
    _, table = table_of(templates, env)
    [(_, key)] = sources(templates, env, "jobs", table["Properties"]["SSESpecification"]["KMSMasterKeyId"])
    policy = statements(props(templates, key, env)["KeyPolicy"])
    using = [s for s in policy if "kms:Decrypt" in as_list(s["Action"])]
    [through] = using
    assert through["Principal"]["AWS"] == [{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}]
    condition = through["Condition"]["StringEquals"]
    assert condition["kms:ViaService"] == [{"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"}]
    assert condition["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}
    [service] = [s for s in policy if "Service" in s["Principal"]]
    assert service["Principal"] == {"Service": ["dynamodb.amazonaws.com"]}
    assert sorted(as_list(service["Action"])) == ["kms:Describe*", "kms:Get*", "kms:List*"]


# --------------------------------------------------------------------------------------------------
# The scheduler function


@pytest.mark.parametrize("env", ENVS)
def test_the_scheduler_runs_the_packaged_job_control_code_with_the_contracts_environment(templates, env):
    f = props(templates, "SchedulerFunction", env)
    assert (f["Code"], f["Handler"]) == (job_control.PACKAGE_PATH, contract.SCHEDULER_HANDLER)
    assert (f["Runtime"], f["Architectures"], f["Timeout"]) == ("python3.14", ["arm64"], 60)
    assert f["FunctionName"] == names.scheduler(env)
    variables = f["Environment"]["Variables"]
    assert set(variables) == {contract.ENV_TABLE, contract.ENV_STATE_MACHINE_ARN, contract.ENV_MAX_CONCURRENT,
                              contract.ENV_ERROR_TOPIC_ARN, contract.ENV_MEDIA_BUCKET}
    assert sources(templates, env, "jobs", variables[contract.ENV_MEDIA_BUCKET]) == {("media", "MediaBucket")}
    title, _ = table_of(templates, env)
    assert sources(templates, env, "jobs", variables[contract.ENV_TABLE]) == {("jobs", title)}
    assert sources(templates, env, "jobs", variables[contract.ENV_STATE_MACHINE_ARN]) == {("workflow",
                                                                                           "StateMachine")}
    assert sources(templates, env, "jobs", variables[contract.ENV_ERROR_TOPIC_ARN]) == {("notification",
                                                                                         "ErrorTopic")}
    assert variables[contract.ENV_MAX_CONCURRENT] == str(config.get(env).max_concurrent_videos)


@pytest.mark.parametrize("env", ENVS)
def test_the_scheduler_dead_letters_failed_events_runs_in_the_vpc_and_logs_encrypted(templates, env):
    f = props(templates, "SchedulerFunction", env)
    assert sources(templates, env, "jobs", f["DeadLetterConfig"]["TargetArn"]) == {("notification",
                                                                                   "DeadLetterQueue")}
    assert "ReservedConcurrentExecutions" not in f
    assert sources(templates, env, "jobs", f["VpcConfig"]["SubnetIds"]) == subnets_of_kind(templates, env, "Private")
    # Its own group (HTTPS out only), not the API function's, which also reaches the cache.
    assert sources(templates, env, "jobs", f["VpcConfig"]["SecurityGroupIds"]) == {
        ("network", "SchedulerFunctionSecurityGroup")}
    [(_, group)] = sources(templates, env, "jobs", f["LoggingConfig"]["LogGroup"])
    log_group = props(templates, group, env)
    assert log_group["LogGroupName"] == f"/aws/lambda/{f['FunctionName']}"
    assert log_group["RetentionInDays"] == config.get(env).log_retention_days
    [(_, key)] = sources(templates, env, "jobs", log_group["KmsKeyId"])
    assert resources(templates, env)[key]["Type"] == "AWS::KMS::Key"
    skipped = {s["id"] for s in resources(templates, env)["SchedulerFunction"]["Metadata"]["checkov"]["skip"]}
    assert "CKV_AWS_116" not in skipped, "it has a dead-letter queue"


def test_the_schedule_runs_at_the_contracts_rate_in_eventbridges_grammar(templates):
    assert jobs.schedule_expression(1) == "rate(1 minute)" and jobs.schedule_expression(5) == "rate(5 minutes)"
    assert props(templates, "ReconcileRule")["ScheduleExpression"] == jobs.schedule_expression(
        contract.RECONCILE_EVERY_MINUTES)


# --------------------------------------------------------------------------------------------------
# The scheduler's role


def dynamodb_resources(role: dict) -> list:
    return [r for s in inline_statements(role) if any(str(a).startswith("dynamodb:") for a in as_list(s["Action"]))
            for r in as_list(s["Resource"])]


@pytest.mark.parametrize("env", ENVS)
def test_the_scheduler_role_may_do_exactly_its_job_and_nothing_on_star_that_aws_could_scope(templates, env):
    role = resources(templates, env)["SchedulerFunctionRole"]
    assert trusted_services(role) == {"lambda.amazonaws.com"} and "ManagedPolicyArns" not in role["Properties"]
    allowed = grants(templates, env, "jobs", "SchedulerFunctionRole")
    title, _ = table_of(templates, env)
    for action in TABLE_ACTIONS:
        assert allowed.pop(action) == {("jobs", title)}, action
    assert dynamodb_resources(role) == [{"Fn::GetAtt": [title, "Arn"]},
                                        {"Fn::Sub": ["${Table}/index/*", {"Table": {"Fn::GetAtt": [title, "Arn"]}}]}]
    for action in TABLE_KEY_ACTIONS:
        # The error topic and the dead-letter queue share the notification key.
        both = action in ("kms:Decrypt", "kms:GenerateDataKey*")
        assert allowed.pop(action) == {("jobs", "JobsKey")} | ({("notification", "NotificationKey")} if both
                                                               else set()), action
    assert allowed.pop("states:StartExecution") == {("workflow", "StateMachine")}
    assert allowed.pop("states:DescribeExecution") == {("workflow", "StateMachine")}
    [executions] = [s["Resource"] for s in inline_statements(role) if "states:DescribeExecution" in s["Action"]]
    assert [r["Fn::Sub"].split(":states:")[1] for r in executions] == [
        "${AWS::Region}:${AWS::AccountId}:execution:${StateMachineName}:*"], "executions of this machine only"
    assert allowed.pop("sns:Publish") == {("notification", "ErrorTopic")}
    assert allowed.pop("sqs:SendMessage") == {("notification", "DeadLetterQueue")}
    # Admission on arrival reads a source's current version and metadata: GetObject (HeadObject) on sources/ only.
    assert allowed.pop("s3:GetObject") == {("media", "MediaBucket")}
    [read] = [s["Resource"] for s in inline_statements(role) if "s3:GetObject" in as_list(s["Action"])]
    assert [r["Fn::Sub"][0] for r in read] == ["${Bucket}/sources/*"]
    pop_vpc_function_grants(allowed, f"/aws/lambda/{names.scheduler(env)}",
                            ("network", "SchedulerFunctionSecurityGroup"))
    assert allowed == {}, f"unexpected grants: {sorted(allowed)}"
    # Keys: the table's only through DynamoDB, the notification key only through SNS and SQS.
    by_key = {}
    for s in inline_statements(role):
        if any(str(a).startswith("kms:") for a in as_list(s["Action"])):
            [key] = set().union(*(sources(templates, env, "jobs", r) for r in as_list(s["Resource"])))
            via = s["Condition"]["StringEquals"]["kms:ViaService"]
            by_key[key] = (sorted(as_list(s["Action"])), sorted(v["Fn::Sub"].split(".")[0] for v in as_list(via)))
    assert by_key == {("jobs", "JobsKey"): (sorted(TABLE_KEY_ACTIONS), ["dynamodb"]),
                      ("notification", "NotificationKey"): (["kms:Decrypt", "kms:GenerateDataKey*"], ["sns", "sqs"])}


# --------------------------------------------------------------------------------------------------
# The rules


@pytest.mark.parametrize("env", ENVS)
def test_every_ending_of_exactly_this_state_machine_reaches_the_scheduler_with_a_dead_letter_queue(templates, env):
    rule = resources(templates, env)["ExecutionEndedRule"]["Properties"]
    assert rule["Name"] == names.execution_end_rule(env), "the dead-letter queue admits it by this name"
    assert rule["State"] == "ENABLED"
    pattern = rule["EventPattern"]
    assert (pattern["source"], pattern["detail-type"]) == (["aws.states"], ["Step Functions Execution Status Change"])
    assert sorted(pattern["detail"]["status"]) == ENDINGS
    [machine] = pattern["detail"]["stateMachineArn"]
    assert sources(templates, env, "jobs", machine) == {("workflow", "StateMachine")}
    [target] = rule["Targets"]
    assert sources(templates, env, "jobs", target["Arn"]) == {("jobs", "SchedulerFunction")}
    assert sources(templates, env, "jobs", target["DeadLetterConfig"]["Arn"]) == {("notification",
                                                                                  "DeadLetterQueue")}
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 24 * 3600
    assert "InputTransformer" not in target and "Input" not in target, "the scheduler reads the event as sent"


@pytest.mark.parametrize("env", ENVS)
def test_every_source_uploaded_to_this_bucket_reaches_the_scheduler_with_a_dead_letter_queue(templates, env):
    rule = resources(templates, env)["SourceArrivedRule"]["Properties"]
    assert rule["Name"] == names.source_arrived_rule(env), "the dead-letter queue admits it by this name"
    pattern = rule["EventPattern"]
    assert (pattern["source"], pattern["detail-type"]) == (["aws.s3"], [contract.OBJECT_CREATED])
    [bucket] = pattern["detail"]["bucket"]["name"]
    assert sources(templates, env, "jobs", bucket) == {("media", "MediaBucket")}
    assert pattern["detail"]["object"]["key"] == [{"prefix": contract.SOURCES_PREFIX}], "outputs/ admit nothing"
    [target] = rule["Targets"]
    assert sources(templates, env, "jobs", target["DeadLetterConfig"]["Arn"]) == {("notification",
                                                                                  "DeadLetterQueue")}
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 24 * 3600
    assert "InputTransformer" not in target and "Input" not in target, "the scheduler reads the event as sent"
    assert templates[env]["media"]["Resources"]["MediaBucket"]["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}}, "S3 sends Object Created to EventBridge"


@pytest.mark.parametrize("env", ENVS)
def test_each_invoke_permission_admits_only_eventbridge_as_its_own_rule(templates, env):
    permissions = resources_of_type(templates[env]["jobs"], "AWS::Lambda::Permission")
    rules = set(resources_of_type(templates[env]["jobs"], "AWS::Events::Rule"))
    assert rules == {"ExecutionEndedRule", "ReconcileRule", "SourceArrivedRule"}
    scoped = []
    for p in permissions.values():
        p = p["Properties"]
        assert (p["Principal"], p["Action"]) == ("events.amazonaws.com", "lambda:InvokeFunction")
        assert sources(templates, env, "jobs", p["FunctionName"]) == {("jobs", "SchedulerFunction")}
        assert p["SourceArn"]["Fn::GetAtt"][1] == "Arn"
        scoped.append(p["SourceArn"]["Fn::GetAtt"][0])
    assert sorted(scoped) == sorted(rules), "one permission per rule, each scoped to its rule's ARN"
    for title in rules:
        [target] = props(templates, title, env)["Targets"]
        assert sources(templates, env, "jobs", target["Arn"]) == {("jobs", "SchedulerFunction")}


def test_the_dead_letter_queue_admits_the_rule_by_name_and_the_schedulers_failed_events_through_its_role(
        templates):
    """EventBridge dead-letters as the rule (aws:SourceArn); Lambda sends the scheduler's failed events as the
    function's role, which the notification key admits through SQS."""
    for env in ENVS:
        [policy] = resources_of_type(templates[env]["notification"], "AWS::SQS::QueuePolicy").values()
        [events] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
                    if s.get("Principal") == {"Service": ["events.amazonaws.com"]}]
        admitted = [arn["Fn::Sub"].rsplit(":rule/", 1)[1] for arn in events["Condition"]["ArnEquals"]["aws:SourceArn"]]
        assert admitted == [props(templates, title, env)["Name"] for title in ("ExecutionEndedRule",
                                                                               "SourceArrivedRule")]
        key = templates[env]["notification"]["Resources"]["NotificationKey"]["Properties"]["KeyPolicy"]
        [through] = [s for s in statements(key) if s["Sid"] == "AccountPrincipalsThroughServices"]
        assert {"Fn::Sub": "sqs.${AWS::Region}.amazonaws.com"} in through["Condition"]["StringEquals"][
            "kms:ViaService"]


# --------------------------------------------------------------------------------------------------
# The api function's side of the same table


@pytest.mark.parametrize("env", ENVS)
def test_the_api_role_admits_jobs_on_this_table_and_machine_and_describes_no_execution(templates, env):
    allowed = grants(templates, env, "api", "FunctionRole")
    title, _ = table_of(templates, env)
    assert {a for a in allowed if a.startswith("dynamodb:")} == TABLE_ACTIONS
    assert all(allowed[a] == {("jobs", title)} for a in TABLE_ACTIONS)
    # kms:Decrypt also names the media key (through S3 only, for presigned multipart uploads: tests/test_api.py).
    assert all(allowed[a] - {("media", "MediaKey")} == {("jobs", "JobsKey")} for a in TABLE_KEY_ACTIONS)
    assert allowed["states:StartExecution"] == {("workflow", "StateMachine")}
    assert not [a for a in allowed if a.startswith("states:") and a != "states:StartExecution"]


def test_the_jobs_tier_deploys_after_the_workflow_and_before_the_api():
    order = [t.name for t in tiers.TIERS]
    assert order.index("workflow") < order.index("jobs") < order.index("api") < order.index("operations")
    assert tiers.title("jobs") == "JobsStack"
