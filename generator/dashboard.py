"""The operations dashboard: the pipeline's health at a glance, one CloudWatch dashboard per environment.

The body is JSON with ${Name} placeholders (the contracts in CONSUMES, the alarms' ARNs, AWS::Region) that the
operations tier fills with Fn::Sub. The layout is curated, not derived: a widget for a new tier is an edit
here; its alarms appear in the first widget without one.
"""

from __future__ import annotations

from generator import contracts
from generator.alarms import PERIOD, cache_node_ids
from generator.config import EnvConfig
from generator.functions.video_jobs import contract as jobs_contract

# The media bucket's request-metrics filters (generator/tiers/media.py's MetricsConfigurations, by id).
SOURCES_FILTER, OUTPUTS_FILTER = "sources", "outputs"

C = contracts
# The contracts the widgets read: the operations tier consumes them (with those its alarms watch).
CONSUMES = (C.STATE_MACHINE_ARN, C.API_NAME, C.API_STAGE_NAME, C.API_FUNCTION_NAME, C.SCHEDULER_FUNCTION_NAME,
            C.EXECUTION_ENDED_RULE_NAME, C.RECONCILE_RULE_NAME, C.DATABASE_IDENTIFIER, C.CLUSTER_NAME,
            C.CACHE_REPLICATION_GROUP_ID, C.MEDIA_BUCKET_NAME, C.SOURCE_ARRIVED_RULE_NAME, C.JOBS_TABLE_NAME)


def _ref(contract: contracts.Contract) -> str:
    return f"${{{contract.name}}}"


def _metric(namespace: str, metric: str, dims: tuple[tuple[str, str], ...], **options: str) -> list:
    return [namespace, metric, *[x for pair in dims for x in pair], {"stat": "Sum", **options}]


def _widget(x: int, y: int, width: int, title: str, metrics: list, **properties) -> dict:
    return {"type": "metric", "x": x, "y": y, "width": width, "height": 6, "properties": {
        "title": title, "region": "${AWS::Region}", "view": "timeSeries", "period": PERIOD,
        "metrics": metrics, **properties}}


def body(cfg: EnvConfig, alarm_titles: list[str]) -> dict:
    """The dashboard body; alarm_titles are the logical IDs of the alarms its first widget shows."""
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
    upload_route = (*api, ("Resource", "/videos/{videoId}/upload"), ("Method", "POST"))
    arrivals = (("RuleName", _ref(C.SOURCE_ARRIVED_RULE_NAME)),)
    jobs_table = ((jobs_contract.METRIC_DIMENSION, _ref(C.JOBS_TABLE_NAME)),)
    sources, outputs = ((("BucketName", _ref(C.MEDIA_BUCKET_NAME)), ("FilterId", f)) for f in (SOURCES_FILTER,
                                                                                                  OUTPUTS_FILTER))
    outcomes = ("ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted")
    right = {"yAxis": "right"}
    widgets = [
        {"type": "alarm", "x": 0, "y": 0, "width": 24, "height": 3, "properties": {
            "title": "Is it healthy: every alarm (runbook: docs/operations.md)", "region": "${AWS::Region}",
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
        _widget(0, 27, 12, "Uploads: started, parts and PUTs sent, completed (Object Created), still open", [
            _metric("AWS/ApiGateway", "Count", upload_route, label="started (POST .../upload)"),
            _metric("AWS/S3", "PutRequests", sources, label="PUTs on sources/ (single PUTs and parts)"),
            _metric("AWS/Events", "MatchedEvents", arrivals, label="completed (Object Created)"),
            _metric(jobs_contract.METRICS_NAMESPACE, jobs_contract.METRIC_OPEN_UPLOADS, jobs_table, stat="Maximum",
                    label="multipart uploads open", **right),
            _metric(jobs_contract.METRICS_NAMESPACE, jobs_contract.METRIC_STALLED_UPLOADS, jobs_table,
                    stat="Maximum", label=f"open over {jobs_contract.UPLOAD_STALLED_SECONDS // 3600} hours", **right),
            _metric("AWS/S3", "4xxErrors", sources, label="S3 refused on sources/ (4xx)", **right),
        ]),
        _widget(12, 27, 12, "Media bytes in and out (S3 request metrics per prefix)", [
            _metric("AWS/S3", "BytesUploaded", sources, label="in: sources uploaded by clients"),
            _metric("AWS/S3", "BytesDownloaded", sources, label="out: sources read by the processor"),
            _metric("AWS/S3", "BytesUploaded", outputs, label="in: outputs written by the processor"),
            _metric("AWS/S3", "BytesDownloaded", outputs, label="out: outputs fetched (presigned GETs)"),
        ]),
    ]
    return {"widgets": widgets}
