"""workflow: task definition, state machine definition and role, logs, and the timeout/abort rule.

Properties of the template (what a state or a grant must do, where a value comes from), not copies of it: the
definition's behaviour is executed in test_workflow_behaviour.py, the committed JSON is checked by test_golden.py.
"""

from __future__ import annotations

import pytest

from generator import aws_facts, config, names
from generator.functions.video_jobs import contract as jobs_contract

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


def retry_waits(retrier: dict) -> float:
    """Seconds a retrier can wait in all (its intervals, growing by its backoff rate, each capped)."""
    interval, rate = retrier.get("IntervalSeconds", 1), retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds", float("inf"))
    return sum(min(interval * rate ** n, cap) for n in range(retrier.get("MaxAttempts", 3)))


@pytest.mark.parametrize("env", ENVS)
def test_state_machine_name_timeout_logging_and_tracing(templates, env):
    """The name operators and alarms know; a timeout that ends a stuck execution, long enough for the task's
    retries to wait out their intervals, within what a Standard execution may run; full logs and traces."""
    m = machine(templates, env)
    assert m["StateMachineName"] == names.state_machine(env)
    timeout = m["Definition"]["TimeoutSeconds"]
    waits = sum(retry_waits(r) for r in states(templates, env)["ProcessVideo"]["Retry"])
    # and the failed task's retries by hand: the first wait, doubled by each retry (NextRetry), as many as PlanRetry
    first, [_, give_up] = states(templates, env)["FirstRetry"]["Result"], states(templates, env)["PlanRetry"]["Choices"]
    waits += sum(first["seconds"] * 2 ** n for n in range(give_up["NumericGreaterThanEquals"]))
    assert waits < timeout <= aws_facts.STANDARD_EXECUTION_MAX_MINUTES.value * 60
    assert m["LoggingConfiguration"]["Level"] == "ALL"
    assert m["LoggingConfiguration"]["IncludeExecutionData"] is True
    assert m["TracingConfiguration"]["Enabled"] is True


@pytest.mark.parametrize("env", ENVS)
def test_state_machine_logs_under_vendedlogs_encrypted_with_retention(templates, env):
    r = templates[env]["workflow"]["Resources"]
    group = r["StateMachineLogGroup"]["Properties"]
    # Under /aws/vendedlogs/, so CloudWatch Logs' resource policy for delivery stays small.
    assert group["LogGroupName"] == names.state_machine_log_group(env)
    assert group["LogGroupName"].startswith("/aws/vendedlogs/")
    assert group["RetentionInDays"] == config.get(env).log_retention_days
    assert built_from(templates, group["KmsKeyId"], env) == {("workflow", "WorkflowLogsKey")}
    destinations = machine(templates, env)["LoggingConfiguration"]["Destinations"]
    assert built_from(templates, destinations, env) == {("workflow", "StateMachineLogGroup")}, "only to that group"


def test_dev_keeps_logs_a_week_as_in_the_sketch(templates):
    assert templates["dev"]["workflow"]["Resources"]["StateMachineLogGroup"]["Properties"]["RetentionInDays"] == 7


@pytest.mark.parametrize("env", ENVS)
def test_task_definition_is_linux_x86_fargate_of_the_configured_size_with_the_compute_roles(templates, env):
    td = one_resource(templates[env]["workflow"], "AWS::ECS::TaskDefinition")["Properties"]
    cfg = config.get(env)
    assert (td["Cpu"], td["Memory"]) == (str(cfg.task_cpu), str(cfg.task_memory)), "the settings' size"
    assert (td["NetworkMode"], td["RequiresCompatibilities"]) == ("awsvpc", ["FARGATE"])
    platform = td["RuntimePlatform"]
    assert (platform["OperatingSystemFamily"], platform["CpuArchitecture"]) == ("LINUX", "X86_64")
    assert built_from(templates, td["ExecutionRoleArn"], env) == {("compute", "TaskExecutionRole")}
    assert built_from(templates, td["TaskRoleArn"], env) == {("compute", "TaskRole")}
    [container] = td["ContainerDefinitions"]
    assert built_from(templates, container["Image"], env) == {("main", "ProcessorImage")}, "chosen at deploy time"
    assert {"Name": "ENVIRONMENT", "Value": env} in container["Environment"]
    assert container["ReadonlyRootFilesystem"] is True
    logs = container["LogConfiguration"]
    assert logs["LogDriver"] == "awslogs"
    assert built_from(templates, logs["Options"]["awslogs-group"], env) == {("workflow", "ProcessorLogGroup")}


@pytest.mark.parametrize("env", ENVS)
def test_the_container_runs_as_the_media_directory_owner(templates, env):
    """One unprivileged user owns what the task writes: the access point's, not root (a numeric uid:gid)."""
    user = container(templates, env)["User"]
    access_point = templates[env]["storage"]["Resources"]["MediaAccessPoint"]["Properties"]
    assert user == f"{access_point['PosixUser']['Uid']}:{access_point['PosixUser']['Gid']}"
    assert all(part.isdigit() and part != "0" for part in user.split(":"))


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
    assert validate["Type"] == "Choice" and validate["Default"] == "CheckLocation"
    assert validate["Choices"] and {c["Next"] for c in validate["Choices"]} == {"RejectInput"}, "only valid input runs"
    assert states(templates)["RejectInput"]["Next"] == "NotifyFailure"


@pytest.mark.parametrize("env", ENVS)
def test_process_video_runs_the_exact_task_on_private_subnets_without_public_ip(templates, env):
    task = states(templates, env)["ProcessVideo"]
    assert task["Resource"] == "arn:aws:states:::ecs:runTask.sync", "waits for the task to stop"
    p = task["Parameters"]
    assert (p["Cluster"], p["TaskDefinition"]) == ("${ClusterArn}", "${TaskDefinitionArn}")
    vpc = p["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert vpc["AssignPublicIp"] == "DISABLED" and vpc["SecurityGroups"] == ["${TaskSecurityGroupId}"]
    assert vpc["Subnets"] == [f"${{PrivateSubnet{i + 1}}}" for i in range(config.get(env).az_count)]
    [override] = p["Overrides"]["ContainerOverrides"]
    assert override["Name"] == container(templates, env)["Name"], "overrides the task definition's container"
    assert {"Name": "VIDEO_ID", "Value.$": "$.videoId"} in override["Environment"]
    cluster = templates[env]["compute"]["Resources"]["Cluster"]["Properties"]
    assert p["CapacityProviderStrategy"] == cluster["DefaultCapacityProviderStrategy"], "the cluster's capacity"
    assert {c["CapacityProvider"] for c in p["CapacityProviderStrategy"]} == {
        "FARGATE_SPOT" if config.get(env).spot_default else "FARGATE"}
    assert task["ResultPath"] == "$.taskResult", "the input (videoId) stays for the notifications"
    subs = machine(templates, env)["DefinitionSubstitutions"]
    assert subs["TaskDefinitionArn"] == {"Ref": "TaskDefinition"}  # Ref is the exact revision's ARN
    assert built_from(templates, subs["ClusterArn"], env) == {("compute", "Cluster")}
    assert built_from(templates, subs["TaskSecurityGroupId"], env) == {("network", "TaskSecurityGroup")}
    picked = [subs[name.strip("${}")]["Fn::Select"] for name in vpc["Subnets"]]
    assert sorted(index for index, _ in picked) == list(range(config.get(env).az_count)), "each private subnet once"
    assert all(built_from(templates, subnets, env) == subnets_of_kind(templates, env, "Private")
               for _, subnets in picked)


def first_matching(rules: list[dict], error: str) -> int:
    """Index of the retrier or catcher Step Functions applies to `error` (the first whose ErrorEquals matches;
    States.ALL matches everything, States.TaskFailed every task error but a timeout)."""
    for i, rule in enumerate(rules):
        matched = rule["ErrorEquals"]
        task_failed = "States.TaskFailed" in matched and error != "States.Timeout"
        if error in matched or "States.ALL" in matched or task_failed:
            return i
    raise AssertionError(f"nothing matches {error}")


def test_process_video_retries_like_the_sketch_and_catches_everything(templates):
    task = states(templates)["ProcessVideo"]
    retries = task["Retry"]
    # The sketch's retry of a task that fails (every 30 s, 3 times, backing off x2) is written out as states, so that
    # exit 3 (invalid media) is not retried: no retrier may catch a failed task first. test_workflow_behaviour runs
    # the loop (its waits and its count); here its wiring: caught, planned, waited, back to the task.
    assert all("States.TaskFailed" not in r["ErrorEquals"] and "States.ALL" not in r["ErrorEquals"] for r in retries)
    catches = task["Catch"]
    failed = catches[first_matching(catches, "States.TaskFailed")]
    assert failed["Next"] == "ExamineTaskFailure"
    assert states(templates)["WaitToRetry"]["Next"] == "ProcessVideo"
    first = states(templates)["FirstRetry"]["Result"]
    [_, give_up] = states(templates)["PlanRetry"]["Choices"]
    assert (first["seconds"], give_up["NumericGreaterThanEquals"], give_up["Next"]) == (30, 3, "ExamineError")
    # Capacity errors get their own short, jittered retries, which apply before the rest (first match wins):
    # longer waits happen in the queue (job control), not while the execution holds a slot.
    capacity = retries[first_matching(retries, "ECS.AmazonECSException")]
    assert capacity["JitterStrategy"] == "FULL" and capacity["MaxDelaySeconds"] <= 60
    to_queue = catches[first_matching(catches, "ECS.AmazonECSException")]
    assert to_queue["ErrorEquals"] == capacity["ErrorEquals"] and to_queue["Next"] == "AwaitCapacity"
    await_capacity = states(templates)["AwaitCapacity"]
    assert await_capacity["Parameters"][jobs_contract.OUTCOME] == jobs_contract.CAPACITY_UNAVAILABLE
    assert states(templates)[await_capacity["Next"]]["Type"] == "Succeed", "requeued by job control: no failure"
    everything = catches[-1]
    assert everything["ErrorEquals"] == ["States.ALL"] and everything["Next"] == "ExamineError", "catches the rest"
    assert {c["ResultPath"] for c in catches} == {"$.error"}, "the input (videoId) stays beside the error"
    examine = states(templates)["ExamineError"]
    [with_cause] = examine["Choices"]
    assert (with_cause["Variable"], with_cause.get("IsPresent"), with_cause["Next"]) == (
        "$.error.Cause", True, "DescribeTaskError")
    assert examine["Default"] == "DescribeCauselessError"
    assert states(templates)["DescribeTaskError"]["Next"] == "NotifyFailure"
    assert states(templates)["DescribeCauselessError"]["Next"] == "NotifyFailure"


def test_a_non_zero_exit_code_is_a_failure_not_a_success(templates):
    s = states(templates)
    assert task_next(s, "ProcessVideo") == "CheckExitCode"
    check = s["CheckExitCode"]
    success = [c for c in check["Choices"] if c["Next"] == "DescribeSuccess"]
    assert success, "a zero exit code succeeds"
    for rule in success:  # each way to success demands exit code 0 of the processing container, nothing looser
        assert {k: v for k, v in rule.items() if k != "Next"} == {
            "Variable": "$.taskResult.Containers[0].ExitCode", "NumericEquals": 0}, rule
    assert check["Default"] != "DescribeSuccess" and check["Default"] == "DescribeNonZeroExit"
    assert s["DescribeNonZeroExit"]["Next"] == "NotifyFailure"


def task_next(s: dict, name: str) -> str:
    return s[name]["Next"]


def published_topic(templates, notify: dict, env="dev") -> set[tuple[str, str]]:
    """The topic resource a Notify state publishes to (through the definition's substitutions)."""
    assert notify["Resource"] == "arn:aws:states:::sns:publish"
    substitution = notify["Parameters"]["TopicArn"].strip("${}")
    return built_from(templates, machine(templates, env)["DefinitionSubstitutions"][substitution], env)


def test_success_is_described_then_published_on_the_completion_topic_then_succeeds(templates):
    """What the message holds is executed in test_workflow_behaviour.py; here: where it goes and what follows."""
    s = states(templates)
    assert s["DescribeSuccess"]["Parameters"]["status"] == "SUCCEEDED"
    assert s["DescribeSuccess"]["ResultPath"] == "$.notification"
    notify = s["NotifySuccess"]
    assert published_topic(templates, notify) == {("notification", "CompletionTopic")}
    assert notify["Parameters"]["Message.$"] == "$.notification" and notify["Parameters"]["Subject"]
    assert s[notify["Next"]]["Type"] == "Succeed"


def test_failure_notification_carries_video_execution_error_and_cause_then_fails(templates):
    s = states(templates)
    params = s["DescribeTaskError"]["Parameters"]
    assert params["videoId.$"] == "$.videoId" and params["executionArn.$"] == "$$.Execution.Id"
    assert params["error.$"] == "$.error.Error" and params["cause.$"] == "$.error.Cause"
    notify = s["NotifyFailure"]
    assert published_topic(templates, notify) == {("notification", "ErrorTopic")}
    assert notify["Parameters"]["Message.$"] == "$.notification"
    assert notify["Parameters"]["Subject"] not in ("", s["NotifySuccess"]["Parameters"]["Subject"])
    # The execution then fails with the error job control knows as notified (it does not notify again), and the
    # job record's lastError comes from the cause: the notification itself.
    failed = s[notify["Next"]]
    assert failed["Type"] == "Fail" and failed["Error"] == jobs_contract.NOTIFIED_FAILURE
    assert "$.notification" in failed["CausePath"]


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
        assert allowed.pop(action) == {"*"} and aws_facts.is_unscopable(action), action
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


def test_the_completion_notice_names_the_outputs_the_processor_writes(templates):
    """The notice names the manifest, the download and the poster by the fixed names contract.py gives them; the
    processor must write exactly those (else subscribers get keys that do not exist)."""
    from processor import contract as processor_contract
    from processor import media

    assert (media.DOWNLOAD, media.POSTER) == (jobs_contract.DOWNLOAD_NAME, jobs_contract.POSTER_NAME)
    assert processor_contract.MANIFEST_NAME == jobs_contract.MANIFEST_NAME
    outputs = states(templates)["DescribeSuccess"]["Parameters"]["outputs"]
    for field, name in (("manifest", jobs_contract.MANIFEST_NAME), ("download", media.DOWNLOAD),
                        ("poster", media.POSTER)):
        assert outputs[f"{field}.$"] == f"States.Format('{{}}{name}', $.outputs.prefix)"


@pytest.mark.parametrize("env", list(config.ENVIRONMENTS))
def test_the_processor_gets_fargates_longest_stop_timeout_to_stop_cleanly(templates, env):
    """SIGTERM (a Spot interruption, StopTask) leaves the processor the most time Fargate allows to stop ffmpeg and
    record the interruption before SIGKILL: 120 s, the documented maximum."""
    [task] = [r for r in templates[env]["workflow"]["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    [container] = task["Properties"]["ContainerDefinitions"]
    assert container["StopTimeout"] == 120
