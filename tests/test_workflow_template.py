"""workflow: task definition, state machine definition and role, logs, and the timeout/abort rule."""

from __future__ import annotations

import pytest

from generator import config
from generator.functions.video_jobs import contract

from conftest import (
    grants,
    inline_statements,
    one_resource,
    resources_of_type,
    sources,
    subnets_of_kind,
    trusted_services,
)

ENVS = ("dev", "staging", "prod")


def built_from(templates, value, env="dev") -> set[tuple[str, str]]:
    return sources(templates, env, "workflow", value)


def machine(templates, env="dev") -> dict:
    return one_resource(templates[env]["workflow"], "AWS::StepFunctions::StateMachine")["Properties"]


def states(templates, env="dev") -> dict:
    return machine(templates, env)["Definition"]["States"]


@pytest.mark.parametrize("env", ENVS)
def test_state_machine_name_timeout_logging_and_tracing(templates, env):
    m = machine(templates, env)
    assert m["StateMachineName"] == f"video-processing-workflow-{env}"
    assert m["Definition"]["TimeoutSeconds"] == 30 * 60
    assert m["LoggingConfiguration"]["Level"] == "ALL"
    assert m["LoggingConfiguration"]["IncludeExecutionData"] is True
    assert m["TracingConfiguration"]["Enabled"] is True


@pytest.mark.parametrize("env", ENVS)
def test_state_machine_logs_under_vendedlogs_encrypted_with_retention(templates, env):
    r = templates[env]["workflow"]["Resources"]
    group = r["StateMachineLogGroup"]["Properties"]
    assert group["LogGroupName"] == f"/aws/vendedlogs/states/video-processing-{env}"
    assert group["RetentionInDays"] == config.get(env).log_retention_days
    assert built_from(templates, group["KmsKeyId"], env) == {("workflow", "WorkflowLogsKey")}
    destinations = machine(templates, env)["LoggingConfiguration"]["Destinations"]
    assert built_from(templates, destinations, env) == {("workflow", "StateMachineLogGroup")}, "only to that group"


def test_dev_keeps_logs_a_week_as_in_the_sketch(templates):
    assert templates["dev"]["workflow"]["Resources"]["StateMachineLogGroup"]["Properties"]["RetentionInDays"] == 7


def test_task_definition_is_linux_x86_fargate_1vcpu_2gib_with_the_compute_roles(templates):
    td = one_resource(templates["dev"]["workflow"], "AWS::ECS::TaskDefinition")["Properties"]
    assert (td["Cpu"], td["Memory"], td["NetworkMode"], td["RequiresCompatibilities"]) == (
        "1024", "2048", "awsvpc", ["FARGATE"])
    platform = td["RuntimePlatform"]
    assert (platform["OperatingSystemFamily"], platform["CpuArchitecture"]) == ("LINUX", "X86_64")
    assert built_from(templates, td["ExecutionRoleArn"]) == {("compute", "TaskExecutionRole")}
    assert built_from(templates, td["TaskRoleArn"]) == {("compute", "TaskRole")}
    [container] = td["ContainerDefinitions"]
    assert container["Name"] == "VideoProcessingContainer"
    assert built_from(templates, container["Image"]) == {("main", "ProcessorImage")}, "chosen at deploy time"
    assert {"Name": "ENVIRONMENT", "Value": "dev"} in container["Environment"]
    assert container["ReadonlyRootFilesystem"] is True
    logs = container["LogConfiguration"]
    assert logs["LogDriver"] == "awslogs"
    assert built_from(templates, logs["Options"]["awslogs-group"]) == {("workflow", "ProcessorLogGroup")}


def container(templates, env="dev") -> dict:
    [c] = one_resource(templates[env]["workflow"], "AWS::ECS::TaskDefinition")["Properties"]["ContainerDefinitions"]
    return c


@pytest.mark.parametrize("env", ENVS)
def test_container_learns_where_the_database_cache_and_media_are_and_no_secret_from_its_environment(templates, env):
    """Endpoints come from the data tiers' resources; credentials never travel as plain environment variables.
    The database user is the processor's own role, made by the schema tier's bootstrap; it signs in with IAM."""
    environment = {e["Name"]: e["Value"] for e in container(templates, env)["Environment"]}
    assert {name: built_from(templates, value, env) for name, value in environment.items() if not isinstance(
        value, str)} == {"DATABASE_HOST": {("storage", "Database")}, "DATABASE_PORT": {("storage", "Database")},
                         "DATABASE_USERNAME": {("schema", "DatabaseBootstrap")},
                         "REDIS_USERNAME": {("cache", "ProcessorCacheUser")},
                         "REDIS_HOST": {("cache", "CacheReplicationGroup")},
                         "REDIS_PORT": {("cache", "CacheReplicationGroup")},
                         "REDIS_REPLICATION_GROUP_ID": {("cache", "CacheReplicationGroup")}}
    assert environment["REDIS_TLS"] == "true", "the cache requires TLS"
    assert environment["MEDIA_PATH"] in {m["ContainerPath"] for m in container(templates, env)["MountPoints"]
                                         if m["SourceVolume"] == "media"}
    assert environment["DATABASE_AUTH"] == environment["REDIS_AUTH"] == "iam"
    assert not any(word in name for name in environment for word in ("PASSWORD", "TOKEN", "SECRET"))


@pytest.mark.parametrize("env", ENVS)
def test_container_receives_no_secret_and_the_execution_role_reads_none(templates, env):
    """Database and cache both sign the processor in with IAM: nothing secret to inject, none to read."""
    assert "Secrets" not in container(templates, env)
    assert "secretsmanager:GetSecretValue" not in grants(templates, env, "compute", "TaskExecutionRole")


@pytest.mark.parametrize("env", ENVS)
def test_media_file_system_is_mounted_through_the_access_point_with_iam_and_tls(templates, env):
    """The task role's grant (compute tests) holds only through the access point; TLS is required by the file
    system's policy. Everything else the container writes is the scratch volume: the root file system is read-only."""
    td = one_resource(templates[env]["workflow"], "AWS::ECS::TaskDefinition")["Properties"]
    volumes = {v["Name"]: v for v in td["Volumes"]}
    assert set(volumes) == {"media", "scratch"}
    efs = volumes["media"]["EFSVolumeConfiguration"]
    assert built_from(templates, efs["FilesystemId"], env) == {("storage", "FileSystem")}
    assert efs["TransitEncryption"] == "ENABLED" and efs["AuthorizationConfig"]["IAM"] == "ENABLED"
    access_point = efs["AuthorizationConfig"]["AccessPointId"]
    assert built_from(templates, access_point, env) == {("storage", "MediaAccessPoint")}
    assert "EFSVolumeConfiguration" not in volumes["scratch"] and "Host" not in volumes["scratch"], "task storage"
    mounts = {m["SourceVolume"]: m for m in container(templates, env)["MountPoints"]}
    assert set(mounts) == {"media", "scratch"} and mounts["scratch"]["ContainerPath"] == "/tmp"
    assert not any(m["ReadOnly"] for m in mounts.values())


def test_placeholder_command_runs_only_with_the_placeholder_image(templates):
    t = templates["dev"]["workflow"]
    [container] = one_resource(t, "AWS::ECS::TaskDefinition")["Properties"]["ContainerDefinitions"]
    assert t["Conditions"]["UsesPlaceholderImage"]["Fn::Equals"][1].startswith("public.ecr.aws/aws-cli/aws-cli:2.")
    command = container["Command"]["Fn::If"]
    assert command[0] == "UsesPlaceholderImage" and "Processing video" in command[1][0]
    assert command[2] == {"Ref": "AWS::NoValue"}


def test_default_image_is_pinned_never_latest(templates):
    default = templates["dev"]["main"]["Parameters"]["ProcessorImage"]["Default"]
    assert ":" in default and not default.endswith(":latest")


def test_invalid_input_goes_straight_to_the_failure_notification(templates):
    validate = states(templates)["ValidateInput"]
    assert validate["Type"] == "Choice" and validate["Default"] == "ProcessVideo"
    assert [c["Next"] for c in validate["Choices"]] == ["RejectInput"] * 3
    assert states(templates)["RejectInput"]["Next"] == "NotifyFailure"


@pytest.mark.parametrize("env", ENVS)
def test_process_video_runs_the_exact_task_on_private_subnets_without_public_ip(templates, env):
    task = states(templates, env)["ProcessVideo"]
    assert task["Resource"] == "arn:aws:states:::ecs:runTask.sync"
    p = task["Parameters"]
    assert (p["Cluster"], p["TaskDefinition"]) == ("${ClusterArn}", "${TaskDefinitionArn}")
    vpc = p["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert vpc["AssignPublicIp"] == "DISABLED" and vpc["SecurityGroups"] == ["${TaskSecurityGroupId}"]
    assert vpc["Subnets"] == [f"${{PrivateSubnet{i + 1}}}" for i in range(config.get(env).az_count)]
    [override] = p["Overrides"]["ContainerOverrides"]
    assert override["Name"] == container(templates, env)["Name"], "overrides the task definition's container"
    assert override["Environment"] == [{"Name": "VIDEO_ID", "Value.$": "$.videoId"}]
    assert {c["CapacityProvider"] for c in p["CapacityProviderStrategy"]} <= {"FARGATE", "FARGATE_SPOT"}
    assert task["ResultPath"] == "$.taskResult"
    subs = machine(templates, env)["DefinitionSubstitutions"]
    assert subs["TaskDefinitionArn"] == {"Ref": "TaskDefinition"}  # Ref is the exact revision's ARN
    assert built_from(templates, subs["ClusterArn"], env) == {("compute", "Cluster")}
    assert built_from(templates, subs["TaskSecurityGroupId"], env) == {("network", "TaskSecurityGroup")}
    picked = [subs[name.strip("${}")]["Fn::Select"] for name in vpc["Subnets"]]
    assert sorted(index for index, _ in picked) == list(range(config.get(env).az_count)), "each private subnet once"
    assert all(built_from(templates, subnets, env) == subnets_of_kind(templates, env, "Private")
               for _, subnets in picked)


def test_process_video_retries_like_the_sketch_and_catches_everything(templates):
    task = states(templates)["ProcessVideo"]
    # The sketch's retry for a task that fails; capacity errors first (the first matching retrier applies).
    capacity, sketch = task["Retry"]
    assert sketch == {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 30, "MaxAttempts": 3,
                      "BackoffRate": 2.0}
    assert "ECS.AmazonECSException" in capacity["ErrorEquals"] and capacity["JitterStrategy"] == "FULL"
    assert capacity["MaxDelaySeconds"] <= 60, "capacity waits happen in the queue, not while holding a slot"
    to_queue, everything = task["Catch"]
    assert to_queue == {"ErrorEquals": capacity["ErrorEquals"], "ResultPath": "$.error", "Next": "AwaitCapacity"}
    assert everything == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ExamineError"}
    await_capacity = states(templates)["AwaitCapacity"]
    assert await_capacity["Parameters"][contract.OUTCOME] == contract.CAPACITY_UNAVAILABLE
    assert states(templates)[await_capacity["Next"]]["Type"] == "Succeed", "requeued by job control: no failure"
    examine = states(templates)["ExamineError"]
    assert examine["Choices"] == [{"Variable": "$.error.Cause", "IsPresent": True, "Next": "DescribeTaskError"}]
    assert examine["Default"] == "DescribeCauselessError"
    assert states(templates)["DescribeTaskError"]["Next"] == "NotifyFailure"
    assert states(templates)["DescribeCauselessError"]["Next"] == "NotifyFailure"


def test_a_non_zero_exit_code_is_a_failure_not_a_success(templates):
    s = states(templates)
    assert task_next(s, "ProcessVideo") == "CheckExitCode"
    check = s["CheckExitCode"]
    success = [c for c in check["Choices"] if c["Next"] == "DescribeSuccess"]
    assert success == [{"Variable": "$.taskResult.Containers[0].ExitCode", "NumericEquals": 0,
                        "Next": "DescribeSuccess"}]
    assert check["Default"] == "DescribeNonZeroExit"
    assert s["DescribeNonZeroExit"]["Next"] == "NotifyFailure"


def task_next(s: dict, name: str) -> str:
    return s[name]["Next"]


def test_success_notification_carries_video_execution_status_and_task(templates):
    s = states(templates)
    assert s["DescribeSuccess"]["Parameters"] == {
        "videoId.$": "$.videoId", "executionArn.$": "$$.Execution.Id", "status": "SUCCEEDED",
        "taskArn.$": "$.taskResult.TaskArn"}
    notify = s["NotifySuccess"]
    assert notify["Resource"] == "arn:aws:states:::sns:publish"
    assert notify["Parameters"] == {"TopicArn": "${CompletionTopicArn}", "Subject": "Video Processing Completed",
                                    "Message.$": "$.notification"}
    assert notify["Next"] == "VideoProcessingSucceeded" and s["VideoProcessingSucceeded"]["Type"] == "Succeed"


def test_failure_notification_carries_video_execution_error_and_cause_then_fails(templates):
    s = states(templates)
    params = s["DescribeTaskError"]["Parameters"]
    assert params["videoId.$"] == "$.videoId" and params["executionArn.$"] == "$$.Execution.Id"
    assert params["error.$"] == "$.error.Error" and params["cause.$"] == "$.error.Cause"
    notify = s["NotifyFailure"]
    assert notify["Parameters"] == {"TopicArn": "${ErrorTopicArn}", "Subject": "Video Processing Error",
                                    "Message.$": "$.notification"}
    # The job record's lastError comes from this cause: the notification itself.
    assert s[notify["Next"]] == {"Type": "Fail", "Error": "ProcessingError",
                                 "CausePath": "States.JsonToString($.notification)"}


def test_every_ended_execution_is_handed_to_the_scheduler_which_may_report_on_the_error_topic(templates):
    """The jobs tier's rule (no longer the workflow's) hands every ending of this machine to the scheduler, which
    releases the slot and reports timeouts and aborts (no state of the machine runs for those)."""
    assert not resources_of_type(templates["dev"]["workflow"], "AWS::Events::Rule")
    assert "ExecutionEndedRuleName" not in templates["dev"]["workflow"]["Outputs"]
    rule = templates["dev"]["jobs"]["Resources"]["ExecutionEndedRule"]["Properties"]
    detail = rule["EventPattern"]["detail"]
    assert sources(templates, "dev", "jobs", detail["stateMachineArn"]) == {("workflow", "StateMachine")}
    assert sorted(detail["status"]) == ["ABORTED", "FAILED", "SUCCEEDED", "TIMED_OUT"]
    [target] = rule["Targets"]
    assert sources(templates, "dev", "jobs", target["Arn"]) == {("jobs", "SchedulerFunction")}
    assert grants(templates, "dev", "jobs", "SchedulerFunctionRole")["sns:Publish"] == {("notification",
                                                                                          "ErrorTopic")}


@pytest.mark.parametrize("env", ENVS)
def test_state_machine_role_runs_this_task_on_this_cluster_publishes_outcomes_and_nothing_more(templates, env):
    """Besides log delivery, tracing and the rule AWS manages for .sync (none of which AWS can scope further),
    the machine can run its own task definition, follow and stop tasks, pass the two task roles to ECS only,
    and publish to the two topics through their key."""
    role = templates[env]["workflow"]["Resources"]["StateMachineRole"]
    assert trusted_services(role) == {"states.amazonaws.com"} and "ManagedPolicyArns" not in role["Properties"]
    allowed = grants(templates, env, "workflow", "StateMachineRole")
    assert allowed.pop("ecs:RunTask") == {("workflow", "TaskDefinition")}
    assert allowed.pop("ecs:DescribeTasks") == allowed.pop("ecs:StopTask") == {("compute", "Cluster")}
    assert allowed.pop("iam:PassRole") == {("compute", "TaskExecutionRole"), ("compute", "TaskRole")}
    assert allowed.pop("sns:Publish") == {("notification", "CompletionTopic"), ("notification", "ErrorTopic")}
    assert allowed.pop("kms:Decrypt") == allowed.pop("kms:GenerateDataKey*") == {("notification", "NotificationKey")}
    for action in ("events:DescribeRule", "events:PutRule", "events:PutTargets"):
        [rule] = allowed.pop(action)
        assert rule.endswith(':rule/StepFunctionsGetEventsForECSTaskRule"}'), "only the rule AWS manages for .sync"
    for action in [a for a in allowed if a.startswith(("logs:", "xray:"))]:
        assert allowed.pop(action) == {"*"}, action
        # Vended log delivery and its resource policy, never writing or reading log events as such.
        assert action.startswith("xray:") or "LogDeliver" in action or "ResourcePolic" in action or (
            action == "logs:DescribeLogGroups"), action
    assert allowed == {}, f"unexpected grants: {sorted(allowed)}"


@pytest.mark.parametrize("env", ENVS)
def test_state_machine_role_touches_tasks_only_on_this_cluster_and_passes_roles_only_to_ecs_tasks(templates, env):
    by_action = {a: s for s in inline_statements(templates[env]["workflow"]["Resources"]["StateMachineRole"])
                 for a in s["Action"]}
    for action in ("ecs:RunTask", "ecs:DescribeTasks", "ecs:StopTask"):
        [(operator, condition)] = by_action[action]["Condition"].items()
        assert operator == "ArnEquals" and built_from(templates, condition["ecs:cluster"], env) == {
            ("compute", "Cluster")}, action
    assert by_action["iam:PassRole"]["Condition"]["StringEquals"]["iam:PassedToService"] == "ecs-tasks.amazonaws.com"


@pytest.mark.parametrize("env", ENVS)
def test_outputs_and_exports_as_in_the_sketch(templates, env):
    outputs = templates[env]["workflow"]["Outputs"]
    for name in ("StateMachineArn", "StateMachineName", "TaskDefinitionArn"):
        assert outputs[name]["Export"]["Name"] == f"{name}-{env}" and outputs[name]["Description"]
