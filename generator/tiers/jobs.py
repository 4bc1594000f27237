"""jobs: admission control between the api and the workflow. The job table (one item per video and attempt,
plus the slot counter), the scheduler function that releases a slot whenever an execution ends and admits the
next queued job, the EventBridge rule handing it every ended execution, and the schedule that reconciles lost
events.

The code of both job-control functions (the API's and the scheduler) is one package,
generator/functions/video_jobs/; what they, the templates and the state machine agree on is its contract.py.
Its template names a local zip, `functions/video_jobs.zip` beside the template: deploy.sh builds it
(deploytools/package_function.py) and `aws cloudformation package` uploads it, as for the schema tier's bootstrap.
What the api tier's function shares with the scheduler (package, runtime, grants) is generator/job_control.py.
"""

from __future__ import annotations

from awacs import kms as kms_actions
from awacs import s3 as s3_actions
from awacs import sns as sns_actions
from awacs import sqs as sqs_actions
from awacs import states as states_actions
from awacs.aws import Allow, Condition, Statement, StringEquals
from troposphere import AWS_REGION, GetAtt, Ref, Sub, Template
from troposphere.awslambda import DeadLetterConfig, Permission
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
from generator.alarms import GT, AlarmSpec
from generator.config import EnvConfig
from generator.functions.video_jobs import contract
from generator.job_control import job_control_function, start_statement, table_statements

CONSUMES = (contracts.PRIVATE_SUBNET_IDS, contracts.SCHEDULER_FUNCTION_SECURITY_GROUP_ID,
            contracts.STATE_MACHINE_ARN, contracts.STATE_MACHINE_NAME, contracts.ERROR_TOPIC_ARN,
            contracts.NOTIFICATION_KEY_ARN, contracts.DEAD_LETTER_QUEUE_ARN, contracts.MEDIA_BUCKET_NAME,
            contracts.MEDIA_BUCKET_ARN)
PRODUCES = (contracts.JOBS_TABLE_NAME, contracts.JOBS_TABLE_ARN, contracts.JOBS_KEY_ARN,
            contracts.SCHEDULER_FUNCTION_NAME, contracts.EXECUTION_ENDED_RULE_NAME, contracts.RECONCILE_RULE_NAME,
            contracts.SOURCE_ARRIVED_RULE_NAME)

# Failure modes (generator/alarms.py): the operations tier builds them, the runbook shows them.
SCHEDULER_FUNCTION = (("FunctionName", contracts.SCHEDULER_FUNCTION_NAME),)
# A video waiting this long means the queue does not drain (slots held, starts refused) or holds more than an
# hour of the environment's capacity: either way a person decides (raise the cap, the quota, or wait).
QUEUE_WAIT_ALARM_SECONDS = 3600
# Abandoned multipart uploads: one is a client that gave up (its parts are billed until the lifecycle aborts it at
# a day); this many at once is a pattern (a client release that never completes, URLs that expire mid-upload).
STALLED_UPLOADS_ALARM = 10
ALARMS = (
    AlarmSpec(
        "ExecutionEndReportsFailedAlarm", "execution-end-reports-failed", "AWS/Events", "FailedInvocations",
        (("RuleName", contracts.EXECUTION_ENDED_RULE_NAME),), "Sum", GT, 0, "notBreaching",
        "EventBridge could not hand an ended execution to the scheduler after a day of retries: its slot stays "
        "taken until the reconciliation finds it, and a timeout or abort is reported only then",
        "The scheduler function (exists? its resource policy admits the rule: ExecutionEndedPermission); the "
        "dead-letter queue holds the undelivered events",
        "Restore the function or its permission (redeploy the jobs tier); the reconciliation releases the slots"),
    AlarmSpec(
        "SourceArrivalsNotDeliveredAlarm", "source-arrivals-not-delivered", "AWS/Events", "FailedInvocations",
        (("RuleName", contracts.SOURCE_ARRIVED_RULE_NAME),), "Sum", GT, 0, "notBreaching",
        "EventBridge could not hand an uploaded source to the scheduler after a day of retries: the upload "
        "completed but no job was submitted for it",
        "The scheduler function (exists? its resource policy admits the rule: SourceArrivedPermission); the "
        "dead-letter queue holds the undelivered Object Created events (bucket, key, version-id)",
        "Restore the function or its permission (redeploy the jobs tier), then submit each dead-lettered video "
        "(POST /videos) or upload it again"),
    AlarmSpec(
        "ReconcileFailedAlarm", "reconcile-invocations-failed", "AWS/Events", "FailedInvocations",
        (("RuleName", contracts.RECONCILE_RULE_NAME),), "Sum", GT, 0, "notBreaching",
        "EventBridge could not invoke the scheduler for a reconciliation: lost execution ends are not reclaimed "
        "and jobs admitted but never started are not put back in the queue",
        "The scheduler function (exists? its resource policy admits the schedule: ReconcilePermission)",
        "Restore the function or its permission (redeploy the jobs tier); the next run reconciles everything"),
    AlarmSpec(
        "SchedulerErrorsAlarm", "scheduler-errors", "AWS/Lambda", "Errors", SCHEDULER_FUNCTION, "Sum", GT, 0,
        "notBreaching",
        "The scheduler raised (an unhandled error or a timeout) on an ended execution or a reconciliation: slots "
        "may stay taken and queued jobs wait; an event it still fails on after Lambda's retries is dead-lettered",
        "The function's log group (/aws/lambda/<function>); the dead-letter queue; the jobs by status "
        "(GET /videos?status=RUNNING, QUEUED)",
        "Fix or roll back the scheduler (generator/functions/video_jobs/) and redeploy the jobs tier; the "
        "reconciliation then releases the slots of ended executions and admits the queue"),
    AlarmSpec(
        "OldestQueuedVideoAlarm", "videos-waiting-too-long", contract.METRICS_NAMESPACE, contract.METRIC_OLDEST_QUEUED,
        ((contract.METRIC_DIMENSION, contracts.JOBS_TABLE_NAME),), "Maximum", GT, QUEUE_WAIT_ALARM_SECONDS,
        "breaching",
        "A video has waited QUEUED for over an hour (the scheduler's minute tick publishes the oldest wait; no "
        "data means the ticks stopped and nobody watches the queue)",
        "GET /videos?status=RUNNING and ?status=QUEUED (slots held by long runs? requeues with lastError "
        "CapacityUnavailable?); the scheduler's log group; the QueuedVideos metric for the backlog's size",
        "Capacity refused: request Fargate quota (see Capacity) or wait out the backoff; slots held: the "
        "reconciliation frees ended ones, stop hung executions; a lasting backlog: raise max_concurrent_videos "
        "within the quota"),
    AlarmSpec(
        "StalledUploadsAlarm", "uploads-not-completed", contract.METRICS_NAMESPACE, contract.METRIC_STALLED_UPLOADS,
        ((contract.METRIC_DIMENSION, contracts.JOBS_TABLE_NAME),), "Maximum", GT, STALLED_UPLOADS_ALARM, "ignore",
        f"More than {STALLED_UPLOADS_ALARM} multipart uploads started over "
        f"{contract.UPLOAD_STALLED_SECONDS // 3600} hours ago are still open (the scheduler's minute tick counts "
        "them from the job table; S3 has no metric for incomplete uploads): clients start uploads and never "
        "complete or abort them, and their parts are billed until the lifecycle aborts them a day after the start. "
        "No data keeps the state: the ticks' silence is videos-waiting-too-long's alarm",
        "The open upload records (status index, status UPLOADING): which videoIds, sizes, startedAt; the API's "
        "log group for POST .../upload/complete answering 400 (parts missing); the dashboard's uploads widget "
        "(4xx on sources/: part URLs expired, the signing role's session ended first); OpenUploads for the trend",
        "Fix the client (complete, or DELETE /videos/{videoId}/upload to abort); expired URLs: the client asks "
        "POST /videos/{videoId}/upload/parts for fresh ones; the lifecycle removes abandoned parts after a day"),
    AlarmSpec(
        "SchedulerThrottlesAlarm", "scheduler-throttles", "AWS/Lambda", "Throttles", SCHEDULER_FUNCTION, "Sum", GT, 0,
        "notBreaching",
        "The scheduler was refused for lack of Lambda concurrency in the account: releases and admissions wait "
        "(Lambda retries an asynchronous event for up to 6 hours)",
        "The account's ConcurrentExecutions against its Lambda concurrency quota; other functions' reservations",
        "Raise the account's Lambda concurrency quota, or lower api_reserved_concurrency"),
)

SCHEDULER_TIMEOUT_SECONDS = 60
# Every status a Step Functions execution ends with: each one frees a slot.
EXECUTION_ENDINGS = ("ABORTED", "FAILED", "SUCCEEDED", "TIMED_OUT")
STATUS_CHANGE = "Step Functions Execution Status Change"
# EventBridge's maximum: an ended execution is retried for a day before it is dead-lettered.
END_EVENT_MAX_AGE_SECONDS = aws_facts.EVENTBRIDGE_MAX_EVENT_AGE_SECONDS
END_EVENT_MAX_RETRIES = aws_facts.EVENTBRIDGE_MAX_RETRIES
# EventBridge's minimum: a reconciliation tick not delivered within a minute is superseded by the next one.
TICK_MAX_AGE_SECONDS = aws_facts.EVENTBRIDGE_MIN_EVENT_AGE_SECONDS

def schedule_expression(minutes: int) -> str:
    """EventBridge's rate(): `rate(1 minute)` but `rate(5 minutes)`, anything else is refused."""
    return f"rate({minutes} minute{'' if minutes == 1 else 's'})"


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
    # In the VPC behind its own security group (HTTPS out only): the scheduler talks to AWS APIs (DynamoDB, S3,
    # Step Functions, SNS) and nothing else; the API function's group also reaches the cache, which this must not.
    function = t.add_resource(job_control_function(
        "SchedulerFunction", cfg, Ref(table), p[contracts.STATE_MACHINE_ARN],
        environment={contract.ENV_ERROR_TOPIC_ARN: p[contracts.ERROR_TOPIC_ARN],
                     contract.ENV_MEDIA_BUCKET: p[contracts.MEDIA_BUCKET_NAME]},
        FunctionName=function_name,
        Description=f"Releases a slot when a video processing execution ends and admits queued jobs ({cfg.name})",
        Handler=contract.SCHEDULER_HANDLER,
        Role=GetAtt(role, "Arn"),
        Timeout=SCHEDULER_TIMEOUT_SECONDS,
        # EventBridge invokes it asynchronously: an event its runs still fail on after Lambda's own retries waits
        # in the notification dead-letter queue, which the dead-letter-queue-not-empty alarm watches.
        DeadLetterConfig=DeadLetterConfig(TargetArn=p[contracts.DEAD_LETTER_QUEUE_ARN]),
        **blocks.vpc_function_properties(cfg, logs, p[contracts.PRIVATE_SUBNET_IDS],
                                         p[contracts.SCHEDULER_FUNCTION_SECURITY_GROUP_ID]),
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
        # What EventBridge cannot deliver after its retries waits in the notification dead-letter queue (its
        # alarm: dead-letter-queue-not-empty); FailedInvocations has its own alarm. A lost end is also reclaimed by
        # the reconciliation below.
        Targets=[scheduler_target_with_dead_letters(function, p)],
    ))
    # Every source uploaded (a PUT or a completed multipart upload) submits its job: S3 sends Object Created to
    # EventBridge (the media tier turned the bucket's notifications on). Delivered at least once: the scheduler
    # admits each object version once (jobs/arrivals.py). An event not delivered after a day waits in the
    # dead-letter queue, and FailedInvocations has its alarm (source-arrivals-not-delivered).
    arrived = t.add_resource(Rule(
        "SourceArrivedRule",
        Name=names.source_arrived_rule(cfg.name),  # the dead-letter queue admits it by this name
        Description=f"Hands every source uploaded to the media bucket to the scheduler ({cfg.name})",
        State="ENABLED",
        EventPattern={
            "source": ["aws.s3"],
            "detail-type": [contract.OBJECT_CREATED],
            "detail": {"bucket": {"name": [p[contracts.MEDIA_BUCKET_NAME]]},
                       "object": {"key": [{"prefix": contract.SOURCES_PREFIX}]}},
        },
        Targets=[scheduler_target_with_dead_letters(function, p)],
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
    for rule in (ended, arrived, reconcile):
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
    blocks.output(t, contracts.SOURCE_ARRIVED_RULE_NAME, Ref(arrived))
    return t


def scheduler_target_with_dead_letters(function, p: dict[contracts.Contract, Ref]) -> Target:
    """The scheduler as a rule's target, an event it was not handed after the retries kept in the dead-letter
    queue: for events that are the only record of what happened (an execution's end, a source's arrival)."""
    return Target(
        Id="Scheduler",
        Arn=GetAtt(function, "Arn"),
        DeadLetterConfig=RuleDeadLetterConfig(Arn=p[contracts.DEAD_LETTER_QUEUE_ARN]),
        RetryPolicy=RetryPolicy(MaximumEventAgeInSeconds=END_EVENT_MAX_AGE_SECONDS,
                                MaximumRetryAttempts=END_EVENT_MAX_RETRIES),
    )


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
        # Admission on arrival reads the source's current version and its metadata (HeadObject needs GetObject);
        # nothing outside sources/, and no KMS: a HEAD decrypts nothing.
        Statement(Sid="ReadSourceMetadata", Effect=Allow, Action=[s3_actions.GetObject],
                  Resource=[Sub(f"${{Bucket}}/{contract.SOURCES_PREFIX}*", Bucket=p[contracts.MEDIA_BUCKET_ARN])]),
        *blocks.vpc_function_statements(names.lambda_log_group(names.scheduler(cfg.name)),
                                        contracts.SCHEDULER_FUNCTION_SECURITY_GROUP_ID.name),
    ]

