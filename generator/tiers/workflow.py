"""workflow: the processing task definition, the state machine, its awacs-built role and logs.

Executions that end without reaching a state (timeout, abort) are reported by the jobs tier's scheduler, which
the jobs tier's rule hands every ended execution.
"""

from __future__ import annotations

from awacs import ecs as ecs_actions
from awacs import events as events_actions
from awacs import iam as iam_actions
from awacs import kms as kms_actions
from awacs import logs as logs_actions
from awacs import sns as sns_actions
from awacs import xray as xray_actions
from awacs.aws import Allow, ArnEquals, Condition, Statement, StringEquals
from troposphere import AWS_NO_VALUE, AWS_REGION, Equals, GetAtt, If, Ref, Select, Sub, Template
from troposphere.ecs import (
    AuthorizationConfig,
    ContainerDefinition,
    EFSVolumeConfiguration,
    Environment,
    LogConfiguration,
    MountPoint,
    RuntimePlatform,
    TaskDefinition,
    Volume,
)
from troposphere.iam import Role
from troposphere.stepfunctions import (
    CloudWatchLogsLogGroup,
    LogDestination,
    LoggingConfiguration,
    StateMachine,
    TracingConfiguration,
)

from generator import blocks, contracts, encode_speed, names, state_machine
from generator.alarms import GT, AlarmSpec
from generator.aws_facts import FARGATE_CPU_UNITS_PER_VCPU
from generator.config import EnvConfig

CONSUMES = (
    contracts.PROCESSOR_IMAGE, contracts.PRIVATE_SUBNET_IDS, contracts.TASK_SECURITY_GROUP_ID,
    contracts.CLUSTER_NAME, contracts.CLUSTER_ARN, contracts.TASK_EXECUTION_ROLE_ARN, contracts.TASK_ROLE_ARN,
    contracts.COMPLETION_TOPIC_ARN, contracts.ERROR_TOPIC_ARN, contracts.NOTIFICATION_KEY_ARN,
    contracts.DATABASE_ENDPOINT_ADDRESS, contracts.DATABASE_ENDPOINT_PORT, contracts.DATABASE_APP_USERNAME,
    contracts.CACHE_ENDPOINT_ADDRESS, contracts.CACHE_ENDPOINT_PORT, contracts.CACHE_USER_ID,
    contracts.CACHE_REPLICATION_GROUP_ID, contracts.FILE_SYSTEM_ID, contracts.ACCESS_POINT_ID,
    contracts.MEDIA_BUCKET_NAME,
)
PRODUCES = (contracts.STATE_MACHINE_ARN, contracts.STATE_MACHINE_NAME, contracts.TASK_DEFINITION_ARN)

# Failure modes of its executions (generator/alarms.py): the operations tier builds them, the runbook shows them.
EXECUTIONS_CONSOLE = "Step Functions console, the environment's state machine, executions with status"


def _execution_alarm(title: str, name: str, metric: str, means: str, check: str, recover: str) -> AlarmSpec:
    return AlarmSpec(title, name, "AWS/States", metric, (("StateMachineArn", contracts.STATE_MACHINE_ARN),), "Sum",
                     GT, 0, "notBreaching", means, check, recover)


ALARMS = (
    _execution_alarm(
        "ExecutionsFailedAlarm", "executions-failed", "ExecutionsFailed",
        "An execution ended FAILED: processing failed, the input was rejected, or NotifyFailure itself could not "
        "publish (then this alarm is the only word of it)",
        f"{EXECUTIONS_CONSOLE} FAILED; the execution's error: ProcessingError was reported on the error topic, an "
        "SNS.* or KMS.* error means the error topic could not be reached",
        "Fix the cause (image, input, error topic or its key); submit the videoId again (POST /videos: a failed "
        "video gets its next attempt)"),
    _execution_alarm(
        "ExecutionsTimedOutAlarm", "executions-timed-out", "ExecutionsTimedOut",
        "An execution ran past its timeout (the longest source accepted, max_source_minutes, at the measured "
        "encode speed, twice: `python -m generator capacity` prints it) and was stopped; the scheduler reports it "
        "on the error topic",
        f"{EXECUTIONS_CONSOLE} TIMED_OUT; the processor's log stream for the videoId (processor log group)",
        "Size the task (task_cpu, task_memory) or lower max_source_minutes, or fix a hanging processor; submit the "
        "videoId again"),
    _execution_alarm(
        "ExecutionsAbortedAlarm", "executions-aborted", "ExecutionsAborted",
        "Someone or something stopped an execution; the scheduler reports it on the error topic",
        f"{EXECUTIONS_CONSOLE} ABORTED; CloudTrail StopExecution events for who stopped it",
        "If unintended, submit the videoId again"),
    _execution_alarm(
        "ExecutionsThrottledAlarm", "executions-throttled", "ExecutionThrottled",
        "Step Functions throttled state transitions or starts: executions are delayed",
        "Service Quotas for Step Functions (StartExecution, state transitions) in the region; API traffic",
        "Request a quota increase, or lower the API stage throttling (api_rate_limit) until it is granted"),
)


# The placeholder processor from the sketch; it only runs when the placeholder image is deployed.
PLACEHOLDER_IMAGE = contracts.DEFAULT_PROCESSOR_IMAGE
PLACEHOLDER_SCRIPT = "echo 'Processing video...' && sleep 5 && echo 'Video processing complete'"
USES_PLACEHOLDER_IMAGE = "UsesPlaceholderImage"
SCRATCH_PATH = "/tmp"  # the root file system is read-only; the processor writes here
# The container contract (README, "Container contract"): where the media file system is mounted.
MEDIA_PATH = "/mnt/media"
# Seconds between SIGTERM and SIGKILL: the processor stops ffmpeg, keeps what it uploaded and records the interruption
# (Fargate Spot gives two minutes' notice). 120 is Fargate's maximum (ECS Developer Guide, task definition
# parameters, stopTimeout: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html).
STOP_TIMEOUT_SECONDS = 120
# Step Functions creates this rule in the account for every ECS .sync integration.
ECS_SYNC_RULE = "rule/StepFunctionsGetEventsForECSTaskRule"


def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing workflow: Fargate task definition and Step Functions state machine")
    p = blocks.parameters(t, CONSUMES)
    t.add_condition(USES_PLACEHOLDER_IMAGE, Equals(p[contracts.PROCESSOR_IMAGE], PLACEHOLDER_IMAGE))

    sm_log_name = names.state_machine_log_group(cfg.name)
    processor_log_name = names.processor_log_group(cfg.name)
    key = blocks.kms_key(t, cfg, "WorkflowLogsKey", "Encrypts the workflow's log groups",
                         names.env_prefixed(cfg.name, "workflow-logs"),
                         [blocks.logs_key_statement([sm_log_name, processor_log_name])])
    sm_logs = blocks.encrypted_log_group(t, cfg, "StateMachineLogGroup", sm_log_name, GetAtt(key, "Arn"))
    processor_logs = blocks.encrypted_log_group(t, cfg, "ProcessorLogGroup", processor_log_name, GetAtt(key, "Arn"))

    task_definition = t.add_resource(TaskDefinition(
        "TaskDefinition",
        Cpu=str(cfg.task_cpu),
        Memory=str(cfg.task_memory),
        NetworkMode="awsvpc",
        RequiresCompatibilities=["FARGATE"],
        RuntimePlatform=RuntimePlatform(OperatingSystemFamily="LINUX", CpuArchitecture="X86_64"),
        ExecutionRoleArn=p[contracts.TASK_EXECUTION_ROLE_ARN],
        TaskRoleArn=p[contracts.TASK_ROLE_ARN],
        Volumes=[
            # Mounted through the access point as its POSIX user, over TLS, authorised by the task role.
            Volume(Name="media", EFSVolumeConfiguration=EFSVolumeConfiguration(
                FilesystemId=p[contracts.FILE_SYSTEM_ID],
                TransitEncryption="ENABLED",
                AuthorizationConfig=AuthorizationConfig(AccessPointId=p[contracts.ACCESS_POINT_ID], IAM="ENABLED"),
            )),
            Volume(Name="scratch"),
        ],
        ContainerDefinitions=[ContainerDefinition(
            Name=state_machine.CONTAINER_NAME,
            Image=p[contracts.PROCESSOR_IMAGE],
            Essential=True,
            # The media access point's user: files on /mnt/media and /tmp belong to one unprivileged user.
            User=f"{contracts.MEDIA_UID}:{contracts.MEDIA_GID}",
            ReadonlyRootFilesystem=True,
            StopTimeout=STOP_TIMEOUT_SECONDS,
            MountPoints=[MountPoint(SourceVolume="media", ContainerPath=MEDIA_PATH, ReadOnly=False),
                         MountPoint(SourceVolume="scratch", ContainerPath=SCRATCH_PATH, ReadOnly=False)],
            # The placeholder image's entry point is `aws`; run the sketch's script through bash instead.
            EntryPoint=If(USES_PLACEHOLDER_IMAGE, ["bash", "-c"], Ref(AWS_NO_VALUE)),
            Command=If(USES_PLACEHOLDER_IMAGE, [PLACEHOLDER_SCRIPT], Ref(AWS_NO_VALUE)),
            Environment=container_environment(cfg, p),
            # No Secrets: the database and the cache sign the processor in with IAM (README, Container contract).
            LogConfiguration=LogConfiguration(LogDriver="awslogs", Options={
                "awslogs-group": Ref(processor_logs),
                "awslogs-region": Ref(AWS_REGION),
                "awslogs-stream-prefix": names.LOG_STREAM_PREFIX,
            }),
        )],
        Tags=blocks.tags(cfg),
    ))

    role = t.add_resource(Role(
        "StateMachineRole",
        Description=f"The video processing state machine runs tasks and publishes outcomes ({cfg.name})",
        AssumeRolePolicyDocument=blocks.service_trust("states"),
        Policies=[blocks.inline_policy("RunProcessingAndNotify",
                                       *state_machine_statements(Ref(task_definition), p))],
        Tags=blocks.tags(cfg),
    ))

    substitutions = {
        state_machine.CLUSTER_ARN: p[contracts.CLUSTER_ARN],
        state_machine.TASK_DEFINITION_ARN: Ref(task_definition),
        state_machine.TASK_SECURITY_GROUP_ID: p[contracts.TASK_SECURITY_GROUP_ID],
        state_machine.COMPLETION_TOPIC_ARN: p[contracts.COMPLETION_TOPIC_ARN],
        state_machine.ERROR_TOPIC_ARN: p[contracts.ERROR_TOPIC_ARN],
        state_machine.MEDIA_BUCKET_NAME: p[contracts.MEDIA_BUCKET_NAME],
        state_machine.PROCESSOR_LOG_GROUP: Ref(processor_logs),  # named in the InvalidMedia notice
        **{state_machine.subnet_placeholder(i): Select(i, p[contracts.PRIVATE_SUBNET_IDS])
           for i in range(cfg.az_count)},
    }
    machine = t.add_resource(StateMachine(
        "StateMachine",
        StateMachineName=names.state_machine(cfg.name),
        StateMachineType="STANDARD",
        RoleArn=GetAtt(role, "Arn"),
        Definition={**state_machine.definition(cfg.az_count, blocks.capacity_provider_strategy(cfg)),
                    "TimeoutSeconds": execution_timeout_seconds(cfg)},
        DefinitionSubstitutions=substitutions,
        LoggingConfiguration=LoggingConfiguration(
            Level="ALL", IncludeExecutionData=True,
            Destinations=[LogDestination(CloudWatchLogsLogGroup=CloudWatchLogsLogGroup(
                LogGroupArn=GetAtt(sm_logs, "Arn")))],
        ),
        TracingConfiguration=TracingConfiguration(Enabled=True),
        Tags=blocks.tags(cfg),
    ))

    blocks.output(t, contracts.STATE_MACHINE_ARN, Ref(machine), cfg)
    blocks.output(t, contracts.STATE_MACHINE_NAME, GetAtt(machine, "Name"), cfg)
    blocks.output(t, contracts.TASK_DEFINITION_ARN, Ref(task_definition), cfg)
    return t


def execution_timeout_seconds(cfg: EnvConfig) -> int:
    """The longest source this environment accepts, at the measured encode speed on its task (encode_speed.py)."""
    return encode_speed.execution_timeout_seconds(cfg.max_source_minutes, cfg.task_cpu / FARGATE_CPU_UNITS_PER_VCPU)


def container_environment(cfg: EnvConfig, p: dict[contracts.Contract, Ref]) -> list[Environment]:
    """Plain settings of the container contract, sorted by name."""
    values = {
        # IAM database authentication: the container asks RDS for a token with its task role
        # (generate-db-auth-token); there is no database password anywhere.
        "DATABASE_AUTH": "iam",
        "DATABASE_HOST": p[contracts.DATABASE_ENDPOINT_ADDRESS],
        "DATABASE_NAME": contracts.DATABASE_NAME,
        "DATABASE_PORT": p[contracts.DATABASE_ENDPOINT_PORT],
        "DATABASE_USERNAME": p[contracts.DATABASE_APP_USERNAME],
        "ENVIRONMENT": cfg.name,
        # The processor refuses a longer source (InvalidMedia): the execution timeout is sized for this one.
        "MAX_DURATION_SECONDS": str(cfg.max_source_minutes * 60),
        "MEDIA_PATH": MEDIA_PATH,
        # IAM authentication: the container signs a token with its task role; there is no Redis password.
        "REDIS_AUTH": "iam",
        "REDIS_HOST": p[contracts.CACHE_ENDPOINT_ADDRESS],
        "REDIS_PORT": p[contracts.CACHE_ENDPOINT_PORT],
        # The IAM token is a presigned `connect` request for the replication group's id (not its host name) and
        # the user: https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/auth-iam.html
        "REDIS_REPLICATION_GROUP_ID": p[contracts.CACHE_REPLICATION_GROUP_ID],
        "REDIS_TLS": "true",  # the cache refuses plain-text connections
        "REDIS_USERNAME": p[contracts.CACHE_USER_ID],
    }
    return [Environment(Name=name, Value=values[name]) for name in sorted(values)]


def state_machine_statements(task_definition_arn, p: dict[contracts.Contract, Ref]) -> list[Statement]:
    """Exactly what the state machine needs, nothing on `*` but what AWS cannot scope."""
    on_cluster = Condition(ArnEquals("ecs:cluster", p[contracts.CLUSTER_ARN]))
    return [
        Statement(Sid="RunProcessingTask", Effect=Allow, Action=[ecs_actions.RunTask],
                  Resource=[task_definition_arn], Condition=on_cluster),
        Statement(Sid="FollowAndStopProcessingTasks", Effect=Allow,
                  Action=[ecs_actions.DescribeTasks, ecs_actions.StopTask],
                  Resource=[Sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/${Cluster}/*",
                                Cluster=p[contracts.CLUSTER_NAME])],
                  Condition=on_cluster),
        Statement(Sid="PassTaskRolesToEcs", Effect=Allow, Action=[iam_actions.PassRole],
                  Resource=[p[contracts.TASK_EXECUTION_ROLE_ARN], p[contracts.TASK_ROLE_ARN]],
                  Condition=Condition(StringEquals("iam:PassedToService", "ecs-tasks.amazonaws.com"))),
        Statement(Sid="ManagedRuleForEcsSync", Effect=Allow,
                  Action=[events_actions.DescribeRule, events_actions.PutRule, events_actions.PutTargets],
                  Resource=[blocks.arn("events", ECS_SYNC_RULE)]),
        Statement(Sid="PublishOutcomes", Effect=Allow, Action=[sns_actions.Publish],
                  Resource=[p[contracts.COMPLETION_TOPIC_ARN], p[contracts.ERROR_TOPIC_ARN]]),
        Statement(Sid="EncryptForTopics", Effect=Allow,
                  Action=[kms_actions.Decrypt, kms_actions.Action("GenerateDataKey*")],
                  Resource=[p[contracts.NOTIFICATION_KEY_ARN]]),
        Statement(Sid="DeliverExecutionLogs", Effect=Allow, Action=[
            logs_actions.CreateLogDelivery, logs_actions.DeleteLogDelivery, logs_actions.DescribeLogGroups,
            logs_actions.DescribeResourcePolicies, logs_actions.GetLogDelivery, logs_actions.ListLogDeliveries,
            logs_actions.PutResourcePolicy, logs_actions.UpdateLogDelivery,
        ], Resource=["*"]),  # log delivery actions support no resource-level permissions
        Statement(Sid="TraceWithXRay", Effect=Allow, Action=[
            xray_actions.GetSamplingRules, xray_actions.GetSamplingTargets, xray_actions.PutTelemetryRecords,
            xray_actions.PutTraceSegments,
        ], Resource=["*"]),  # X-Ray actions support no resource-level permissions
    ]
