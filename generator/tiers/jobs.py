"""jobs: admission control between the api and the workflow. The job table (one item per video and attempt,
plus the slot counter), the scheduler function that releases a slot whenever an execution ends and admits the
next queued job, the EventBridge rule handing it every ended execution, and the schedule that reconciles lost
events.

The code of both job-control functions (the API's and the scheduler) is one package,
generator/functions/video_jobs/; what they, the templates and the state machine agree on is its contract.py.
Its template names a local zip, `functions/video_jobs.zip` beside the template: deploy.sh builds it
(deploytools/package_function.py) and `aws cloudformation package` uploads it, as for the schema tier's bootstrap.
"""

from __future__ import annotations

from pathlib import Path

from awacs import kms as kms_actions
from awacs import sns as sns_actions
from awacs import sqs as sqs_actions
from awacs import states as states_actions
from awacs.aws import Allow, Condition, Statement, StringEquals
from troposphere import AWS_REGION, GetAtt, Ref, Sub, Template
from troposphere.awslambda import Code, DeadLetterConfig, Environment, Function, Permission
from troposphere.dynamodb import (
    AttributeDefinition,
    GlobalSecondaryIndex,
    KeySchema,
    PointInTimeRecoverySpecification,
    Projection,
    SSESpecification,
    Table,
)
from troposphere.events import DeadLetterConfig as RuleDeadLetterConfig
from troposphere.events import RetryPolicy, Rule, Target

from generator import aws_facts, blocks, contracts, names
from generator.config import EnvConfig
from generator.functions.video_jobs import contract

CONSUMES = (contracts.PRIVATE_SUBNET_IDS, contracts.API_FUNCTION_SECURITY_GROUP_ID, contracts.STATE_MACHINE_ARN,
            contracts.STATE_MACHINE_NAME, contracts.ERROR_TOPIC_ARN, contracts.NOTIFICATION_KEY_ARN,
            contracts.DEAD_LETTER_QUEUE_ARN)
PRODUCES = (contracts.JOBS_TABLE_NAME, contracts.JOBS_TABLE_ARN, contracts.JOBS_KEY_ARN,
            contracts.SCHEDULER_FUNCTION_NAME, contracts.EXECUTION_ENDED_RULE_NAME, contracts.RECONCILE_RULE_NAME)

FUNCTION_SOURCE = Path(contract.__file__).resolve().parent
# Where the template expects the built package, relative to the template (deploy.sh puts it there). The api
# tier's function runs the same package.
PACKAGE_PATH = "functions/video_jobs.zip"
RUNTIME = "python3.14"  # the newest Python runtime, not deprecated before 2029
SCHEDULER_TIMEOUT_SECONDS = 60
# Every status a Step Functions execution ends with: each one frees a slot.
EXECUTION_ENDINGS = ("ABORTED", "FAILED", "SUCCEEDED", "TIMED_OUT")
STATUS_CHANGE = "Step Functions Execution Status Change"
# EventBridge's maximum: an ended execution is retried for a day before it is dead-lettered.
END_EVENT_MAX_AGE_SECONDS = aws_facts.EVENTBRIDGE_MAX_EVENT_AGE_SECONDS
END_EVENT_MAX_RETRIES = aws_facts.EVENTBRIDGE_MAX_RETRIES
# EventBridge's minimum: a reconciliation tick not delivered within a minute is superseded by the next one.
TICK_MAX_AGE_SECONDS = aws_facts.EVENTBRIDGE_MIN_EVENT_AGE_SECONDS
TABLE_ACTIONS = blocks.JOB_TABLE_ACTIONS  # shared with network's DynamoDB endpoint policy
# What DynamoDB does with the table's key on a caller's behalf (encrypt, decrypt, re-encrypt the table keys).
TABLE_KEY_ACTIONS = (kms_actions.Decrypt, kms_actions.DescribeKey, kms_actions.Encrypt,
                     kms_actions.Action("GenerateDataKey*"), kms_actions.Action("ReEncrypt*"))


def schedule_expression(minutes: int) -> str:
    """EventBridge's rate(): `rate(1 minute)` but `rate(5 minutes)`, anything else is refused."""
    return f"rate({minutes} minute{'' if minutes == 1 else 's'})"


def dynamodb_via() -> Sub:
    return Sub(f"dynamodb.${{{AWS_REGION}}}.amazonaws.com")


def table_key_statements() -> list[Statement]:
    """The job table key's policy beyond administration, as AWS documents it for DynamoDB
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/encryption.usagenotes.html, and "How Amazon
    DynamoDB uses AWS KMS", https://docs.aws.amazon.com/kms/latest/developerguide/services-dynamodb.html): the
    account's principals use it only through DynamoDB in this region (kms:ViaService, kms:CallerAccount), their
    own IAM policies saying which may; DynamoDB itself may read the key's metadata to watch the key's state,
    and never use it."""
    return [
        blocks.via_services_statement(["dynamodb"]),
        Statement(
            Sid="DynamoDBDescribesTheKey", Effect=Allow, Principal=blocks.service_principal("dynamodb"),
            Action=[kms_actions.Action("Describe*"), kms_actions.Action("Get*"), kms_actions.Action("List*")],
            Resource=["*"],  # in a key policy, "*" means this key
        ),
    ]


def table_statements(table_arn, key_arn) -> list[Statement]:
    """Read and write job records (table and its indexes) and let DynamoDB use the table's key for the role.

    Shared by the scheduler and the API function: both admit jobs (a conditional transaction on the slot counter).
    """
    return [
        Statement(Sid="ReadAndWriteJobs", Effect=Allow, Action=list(TABLE_ACTIONS),
                  Resource=[table_arn, Sub("${Table}/index/*", Table=table_arn)]),
        Statement(Sid="UseJobsKeyThroughDynamoDB", Effect=Allow, Action=list(TABLE_KEY_ACTIONS),
                  Resource=[key_arn], Condition=Condition(StringEquals("kms:ViaService", dynamodb_via()))),
    ]


def start_statement(state_machine_arn) -> Statement:
    """Admitting a job starts an execution of this one state machine."""
    return Statement(Sid="StartProcessing", Effect=Allow, Action=[states_actions.StartExecution],
                     Resource=[state_machine_arn])


def job_control_function(title: str, cfg: EnvConfig, table_name, state_machine_arn, *, environment: dict,
                         **properties) -> Function:
    """A function running the job-control package (the API's or the scheduler): Python on arm64, the package's
    code, and the environment both handlers read (the table, the state machine, the cap) plus `environment`."""
    function = Function(
        title,
        Runtime=RUNTIME,
        Architectures=["arm64"],
        Code=Code(ZipFile="placeholder"),  # replaced below by the package's local path
        MemorySize=256,
        Environment=Environment(Variables={
            contract.ENV_TABLE: table_name,
            contract.ENV_STATE_MACHINE_ARN: state_machine_arn,
            contract.ENV_MAX_CONCURRENT: str(cfg.max_concurrent_videos),
            **environment,
        }),
        **properties,
    )
    # `aws cloudformation package` uploads a local path given as Code and replaces it with the S3 location.
    function.properties["Code"] = PACKAGE_PATH
    return function


def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing jobs: the job table, the scheduler admitting queued jobs, and "
                                 "the rules that run it")
    p = blocks.parameters(t, CONSUMES)

    table_key = blocks.kms_key(t, cfg, "JobsKey", "Encrypts the job table and its backups",
                               names.env_prefixed(cfg.name, "jobs"), table_key_statements())
    # No TableName: prod retains the table, and a retained fixed name would collide with a re-create (issue 11,
    # defect 8). The functions get its name from their environment. Its keys are create-only: changing one
    # replaces the table (the review diff shows it; prod keeps the old one), so contract.py's keys stay put.
    table = t.add_resource(Table(
        "JobsTable",
        BillingMode="PAY_PER_REQUEST",
        # The names and types the functions rely on (contract.py): (videoId S, attempt N), and the status index.
        AttributeDefinitions=[AttributeDefinition(AttributeName=name, AttributeType=kind) for name, kind in sorted((
            (contract.PARTITION_KEY, "S"), (contract.SORT_KEY, "N"),
            (contract.STATUS_INDEX_PARTITION_KEY, "S"), (contract.STATUS_INDEX_SORT_KEY, "N")))],
        KeySchema=[KeySchema(AttributeName=contract.PARTITION_KEY, KeyType="HASH"),
                   KeySchema(AttributeName=contract.SORT_KEY, KeyType="RANGE")],
        GlobalSecondaryIndexes=[GlobalSecondaryIndex(
            IndexName=contract.STATUS_INDEX,
            KeySchema=[KeySchema(AttributeName=contract.STATUS_INDEX_PARTITION_KEY, KeyType="HASH"),
                       KeySchema(AttributeName=contract.STATUS_INDEX_SORT_KEY, KeyType="RANGE")],
            Projection=Projection(ProjectionType="ALL"),
        )],
        SSESpecification=SSESpecification(SSEEnabled=True, SSEType="KMS", KMSMasterKeyId=GetAtt(table_key, "Arn")),
        PointInTimeRecoverySpecification=PointInTimeRecoverySpecification(PointInTimeRecoveryEnabled=True),
        # Where data is retained, nobody deletes the table by hand either.
        **({"DeletionProtectionEnabled": True} if cfg.retain_data else {}),
        Tags=blocks.tags(cfg),
        **blocks.retention_policies(cfg),
    ))

    function_name = names.scheduler(cfg.name)
    log_group_name = names.lambda_log_group(function_name)
    logs_key = blocks.kms_key(t, cfg, "SchedulerLogsKey", "Encrypts the scheduler function's log group",
                              names.env_prefixed(cfg.name, "scheduler-logs"),
                              [blocks.logs_key_statement([log_group_name])])
    logs = blocks.encrypted_log_group(t, cfg, "SchedulerLogGroup", log_group_name, GetAtt(logs_key, "Arn"))
    role = blocks.function_role(t, cfg, "SchedulerFunctionRole",
                                "The scheduler releases slots, admits queued jobs and reports executions that end "
                                "without a handler", "ReleaseAndAdmitJobs",
                                scheduler_statements(cfg, p, GetAtt(table, "Arn"), GetAtt(table_key, "Arn")))
    # In the VPC behind the API function's security group (HTTPS out only): the scheduler talks to the same
    # services as the API function (DynamoDB, Step Functions) and nothing else, and in prod the interface
    # endpoints already admit that group; a group of its own would repeat the same rules in two places.
    function = t.add_resource(job_control_function(
        "SchedulerFunction", cfg, Ref(table), p[contracts.STATE_MACHINE_ARN],
        environment={contract.ENV_ERROR_TOPIC_ARN: p[contracts.ERROR_TOPIC_ARN]},
        FunctionName=function_name,
        Description=f"Releases a slot when a video processing execution ends and admits queued jobs ({cfg.name})",
        Handler=contract.SCHEDULER_HANDLER,
        Role=GetAtt(role, "Arn"),
        Timeout=SCHEDULER_TIMEOUT_SECONDS,
        # EventBridge invokes it asynchronously: an event its runs still fail on after Lambda's own retries waits
        # in the notification dead-letter queue, which the dead-letter-queue-not-empty alarm watches.
        DeadLetterConfig=DeadLetterConfig(TargetArn=p[contracts.DEAD_LETTER_QUEUE_ARN]),
        **blocks.vpc_function_properties(cfg, logs, p[contracts.PRIVATE_SUBNET_IDS],
                                         p[contracts.API_FUNCTION_SECURITY_GROUP_ID]),
        Metadata=blocks.checkov_skip(
            ("CKV_AWS_115", "no reservation by design: every job-state change is a conditional DynamoDB transaction, "
                            "so concurrent runs are safe, and a new account's quota cannot hold a reservation"),
            ("CKV_AWS_173", "its variables are the table's name, the state machine and topic ARNs and a number, no "
                            "secret; Lambda encrypts them at rest with its AWS-managed key"),
            # A local Code path is the point: `aws cloudformation package` uploads it.
            metadata={"cfn-lint": {"config": {"ignore_checks": ["W3002"]}}},
        ),
    ))

    # Every ended execution frees its slot: success and failure included, not only the endings no state handles.
    ended = t.add_resource(Rule(
        "ExecutionEndedRule",
        Name=names.execution_end_rule(cfg.name),
        Description=f"Hands every ended video processing execution to the scheduler ({cfg.name})",
        State="ENABLED",
        EventPattern={
            "source": ["aws.states"],
            "detail-type": [STATUS_CHANGE],
            "detail": {"stateMachineArn": [p[contracts.STATE_MACHINE_ARN]], "status": list(EXECUTION_ENDINGS)},
        },
        Targets=[Target(
            Id="Scheduler",
            Arn=GetAtt(function, "Arn"),
            # What EventBridge cannot deliver after its retries waits in the notification dead-letter queue (its
            # alarm: dead-letter-queue-not-empty); FailedInvocations has its own alarm. A lost end is also
            # reclaimed by the reconciliation below.
            DeadLetterConfig=RuleDeadLetterConfig(Arn=p[contracts.DEAD_LETTER_QUEUE_ARN]),
            RetryPolicy=RetryPolicy(MaximumEventAgeInSeconds=END_EVENT_MAX_AGE_SECONDS,
                                    MaximumRetryAttempts=END_EVENT_MAX_RETRIES),
        )],
    ))
    # A tick lost is superseded by the next one: no dead-letter queue (it would fill with stale ticks), a short
    # retry, and the FailedInvocations alarm of the operations tier.
    reconcile = t.add_resource(Rule(
        "ReconcileRule",
        Description=f"Runs the scheduler's reconciliation of lost execution ends ({cfg.name})",
        State="ENABLED",
        ScheduleExpression=schedule_expression(contract.RECONCILE_EVERY_MINUTES),
        Targets=[Target(
            Id="Scheduler",
            Arn=GetAtt(function, "Arn"),
            RetryPolicy=RetryPolicy(MaximumEventAgeInSeconds=TICK_MAX_AGE_SECONDS),
        )],
    ))
    for rule in (ended, reconcile):
        t.add_resource(Permission(
            f"{rule.title.removesuffix('Rule')}Permission",
            Action="lambda:InvokeFunction",
            FunctionName=GetAtt(function, "Arn"),
            Principal="events.amazonaws.com",
            SourceArn=GetAtt(rule, "Arn"),
        ))

    blocks.output(t, contracts.JOBS_TABLE_NAME, Ref(table))
    blocks.output(t, contracts.JOBS_TABLE_ARN, GetAtt(table, "Arn"))
    blocks.output(t, contracts.JOBS_KEY_ARN, GetAtt(table_key, "Arn"))
    blocks.output(t, contracts.SCHEDULER_FUNCTION_NAME, Ref(function))
    # Ref of a rule on the default event bus is its name, the RuleName dimension of its metrics.
    blocks.output(t, contracts.EXECUTION_ENDED_RULE_NAME, Ref(ended))
    blocks.output(t, contracts.RECONCILE_RULE_NAME, Ref(reconcile))
    return t


def scheduler_statements(cfg: EnvConfig, p: dict[contracts.Contract, Ref], table_arn, key_arn) -> list[Statement]:
    """Job records; start and follow executions of this machine; report on the error topic; dead-letter; own
    logs, traces and interfaces. Nothing on `*` but what AWS cannot scope."""
    return [
        *table_statements(table_arn, key_arn),
        start_statement(p[contracts.STATE_MACHINE_ARN]),
        # The reconciler asks whether a RUNNING job's execution still runs (and how it ended).
        Statement(Sid="DescribeProcessingExecutions", Effect=Allow, Action=[states_actions.DescribeExecution],
                  Resource=[blocks.arn("states", f"execution:${{{contracts.STATE_MACHINE_NAME.name}}}:*")]),
        # Executions that time out or are aborted reach no state of the machine: the scheduler reports them.
        Statement(Sid="ReportExecutionsEndedWithoutHandler", Effect=Allow, Action=[sns_actions.Publish],
                  Resource=[p[contracts.ERROR_TOPIC_ARN]]),
        # Lambda sends a failed asynchronous event to the dead-letter queue as this role.
        Statement(Sid="DeadLetterFailedEvents", Effect=Allow, Action=[sqs_actions.SendMessage],
                  Resource=[p[contracts.DEAD_LETTER_QUEUE_ARN]]),
        # The error topic and the dead-letter queue are encrypted with the notification key (its policy admits
        # the account's principals through SNS and SQS only).
        Statement(Sid="EncryptForTopicAndQueue", Effect=Allow,
                  Action=[kms_actions.Decrypt, kms_actions.Action("GenerateDataKey*")],
                  Resource=[p[contracts.NOTIFICATION_KEY_ARN]],
                  Condition=Condition(StringEquals("kms:ViaService", [
                      Sub(f"{service}.${{{AWS_REGION}}}.amazonaws.com") for service in ("sns", "sqs")]))),
        *blocks.vpc_function_statements(names.lambda_log_group(names.scheduler(cfg.name)),
                                        contracts.API_FUNCTION_SECURITY_GROUP_ID.name),
    ]

