"""workflow: task definition, state machine definition and role, logs, and the timeout/abort rule."""

from __future__ import annotations

import pytest

from generator import config

from conftest import one_resource, statements

ENVS = ("dev", "staging", "prod")


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
    assert m["TracingConfiguration"] == {"Enabled": True}


@pytest.mark.parametrize("env", ENVS)
def test_state_machine_logs_under_vendedlogs_encrypted_with_retention(templates, env):
    r = templates[env]["workflow"]["Resources"]
    group = r["StateMachineLogGroup"]["Properties"]
    assert group["LogGroupName"] == f"/aws/vendedlogs/states/video-processing-{env}"
    assert group["RetentionInDays"] == config.get(env).log_retention_days
    assert group["KmsKeyId"] == {"Fn::GetAtt": ["WorkflowLogsKey", "Arn"]}
    assert machine(templates, env)["LoggingConfiguration"]["Destinations"] == [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["StateMachineLogGroup", "Arn"]}}}]


def test_dev_keeps_logs_a_week_as_in_the_sketch(templates):
    assert templates["dev"]["workflow"]["Resources"]["StateMachineLogGroup"]["Properties"]["RetentionInDays"] == 7


def test_task_definition_is_linux_x86_fargate_1vcpu_2gib_with_the_compute_roles(templates):
    td = one_resource(templates["dev"]["workflow"], "AWS::ECS::TaskDefinition")["Properties"]
    assert (td["Cpu"], td["Memory"], td["NetworkMode"], td["RequiresCompatibilities"]) == (
        "1024", "2048", "awsvpc", ["FARGATE"])
    assert td["RuntimePlatform"] == {"OperatingSystemFamily": "LINUX", "CpuArchitecture": "X86_64"}
    assert td["ExecutionRoleArn"] == {"Ref": "TaskExecutionRoleArn"} and td["TaskRoleArn"] == {"Ref": "TaskRoleArn"}
    [container] = td["ContainerDefinitions"]
    assert container["Name"] == "VideoProcessingContainer"
    assert container["Image"] == {"Ref": "ProcessorImage"}
    assert {"Name": "ENVIRONMENT", "Value": "dev"} in container["Environment"]
    assert container["ReadonlyRootFilesystem"] is True
    logs = container["LogConfiguration"]
    assert logs["LogDriver"] == "awslogs" and logs["Options"]["awslogs-group"] == {"Ref": "ProcessorLogGroup"}


def container(templates, env="dev") -> dict:
    [c] = one_resource(templates[env]["workflow"], "AWS::ECS::TaskDefinition")["Properties"]["ContainerDefinitions"]
    return c


def test_container_receives_database_cache_and_media_settings_as_environment(templates):
    assert container(templates)["Environment"] == [
        {"Name": "DATABASE_HOST", "Value": {"Ref": "DatabaseEndpointAddress"}},
        {"Name": "DATABASE_NAME", "Value": "videoprocessing"},
        {"Name": "DATABASE_PORT", "Value": {"Ref": "DatabaseEndpointPort"}},
        {"Name": "ENVIRONMENT", "Value": "dev"},
        {"Name": "MEDIA_PATH", "Value": "/mnt/media"},
        {"Name": "REDIS_HOST", "Value": {"Ref": "CacheEndpointAddress"}},
        {"Name": "REDIS_PORT", "Value": {"Ref": "CacheEndpointPort"}},
        {"Name": "REDIS_TLS", "Value": "true"},
    ]


def test_container_receives_database_credentials_and_cache_token_as_ecs_secrets(templates):
    assert container(templates)["Secrets"] == [
        {"Name": "DATABASE_PASSWORD", "ValueFrom": {"Fn::Sub": "${DatabaseSecretArn}:password::"}},
        {"Name": "DATABASE_USERNAME", "ValueFrom": {"Fn::Sub": "${DatabaseSecretArn}:username::"}},
        {"Name": "REDIS_AUTH_TOKEN", "ValueFrom": {"Ref": "CacheAuthSecretArn"}},
    ]
    # The secrets ECS reads are exactly the ones the execution role may read.
    [policy] = [p for p in templates["dev"]["compute"]["Resources"]["TaskExecutionRole"]["Properties"]["Policies"]
                if p["PolicyName"] == "InjectContainerSecrets"]
    readable = statements(policy["PolicyDocument"])[0]["Resource"]
    assert readable == [{"Ref": "CacheAuthSecretArn"}, {"Ref": "DatabaseSecretArn"}]


@pytest.mark.parametrize("env", ENVS)
def test_media_file_system_is_mounted_through_the_access_point_with_iam_and_tls(templates, env):
    td = one_resource(templates[env]["workflow"], "AWS::ECS::TaskDefinition")["Properties"]
    assert td["Volumes"] == [
        {"Name": "media", "EFSVolumeConfiguration": {
            "FilesystemId": {"Ref": "FileSystemId"}, "TransitEncryption": "ENABLED",
            "AuthorizationConfig": {"AccessPointId": {"Ref": "AccessPointId"}, "IAM": "ENABLED"}}},
        {"Name": "scratch"},
    ]
    assert container(templates, env)["MountPoints"] == [
        {"SourceVolume": "media", "ContainerPath": "/mnt/media", "ReadOnly": False},
        {"SourceVolume": "scratch", "ContainerPath": "/tmp", "ReadOnly": False},
    ]


def test_data_endpoints_secrets_and_file_system_are_wired_from_storage_and_cache(templates):
    wiring = templates["dev"]["main"]["Resources"]["WorkflowStack"]["Properties"]["Parameters"]
    for name in ("DatabaseEndpointAddress", "DatabaseEndpointPort", "DatabaseSecretArn", "FileSystemId",
                 "AccessPointId"):
        assert wiring[name] == {"Fn::GetAtt": ["StorageStack", f"Outputs.{name}"]}
    for name in ("CacheEndpointAddress", "CacheEndpointPort", "CacheAuthSecretArn"):
        assert wiring[name] == {"Fn::GetAtt": ["CacheStack", f"Outputs.{name}"]}


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
    assert p["Overrides"]["ContainerOverrides"] == [{
        "Name": "VideoProcessingContainer", "Environment": [{"Name": "VIDEO_ID", "Value.$": "$.videoId"}]}]
    assert {c["CapacityProvider"] for c in p["CapacityProviderStrategy"]} <= {"FARGATE", "FARGATE_SPOT"}
    assert task["ResultPath"] == "$.taskResult"
    subs = machine(templates, env)["DefinitionSubstitutions"]
    assert subs["TaskDefinitionArn"] == {"Ref": "TaskDefinition"}  # Ref is the exact revision's ARN
    assert subs["TaskSecurityGroupId"] == {"Ref": "TaskSecurityGroupId"}
    assert subs["PrivateSubnet1"] == {"Fn::Select": [0, {"Ref": "PrivateSubnetIds"}]}


def test_process_video_retries_like_the_sketch_and_catches_everything(templates):
    task = states(templates)["ProcessVideo"]
    assert task["Retry"] == [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 30, "MaxAttempts": 3,
                              "BackoffRate": 2.0}]
    assert task["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ExamineError"}]
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
    assert s[notify["Next"]] == {"Type": "Fail", "Error": "ProcessingError",
                                 "Cause": "Video processing failed; the error topic has the details"}


def test_timed_out_and_aborted_executions_are_reported_on_the_error_topic(templates):
    rule = one_resource(templates["dev"]["workflow"], "AWS::Events::Rule")["Properties"]
    assert rule["EventPattern"]["detail"] == {"stateMachineArn": [{"Ref": "StateMachine"}],
                                              "status": ["TIMED_OUT", "ABORTED"]}
    [target] = rule["Targets"]
    assert target["Arn"] == {"Ref": "ErrorTopicArn"}
    assert "<executionArn>" in target["InputTransformer"]["InputTemplate"]


EXPECTED_POLICY = [
    ("RunProcessingTask", ["ecs:RunTask"], [{"Ref": "TaskDefinition"}],
     {"ArnEquals": {"ecs:cluster": {"Ref": "ClusterArn"}}}),
    ("FollowAndStopProcessingTasks", ["ecs:DescribeTasks", "ecs:StopTask"],
     [{"Fn::Sub": ["arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/${Cluster}/*",
                   {"Cluster": {"Ref": "ClusterName"}}]}],
     {"ArnEquals": {"ecs:cluster": {"Ref": "ClusterArn"}}}),
    ("PassTaskRolesToEcs", ["iam:PassRole"], [{"Ref": "TaskExecutionRoleArn"}, {"Ref": "TaskRoleArn"}],
     {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}),
    ("ManagedRuleForEcsSync", ["events:DescribeRule", "events:PutRule", "events:PutTargets"],
     [{"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:"
                  "rule/StepFunctionsGetEventsForECSTaskRule"}], None),
    ("PublishOutcomes", ["sns:Publish"], [{"Ref": "CompletionTopicArn"}, {"Ref": "ErrorTopicArn"}], None),
    ("EncryptForTopics", ["kms:Decrypt", "kms:GenerateDataKey*"], [{"Ref": "NotificationKeyArn"}], None),
    ("DeliverExecutionLogs", ["logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:DescribeLogGroups",
                              "logs:DescribeResourcePolicies", "logs:GetLogDelivery", "logs:ListLogDeliveries",
                              "logs:PutResourcePolicy", "logs:UpdateLogDelivery"], ["*"], None),
    ("TraceWithXRay", ["xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords",
                       "xray:PutTraceSegments"], ["*"], None),
]


def test_state_machine_role_holds_exactly_the_needed_statements(templates):
    role = templates["dev"]["workflow"]["Resources"]["StateMachineRole"]["Properties"]
    [policy] = role["Policies"]
    actual = [(s["Sid"], s["Action"], s["Resource"], s.get("Condition")) for s in statements(policy["PolicyDocument"])]
    assert actual == EXPECTED_POLICY
    assert all(s["Effect"] == "Allow" for s in statements(policy["PolicyDocument"]))
    assert statements(role["AssumeRolePolicyDocument"])[0]["Principal"] == {"Service": ["states.amazonaws.com"]}


@pytest.mark.parametrize("env", ENVS)
def test_outputs_and_exports_as_in_the_sketch(templates, env):
    outputs = templates[env]["workflow"]["Outputs"]
    for name in ("StateMachineArn", "StateMachineName", "TaskDefinitionArn"):
        assert outputs[name]["Export"] == {"Name": f"{name}-{env}"} and outputs[name]["Description"]
