"""operations: the ops topic every alarm notifies (ALARM and OK), the alarms of every tier's failure modes,
and the dashboard that shows the pipeline's health at a glance.

One tier, last in the registry, owns all of them: it consumes the names and ids of the watched resources
(contracts), so the runbook (README, rendered from ALARMS by `runbook_markdown`), the dashboard and the
property tests read one table. The ops topic has its own key and its own policy: when the error topic (or
its key) fails, the alarms still reach a person by this other road.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from troposphere import Equals, GetAtt, Not, Ref, Sub, Template
from troposphere.cloudwatch import Alarm, Dashboard, MetricDimension
from troposphere.sns import SubscriptionResource, Topic

from generator import blocks, contracts, names
from generator.config import EnvConfig
from generator.functions.video_jobs import contract as jobs_contract

C = contracts
CONSUMES = (C.OPS_EMAIL, C.STATE_MACHINE_ARN, C.ERROR_TOPIC_NAME, C.DEAD_LETTER_QUEUE_NAME,
            C.EXECUTION_ENDED_RULE_NAME, C.RECONCILE_RULE_NAME, C.SCHEDULER_FUNCTION_NAME, C.API_NAME,
            C.API_STAGE_NAME, C.API_FUNCTION_NAME, C.DATABASE_IDENTIFIER, C.CACHE_REPLICATION_GROUP_ID,
            C.CLUSTER_NAME, C.DATABASE_BOOTSTRAP_FUNCTION_NAME, C.JOBS_TABLE_NAME)
PRODUCES = (C.OPS_TOPIC_ARN, C.DASHBOARD_NAME)

HAS_EMAIL = "HasOpsEmail"
PERIOD = 300  # seconds: every alarm reads 5-minute periods
GIB, MIB = 2 ** 30, 2 ** 20

# What TreatMissingData means here, per value (README runbook says which alarm uses which, and why).
MISSING = {
    "notBreaching": "no data is no event: nothing ran, nothing failed",
    "breaching": "a source that stops reporting is treated as unhealthy (this alarm is its heartbeat)",
    "ignore": "keeps its state: silence is covered by the store's heartbeat alarm, no flapping",
}


@dataclass(frozen=True)
class AlarmSpec:
    title: str  # logical ID (the cache's get a node suffix)
    what: str  # alarm name: <project>-<env>-<what>
    tier: str  # the tier whose resource it watches
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, contracts.Contract], ...]
    statistic: str  # Sum, Average, Minimum, Maximum, or a percentile such as p99
    comparison: str
    threshold: float | str  # a number, or the EnvConfig setting that gives it
    missing: str  # TreatMissingData
    means: str
    check: str
    recover: str
    periods: int = 1  # evaluation periods, all of which must breach
    scale: int = 1  # multiplies a setting (GiB, MiB to bytes)
    per_cache_node: bool = False

    def threshold_for(self, cfg: EnvConfig) -> float:
        value = getattr(cfg, self.threshold) * self.scale if isinstance(self.threshold, str) else self.threshold
        return value


STATES = (("StateMachineArn", C.STATE_MACHINE_ARN),)
API = (("ApiName", C.API_NAME), ("Stage", C.API_STAGE_NAME))
FUNCTION = (("FunctionName", C.API_FUNCTION_NAME),)
BOOTSTRAP_FUNCTION = (("FunctionName", C.DATABASE_BOOTSTRAP_FUNCTION_NAME),)
SCHEDULER_FUNCTION = (("FunctionName", C.SCHEDULER_FUNCTION_NAME),)
JOBS = ((jobs_contract.METRIC_DIMENSION, C.JOBS_TABLE_NAME),)
# A video waiting this long means the queue does not drain (slots held, starts refused) or holds more than an
# hour of the environment's capacity: either way a person decides (raise the cap, the quota, or wait).
QUEUE_WAIT_ALARM_SECONDS = 3600
DATABASE = (("DBInstanceIdentifier", C.DATABASE_IDENTIFIER),)
CACHE_NODE = (("CacheClusterId", C.CACHE_REPLICATION_GROUP_ID),)
EXECUTIONS = "Step Functions console, the environment's state machine, executions with status"
GT, LT = "GreaterThanThreshold", "LessThanThreshold"


def _execution_alarm(title: str, what: str, metric: str, means: str, check: str, recover: str) -> AlarmSpec:
    return AlarmSpec(title, what, "workflow", "AWS/States", metric, STATES, "Sum", GT, 0, "notBreaching",
                     means, check, recover)


ALARMS = (
    _execution_alarm(
        "ExecutionsFailedAlarm", "executions-failed", "ExecutionsFailed",
        "An execution ended FAILED: processing failed, the input was rejected, or NotifyFailure itself could not "
        "publish (then this alarm is the only word of it)",
        f"{EXECUTIONS} FAILED; the execution's error: ProcessingError was reported on the error topic, an SNS.* "
        "or KMS.* error means the error topic could not be reached",
        "Fix the cause (image, input, error topic or its key); submit the videoId again (POST /videos: a failed "
        "video gets its next attempt)"),
    _execution_alarm(
        "ExecutionsTimedOutAlarm", "executions-timed-out", "ExecutionsTimedOut",
        "An execution ran past 30 minutes and was stopped; the scheduler reports it on the error topic",
        f"{EXECUTIONS} TIMED_OUT; the processor's log stream for the videoId (processor log group)",
        "Size the task (task_cpu, task_memory) or fix a hanging processor; submit the videoId again"),
    _execution_alarm(
        "ExecutionsAbortedAlarm", "executions-aborted", "ExecutionsAborted",
        "Someone or something stopped an execution; the scheduler reports it on the error topic",
        f"{EXECUTIONS} ABORTED; CloudTrail StopExecution events for who stopped it",
        "If unintended, submit the videoId again"),
    _execution_alarm(
        "ExecutionsThrottledAlarm", "executions-throttled", "ExecutionThrottled",
        "Step Functions throttled state transitions or starts: executions are delayed",
        "Service Quotas for Step Functions (StartExecution, state transitions) in the region; API traffic",
        "Request a quota increase, or lower the API stage throttling (api_rate_limit) until it is granted"),
    AlarmSpec(
        "ErrorNotificationsFailedAlarm", "error-notifications-failed", "notification", "AWS/SNS",
        "NumberOfNotificationsFailed", (("TopicName", C.ERROR_TOPIC_NAME),), "Sum", GT, 0, "notBreaching",
        "The error topic accepted a message but could not deliver it to a subscriber",
        "The error topic's subscriptions (confirmed?) and the dead-letter queue, which holds what failed",
        "Fix or confirm the subscription; replay the messages from the dead-letter queue"),
    AlarmSpec(
        "ExecutionEndReportsFailedAlarm", "execution-end-reports-failed", "jobs", "AWS/Events",
        "FailedInvocations", (("RuleName", C.EXECUTION_ENDED_RULE_NAME),), "Sum", GT, 0, "notBreaching",
        "EventBridge could not hand an ended execution to the scheduler after a day of retries: its slot stays "
        "taken until the reconciliation finds it, and a timeout or abort is reported only then",
        "The scheduler function (exists? its resource policy admits the rule: ExecutionEndedPermission); the "
        "dead-letter queue holds the undelivered events",
        "Restore the function or its permission (redeploy the jobs tier); the reconciliation releases the slots"),
    AlarmSpec(
        "ReconcileFailedAlarm", "reconcile-invocations-failed", "jobs", "AWS/Events", "FailedInvocations",
        (("RuleName", C.RECONCILE_RULE_NAME),), "Sum", GT, 0, "notBreaching",
        "EventBridge could not invoke the scheduler for a reconciliation: lost execution ends are not reclaimed "
        "and jobs admitted but never started are not put back in the queue",
        "The scheduler function (exists? its resource policy admits the schedule: ReconcilePermission)",
        "Restore the function or its permission (redeploy the jobs tier); the next run reconciles everything"),
    AlarmSpec(
        "SchedulerErrorsAlarm", "scheduler-errors", "jobs", "AWS/Lambda", "Errors", SCHEDULER_FUNCTION, "Sum", GT,
        0, "notBreaching",
        "The scheduler raised (an unhandled error or a timeout) on an ended execution or a reconciliation: slots "
        "may stay taken and queued jobs wait; an event it still fails on after Lambda's retries is dead-lettered",
        "The function's log group (/aws/lambda/<function>); the dead-letter queue; the jobs by status "
        "(GET /videos?status=RUNNING, QUEUED)",
        "Fix or roll back the scheduler (generator/functions/video_jobs/) and redeploy the jobs tier; the "
        "reconciliation then releases the slots of ended executions and admits the queue"),
    AlarmSpec(
        "OldestQueuedVideoAlarm", "videos-waiting-too-long", "jobs", jobs_contract.METRICS_NAMESPACE,
        jobs_contract.METRIC_OLDEST_QUEUED, JOBS, "Maximum", GT, QUEUE_WAIT_ALARM_SECONDS, "breaching",
        "A video has waited QUEUED for over an hour (the scheduler's minute tick publishes the oldest wait; no "
        "data means the ticks stopped and nobody watches the queue)",
        "GET /videos?status=RUNNING and ?status=QUEUED (slots held by long runs? requeues with lastError "
        "CapacityUnavailable?); the scheduler's log group; the QueuedVideos metric for the backlog's size",
        "Capacity refused: request Fargate quota (see Capacity) or wait out the backoff; slots held: the "
        "reconciliation frees ended ones, stop hung executions; a lasting backlog: raise max_concurrent_videos "
        "within the quota"),
    AlarmSpec(
        "SchedulerThrottlesAlarm", "scheduler-throttles", "jobs", "AWS/Lambda", "Throttles", SCHEDULER_FUNCTION,
        "Sum", GT, 0, "notBreaching",
        "The scheduler was refused for lack of Lambda concurrency in the account: releases and admissions wait "
        "(Lambda retries an asynchronous event for up to 6 hours)",
        "The account's ConcurrentExecutions against its Lambda concurrency quota; other functions' reservations",
        "Raise the account's Lambda concurrency quota, or lower api_reserved_concurrency"),
    AlarmSpec(
        "DeadLetterQueueAlarm", "dead-letter-queue-not-empty", "notification", "AWS/SQS",
        "ApproximateNumberOfMessagesVisible", (("QueueName", C.DEAD_LETTER_QUEUE_NAME),), "Maximum", GT, 0,
        "notBreaching",
        "Notifications failed delivery to a subscriber, ended executions could not be handed to the scheduler, or "
        "the scheduler failed on an event after Lambda's retries; they wait in the dead-letter queue (kept 14 days)",
        "The messages in the queue (SQS console, poll): a notification's subscription or topic, or an execution "
        "status change event (the scheduler's errors alarm and log group)",
        "Fix the subscription and re-publish each notification to its topic; an execution's end needs nothing once "
        "the scheduler works again (the reconciliation releases its slot); then delete the messages"),
    AlarmSpec(
        "Api5xxRateAlarm", "api-5xx-rate", "api", "AWS/ApiGateway", "5XXError", API, "Average", GT, 0.05,
        "notBreaching",
        "More than 5% of API requests failed on the server side for 10 minutes",
        "The API access log group (status, error) and the function's log group; the function alarms",
        "Fix or roll back the function or its permissions; callers retry 5XX answers",
        periods=2),
    AlarmSpec(
        "ApiLatencyAlarm", "api-p99-latency", "api", "AWS/ApiGateway", "Latency", API, "p99", GT, 3000,
        "notBreaching",
        "The slowest 1% of API requests took over 3 s for 15 minutes (the function times out at 10 s)",
        "X-Ray traces of the stage; the function's Duration; Step Functions StartExecution latency",
        "Find the slow dependency in the traces; raise the function's memory if it is the function itself",
        periods=3),
    AlarmSpec(
        "FunctionErrorsAlarm", "api-function-errors", "api", "AWS/Lambda", "Errors", FUNCTION, "Sum", GT, 0,
        "notBreaching",
        "The API function raised (an unhandled error or a timeout): callers got a 5XX",
        "The function's log group (/aws/lambda/<function>), its last deployment",
        "Fix or roll back the handler (generator/functions/video_jobs/) and redeploy the api tier"),
    AlarmSpec(
        "FunctionThrottlesAlarm", "api-function-throttles", "api", "AWS/Lambda", "Throttles", FUNCTION, "Sum", GT,
        0, "notBreaching",
        "Requests found every reserved instance of the function busy and were refused",
        "The function's ConcurrentExecutions against its reserved concurrency (api_reserved_concurrency, or the "
        "account's unreserved pool); API traffic",
        "Raise api_reserved_concurrency (and the account's Lambda concurrency quota), or lower api_rate_limit"),
    AlarmSpec(
        "BootstrapErrorsAlarm", "db-bootstrap-errors", "schema", "AWS/Lambda", "Errors", BOOTSTRAP_FUNCTION, "Sum",
        GT, 0, "notBreaching",
        "The database bootstrap raised (a timeout, or a failure before it could answer CloudFormation): the deploy "
        "that ran it failed or waited for its service timeout",
        "The function's log group (/aws/lambda/<function>) and the schema stack's events",
        "Fix the migration or the database's reachability (bootstrap security group, master secret) and deploy again"),
    AlarmSpec(
        "BootstrapThrottlesAlarm", "db-bootstrap-throttles", "schema", "AWS/Lambda", "Throttles", BOOTSTRAP_FUNCTION,
        "Sum", GT, 0, "notBreaching",
        "The bootstrap was refused for lack of Lambda concurrency in the account: its deploy waits or fails",
        "The account's ConcurrentExecutions against its Lambda concurrency quota; other functions' reservations",
        "Deploy again once the account has free concurrency, or raise the account's Lambda concurrency quota"),
    AlarmSpec(
        "DatabaseCpuAlarm", "database-cpu", "storage", "AWS/RDS", "CPUUtilization", DATABASE, "Average", GT, 80,
        "ignore",
        "The database's CPU stayed above 80% for 15 minutes",
        "Performance Insights: top SQL and waits",
        "Fix the query or index; else a larger db_instance_class",
        periods=3),
    AlarmSpec(
        "DatabaseFreeStorageAlarm", "database-free-storage", "storage", "AWS/RDS", "FreeStorageSpace", DATABASE,
        "Minimum", LT, "db_min_free_storage_gib", "breaching",
        "Free storage fell below db_min_free_storage_gib, or the database stopped reporting",
        "Whether storage autoscaling reached db_max_storage_gib; the database's status (available?)",
        "Raise db_max_storage_gib, or remove data; if the database is down, its events in the RDS console",
        scale=GIB),
    AlarmSpec(
        "DatabaseFreeableMemoryAlarm", "database-freeable-memory", "storage", "AWS/RDS", "FreeableMemory",
        DATABASE, "Average", LT, "db_min_freeable_memory_mib", "ignore",
        "The database's free memory stayed below db_min_freeable_memory_mib for 15 minutes",
        "Connections (each costs memory) and Performance Insights",
        "Fewer connections (pooling), or a larger db_instance_class",
        periods=3, scale=MIB),
    AlarmSpec(
        "DatabaseConnectionsAlarm", "database-connections", "storage", "AWS/RDS", "DatabaseConnections", DATABASE,
        "Maximum", GT, "db_max_connections", "ignore",
        "Connections stayed above db_max_connections (near the instance's max_connections) for 10 minutes",
        "Running tasks (dashboard) against connections; pg_stat_activity for idle sessions",
        "Close idle connections, pool them, or a larger db_instance_class",
        periods=2),
    AlarmSpec(
        "CacheMemoryAlarm", "cache-memory", "cache", "AWS/ElastiCache", "DatabaseMemoryUsagePercentage",
        CACHE_NODE, "Maximum", GT, 80, "breaching",
        "A Redis node used over 80% of its memory for 15 minutes, or stopped reporting",
        "Keys without a TTL (redis-cli --bigkeys over TLS); the node's status in the ElastiCache console",
        "Expire or delete keys, or a larger cache_node_type",
        periods=3, per_cache_node=True),
    AlarmSpec(
        "CacheEvictionsAlarm", "cache-evictions", "cache", "AWS/ElastiCache", "Evictions", CACHE_NODE, "Sum", GT, 0,
        "ignore",
        "Redis evicted keys to make room: data the pipeline stored is gone",
        "The node's memory (CacheMemoryAlarm, dashboard) and which keys lack a TTL",
        "Same as cache memory; make the processor tolerate a missing key",
        per_cache_node=True),
    AlarmSpec(
        "CacheCpuAlarm", "cache-engine-cpu", "cache", "AWS/ElastiCache", "EngineCPUUtilization", CACHE_NODE,
        "Average", GT, 80, "ignore",
        "The Redis engine thread stayed above 80% CPU for 15 minutes",
        "The cache slow log group for expensive commands",
        "Replace the expensive commands (KEYS, large ranges), or a larger cache_node_type",
        periods=3, per_cache_node=True),
)


def cache_node_ids(cfg: EnvConfig) -> list[str]:
    """The member clusters of a cluster-mode-disabled replication group: <group id>-001, -002, ..."""
    return [f"{n:03d}" for n in range(1, cfg.cache_node_count + 1)]


def expanded(cfg: EnvConfig) -> list[tuple[str, str, AlarmSpec, dict]]:
    """(logical ID, alarm name suffix, spec, dimension name -> value) for every alarm of the environment."""
    found = []
    for spec in ALARMS:
        nodes = cache_node_ids(cfg) if spec.per_cache_node else [None]
        for node in nodes:
            if node is None:
                dims = {name: Ref(contract.name) for name, contract in spec.dimensions}
                found.append((spec.title, spec.what, spec, dims))
            else:
                dims = {name: Sub(f"${{{contract.name}}}-{node}") for name, contract in spec.dimensions}
                found.append((spec.title.replace("Cache", f"CacheNode{node}", 1),
                              spec.what.replace("cache", f"cache-node-{node}", 1), spec, dims))
    return found


def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing operations: ops topic, alarms of every tier, dashboard")
    p = blocks.parameters(t, CONSUMES)
    t.add_condition(HAS_EMAIL, Not(Equals(p[C.OPS_EMAIL], "")))

    # Its own key: a disabled or broken notification key must not silence the alarms as well.
    key = blocks.kms_key(t, cfg, "OpsKey", "Encrypts the ops topic", names.env_prefixed(cfg.name, "ops"), [
        blocks.service_key_user_statement("cloudwatch", "CloudWatchAlarmsPublish", blocks.SNS_TOPIC_CONTEXT,
                                          blocks.arn("sns", names.topic("ops", cfg.name))),
        blocks.via_services_statement(["sns"]),
    ])
    topic = t.add_resource(Topic(
        "OpsTopic",
        TopicName=names.topic("ops", cfg.name),
        DisplayName="Video Processing Operations Alarms",
        FifoTopic=False,
        KmsMasterKeyId=GetAtt(key, "Arn"),
        Tags=blocks.tags(cfg),
    ))
    blocks.topic_policy(t, "OpsTopicPolicy", topic, blocks.alarms_publish_statement(
        "AlarmsOfThisEnvironmentPublish", [Ref(topic)], names.alarms_pattern(cfg.name)))
    t.add_resource(SubscriptionResource(
        "OpsTopicEmailSubscription",
        Condition=HAS_EMAIL,
        TopicArn=Ref(topic),
        Protocol="email",
        Endpoint=p[C.OPS_EMAIL],
    ))

    alarms = []
    for title, what, spec, dims in expanded(cfg):
        statistic = ({"ExtendedStatistic": spec.statistic} if spec.statistic.startswith("p")
                     else {"Statistic": spec.statistic})
        alarms.append(t.add_resource(Alarm(
            title,
            AlarmName=names.alarm(cfg.name, what),
            AlarmDescription=f"{spec.means} ({cfg.name}). Runbook: README.md, Operations, {runbook_key(spec)}",
            Namespace=spec.namespace,
            MetricName=spec.metric,
            Dimensions=[MetricDimension(Name=name, Value=value) for name, value in dims.items()],
            Period=PERIOD,
            EvaluationPeriods=spec.periods,
            DatapointsToAlarm=spec.periods,
            Threshold=spec.threshold_for(cfg),
            ComparisonOperator=spec.comparison,
            TreatMissingData=spec.missing,
            ActionsEnabled=True,
            AlarmActions=[Ref(topic)],
            OKActions=[Ref(topic)],
            **statistic,
        )))

    dashboard = t.add_resource(Dashboard(
        "Dashboard",
        DashboardName=names.dashboard(cfg.name),
        DashboardBody=Sub(json.dumps(dashboard_body(cfg, [a.title for a in alarms]), sort_keys=True)),
    ))

    blocks.output(t, C.OPS_TOPIC_ARN, Ref(topic), cfg)
    blocks.output(t, C.DASHBOARD_NAME, Ref(dashboard))
    return t


# --------------------------------------------------------------------------------------------------
# The dashboard: ${Name} placeholders (contracts, alarm ARNs, AWS::Region) are filled by Fn::Sub.

def _ref(contract: contracts.Contract) -> str:
    return f"${{{contract.name}}}"


def _metric(namespace: str, metric: str, dims: tuple[tuple[str, str], ...], **options: str) -> list:
    return [namespace, metric, *[x for pair in dims for x in pair], {"stat": "Sum", **options}]


def _widget(x: int, y: int, width: int, title: str, metrics: list, **properties) -> dict:
    return {"type": "metric", "x": x, "y": y, "width": width, "height": 6, "properties": {
        "title": title, "region": "${AWS::Region}", "view": "timeSeries", "period": PERIOD,
        "metrics": metrics, **properties}}


def dashboard_body(cfg: EnvConfig, alarm_titles: list[str]) -> dict:
    states = (("StateMachineArn", _ref(C.STATE_MACHINE_ARN)),)
    api = (("ApiName", _ref(C.API_NAME)), ("Stage", _ref(C.API_STAGE_NAME)))
    submit = (*api, ("Resource", "/videos"), ("Method", "POST"))
    function = (("FunctionName", _ref(C.API_FUNCTION_NAME)),)
    scheduler = (("FunctionName", _ref(C.SCHEDULER_FUNCTION_NAME)),)
    rules = [(label, (("RuleName", _ref(contract)),)) for label, contract in (
        ("ended executions", C.EXECUTION_ENDED_RULE_NAME), ("reconciliation", C.RECONCILE_RULE_NAME))]
    database = (("DBInstanceIdentifier", _ref(C.DATABASE_IDENTIFIER)),)
    cluster = (("ClusterName", _ref(C.CLUSTER_NAME)),)
    nodes = [(("CacheClusterId", f"{_ref(C.CACHE_REPLICATION_GROUP_ID)}-{n}"),) for n in cache_node_ids(cfg)]
    outcomes = ("ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted")
    right = {"yAxis": "right"}
    widgets = [
        {"type": "alarm", "x": 0, "y": 0, "width": 24, "height": 3, "properties": {
            "title": "Is it healthy: every alarm (README, Operations, runbook)", "region": "${AWS::Region}",
            "alarms": [f"${{{title}.Arn}}" for title in alarm_titles], "sortBy": "stateUpdatedTimestamp"}},
        _widget(0, 3, 8, "Submissions: accepted by the API, executions started", [
            _metric("AWS/ApiGateway", "Count", submit, label="POST /videos"),
            _metric("AWS/States", "ExecutionsStarted", states, label="executions started"),
        ]),
        _widget(8, 3, 8, "Keeping up: videos processing now (running tasks) against started", [
            _metric("ECS/ContainerInsights", "TaskCount", cluster, stat="Maximum", label="tasks running"),
            _metric("AWS/States", "ExecutionsStarted", states, label="started", **right),
        ]),
        _widget(16, 3, 8, "Outcomes", [
            _metric("AWS/States", metric, states, label=metric.removeprefix("Executions")) for metric in outcomes]),
        _widget(0, 9, 8, "Processing duration (execution time, ms)", [
            _metric("AWS/States", "ExecutionTime", states, stat=stat, label=stat) for stat in ("p50", "p90", "Maximum")
        ]),
        _widget(8, 9, 8, "API traffic and errors", [
            _metric("AWS/ApiGateway", "Count", api, label="requests"),
            _metric("AWS/ApiGateway", "4XXError", api, label="4XX"),
            _metric("AWS/ApiGateway", "5XXError", api, label="5XX"),
            _metric("AWS/Lambda", "Errors", function, label="function errors"),
            _metric("AWS/Lambda", "Throttles", function, label="function throttles"),
        ]),
        _widget(16, 9, 8, "API latency (ms)", [
            _metric("AWS/ApiGateway", "Latency", api, stat=stat, label=stat) for stat in ("p50", "p99")]),
        _widget(0, 15, 12, "Database", [
            _metric("AWS/RDS", "CPUUtilization", database, stat="Average", label="CPU %"),
            _metric("AWS/RDS", "DatabaseConnections", database, stat="Maximum", label="connections"),
            _metric("AWS/RDS", "FreeStorageSpace", database, stat="Minimum", label="free storage (bytes)", **right),
            _metric("AWS/RDS", "FreeableMemory", database, stat="Minimum", label="freeable memory (bytes)", **right),
        ]),
        _widget(12, 15, 12, "Cache", [
            _metric("AWS/ElastiCache", metric, dims, stat=stat, label=f"{label} {dims[0][1][-3:]}", **extra)
            for dims in nodes
            for metric, stat, label, extra in (
                ("DatabaseMemoryUsagePercentage", "Maximum", "memory %", {}),
                ("EngineCPUUtilization", "Average", "engine CPU %", {}),
                ("Evictions", "Sum", "evictions", right),
            )
        ]),
        _widget(0, 21, 24, "Job control: scheduler runs and failures, rules that could not invoke it", [
            _metric("AWS/Lambda", "Invocations", scheduler, label="scheduler runs"),
            _metric("AWS/Lambda", "Errors", scheduler, label="scheduler errors", **right),
            _metric("AWS/Lambda", "Throttles", scheduler, label="scheduler throttles", **right),
            *[_metric("AWS/Events", "FailedInvocations", dims, label=f"{label}: failed invocations", **right)
              for label, dims in rules],
        ]),
    ]
    return {"widgets": widgets}


# --------------------------------------------------------------------------------------------------
# The runbook (README, Operations): one row per alarm, from ALARMS.

def _threshold_text(spec: AlarmSpec) -> str:
    op = ">" if spec.comparison == GT else "<"
    if isinstance(spec.threshold, str):
        unit = {GIB: " GiB", MIB: " MiB"}.get(spec.scale, "")
        return f"{op} `{spec.threshold}`{unit}"
    return f"{op} {spec.threshold:g}" + (" ms" if spec.metric == "Latency" else "")


def runbook_key(spec: AlarmSpec) -> str:
    """The alarm's row in the runbook: its name without the `<project>-<env>-` prefix (cache nodes as NNN)."""
    return spec.what.replace("cache", "cache-node-NNN", 1) if spec.per_cache_node else spec.what


def runbook_markdown() -> str:
    rows = ["| alarm (`<project>-<env>-…`) | metric | fires when | missing data | what it means | first check "
            "| recover |", "|---|---|---|---|---|---|---|"]
    for spec in ALARMS:
        span = "a" if spec.periods == 1 else f"{spec.periods} consecutive"
        fires = f"{spec.statistic} {_threshold_text(spec)} in {span} {PERIOD // 60}-minute period" + (
            "s" if spec.periods > 1 else "")
        rows.append(f"| `{runbook_key(spec)}` ({spec.tier}) | {spec.namespace} {spec.metric} | {fires} | "
                    f"`{spec.missing}`: "
                    f"{MISSING[spec.missing]} | {spec.means} | {spec.check} | {spec.recover} |")
    return "\n".join(rows) + "\n"
