"""What an environment costs: pure functions of its templates, the price snapshot and the recorded job calls.

    estimate(env, region, templates, usage, snapshot, job_calls) -> Estimate

Every quantity comes from the templates (resource counts, instance classes, task size, the state machine's paths,
schedules, retention) or from job_calls.json (requests per job, recorded in the tests); what neither holds is an
assumption below, printed beside the figures. A resource type is priced by a rule (RULES), priced where its use
is caused (PRICED_AT), or free (FREE, with the reason); tests/test_cost.py fails on a type in none of them.
Free tiers are not counted: the figures are what the environment costs on an account that has used them up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from generator import encode_speed
from generator.cost.calls import JobCalls
from generator.cost.prices import Snapshot
from generator.errors import InputError

DEFAULT_VIDEOS_PER_MONTH = 1000.0
DEFAULT_GB_PER_VIDEO = 1.0


# What the command's options set; `usage_assumptions` prints them with the constant ones below.
@dataclass(frozen=True)
class Usage:
    videos_per_month: float = DEFAULT_VIDEOS_PER_MONTH
    # Task time; None: a typical source (encode_speed.TYPICAL_SOURCE_MINUTES) at the measured encode speed on each
    # environment's task, as generator/capacity.py assumes.
    minutes_per_video: float | None = None
    gb_per_video: float = DEFAULT_GB_PER_VIDEO  # outputs written per video


@dataclass(frozen=True)
class Assumption:
    name: str
    value: float
    unit: str
    why: str


# What neither the templates nor the tests hold. Each is printed with the figures it moves.
STATUS_READS_PER_VIDEO = 1
LAMBDA_MILLISECONDS = {"api": 200, "scheduler": 300}  # billed duration per invocation, by handler module
LOG_MB_PER_VIDEO = 1.0
LOG_KB_PER_SCHEDULED_RUN = 1.0
FLOW_LOG_GB_PER_MONTH = 1.0
KMS_REQUESTS_PER_KEY_PER_VIDEO = 2
RDS_BACKUP_DAILY_CHANGE = 0.02
CACHE_DATA_GB = 1.0
CONTAINER_INSIGHTS_CLUSTER_METRICS = 8
CONTAINER_INSIGHTS_METRICS_PER_TASK_FAMILY = 9
EMAILS_PER_PUBLISH = 1
OUTPUT_MONTHS_KEPT = 1.0
JOB_RECORD_KB = 1.0
NAT_GB_PER_VIDEO = 0.0
DATA_OUT_GB_PER_VIDEO = 0.0
S3_PUT_REQUESTS_PER_VIDEO = 20  # the source's parts, the outputs (renditions, segments aside), the manifest
S3_GET_REQUESTS_PER_VIDEO = 20
# S3 request metrics are billed as CloudWatch metrics: 16 per filter (requests by kind, bytes, errors, latency).
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/metrics-dimensions.html#s3-request-cloudwatch-metrics
S3_REQUEST_METRICS_PER_FILTER = 16
FARGATE_INCLUDED_EPHEMERAL_GIB = 20  # https://aws.amazon.com/fargate/pricing/ (20 GB included per task)

ASSUMPTIONS = (
    Assumption("status reads per video", STATUS_READS_PER_VIDEO, "GET /videos/{videoId}",
               "a client reads the result once; each poll more adds an API request and a Lambda invocation"),
    Assumption("API function duration", LAMBDA_MILLISECONDS["api"], "ms billed per invocation", "not measured"),
    Assumption("scheduler duration", LAMBDA_MILLISECONDS["scheduler"], "ms billed per invocation", "not measured"),
    Assumption("logs per video", LOG_MB_PER_VIDEO, "MB",
               "the processor, the state machine (Level ALL with execution data), the functions and the access log "
               "together; kept for the processor log group's retention"),
    Assumption("logs per scheduled run", LOG_KB_PER_SCHEDULED_RUN, "KB",
               "START/END/REPORT lines and the backlog metric record of one idle scheduler run"),
    Assumption("VPC flow logs", FLOW_LOG_GB_PER_MONTH, "GB a month", "a mostly idle VPC, ALL traffic"),
    Assumption("KMS requests per key per video", KMS_REQUESTS_PER_KEY_PER_VIDEO, "requests",
               "the services cache data keys, so each key a video touches is asked about rarely"),
    Assumption("database change a day", RDS_BACKUP_DAILY_CHANGE * 100, "% of provisioned storage",
               "backups up to 100% of the provisioned storage are free; the daily changes kept for the retention "
               "period are billed"),
    Assumption("cache data", CACHE_DATA_GB, "GB", "what each kept snapshot beyond the first (free) one holds"),
    Assumption("Container Insights metrics", CONTAINER_INSIGHTS_CLUSTER_METRICS, "metrics per cluster",
               f"plus {CONTAINER_INSIGHTS_METRICS_PER_TASK_FAMILY} per task definition family, charged as custom "
               "metrics"),
    Assumption("e-mails per notification", EMAILS_PER_PUBLISH, "deliveries",
               "each topic's one e-mail subscription (present when its e-mail parameter is set)"),
    Assumption("job record", JOB_RECORD_KB, "KB",
               "each DynamoDB item read or written is under 1 KB; each write also writes every index"),
    Assumption("NAT traffic per video", NAT_GB_PER_VIDEO, "GB",
               "media moves over EFS; image layers come from S3 through the gateway endpoint"),
    Assumption("media bucket requests per video", S3_PUT_REQUESTS_PER_VIDEO, "PUT-class requests",
               f"and {S3_GET_REQUESTS_PER_VIDEO} GET-class: the source's parts, the outputs and the manifest; "
               "the source is assumed as large as the outputs"),
    Assumption("data out per video", DATA_OUT_GB_PER_VIDEO, "GB", "nothing serves the outputs to the internet yet"),
)


def usage_assumptions(usage: Usage) -> tuple[Assumption, ...]:
    return (
        Assumption("minutes per video", usage.minutes_per_video, "minutes of task time (--minutes-per-video)",
                   "start to stop, as given") if usage.minutes_per_video is not None else
        Assumption("source per video", encode_speed.TYPICAL_SOURCE_MINUTES, "minutes of source",
                   f"task time from the measured encode speed, {encode_speed.REALTIME_PER_VCPU:g}x realtime per vCPU "
                   f"of the environment's task ({encode_speed.MEASURED}), plus "
                   f"{encode_speed.FIXED_MINUTES_PER_RUN:g} minutes to start, fetch and upload"),
        Assumption("outputs per video", usage.gb_per_video, "GB (--gb-per-video)",
                   "written to the media file system, read back once as the source, kept "
                   f"{OUTPUT_MONTHS_KEPT:g} month in EFS Standard (the lifecycle policy moves them to Infrequent "
                   "Access after 30 days)"),
        Assumption("videos a month", usage.videos_per_month, "videos (--videos-per-month)",
                   "for the monthly total only"),
        *ASSUMPTIONS,
    )


@dataclass(frozen=True)
class Line:
    """One charge: `quantity` `unit`s at `unit_usd` each, caused by one resource."""

    tier: str  # the template (file stem) holding the resource
    resource: str  # its logical ID
    type: str
    item: str
    quantity: float
    unit: str
    price_key: str
    unit_usd: float

    @property
    def usd(self) -> float:
        return self.quantity * self.unit_usd


@dataclass(frozen=True)
class Path:
    """A path through the state machine: the states entered (each a billed transition, retries included) and how
    many times the task ran."""

    name: str
    transitions: int
    task_runs: int
    publishes: int  # SNS publishes on the path


@dataclass(frozen=True)
class Estimate:
    env: str
    region: str
    snapshot_date: str
    usage: Usage
    fixed: tuple[Line, ...]  # per month
    per_video: tuple[Line, ...]  # a video that succeeds
    per_failed_video: tuple[Line, ...]  # a video whose task fails every attempt
    success: Path | None
    failure: Path | None

    @property
    def fixed_usd(self) -> float:
        return sum(line.usd for line in self.fixed)

    @property
    def per_video_usd(self) -> float:
        return sum(line.usd for line in self.per_video)

    @property
    def per_failed_video_usd(self) -> float:
        return sum(line.usd for line in self.per_failed_video)

    @property
    def monthly_usd(self) -> float:
        return self.fixed_usd + self.usage.videos_per_month * self.per_video_usd

    def by_tier(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.fixed:
            out[line.tier] = out.get(line.tier, 0.0) + line.usd
        return dict(sorted(out.items()))

    def by_resource(self, lines: tuple[Line, ...]) -> dict[str, float]:
        """`tier/LogicalId` -> USD."""
        out: dict[str, float] = {}
        for line in lines:
            out[f"{line.tier}/{line.resource}"] = out.get(f"{line.tier}/{line.resource}", 0.0) + line.usd
        return dict(sorted(out.items()))


# ------------------------------------------------------------------------------------------------ context

@dataclass(frozen=True)
class Resource:
    tier: str
    logical_id: str
    type: str
    properties: dict


@dataclass(frozen=True)
class Context:
    region: str
    snapshot: Snapshot
    usage: Usage
    job_calls: JobCalls
    resources: tuple[Resource, ...]
    templates: dict[str, dict]
    path: Path | None  # the state machine path being priced (per-video rules)
    scheduled_runs: dict[tuple[str, str], float] = field(default_factory=dict)  # (tier, function) -> runs a month

    @property
    def hours(self) -> float:
        return self.snapshot.hours_per_month

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def line(self, r: Resource, item: str, quantity: float, unit: str, key: str) -> Line:
        return Line(r.tier, r.logical_id, r.type, item, quantity, unit, key,
                    self.snapshot.price(self.region, key).usd)

    def retention_months(self, tier: str, ref: Any) -> float:
        """Months a log group keeps what it receives: the referenced group's RetentionInDays, else the longest
        retention in the environment (never-expiring groups count as 10 years)."""
        target = ref_target(ref)
        group = next((r for r in self.resources if r.tier == tier and r.logical_id == target
                      and r.type == "AWS::Logs::LogGroup"), None)
        groups = [group] if group else self.of_type("AWS::Logs::LogGroup")
        return max((g.properties.get("RetentionInDays", 3653) for g in groups), default=0) / (365.25 / 12)


def ref_target(value: Any) -> str | None:
    """The logical ID a Ref or Fn::GetAtt points at, else None."""
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            return value["Ref"]
        att = value.get("Fn::GetAtt")
        if isinstance(att, list) and att and isinstance(att[0], str):
            return att[0]
    return None


def schedule_runs_per_month(expression: str, hours: float) -> float:
    """Runs a month of `rate(N unit)`; cron expressions are not priced (an InputError says so)."""
    words = expression.removeprefix("rate(").removesuffix(")").split()
    minutes = {"minute": 1, "minutes": 1, "hour": 60, "hours": 60, "day": 1440, "days": 1440}
    if not expression.startswith("rate(") or len(words) != 2 or words[1] not in minutes or not words[0].isdigit():
        raise InputError(f"cannot price the schedule {expression!r}; accepted: rate(N minutes|hours|days)")
    return hours * 60 / (int(words[0]) * minutes[words[1]])


def _scheduled_runs(resources: tuple[Resource, ...], hours: float) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for rule in resources:
        if rule.type != "AWS::Events::Rule" or "ScheduleExpression" not in rule.properties:
            continue
        if rule.properties.get("State", "ENABLED") != "ENABLED":
            continue
        runs = schedule_runs_per_month(rule.properties["ScheduleExpression"], hours)
        for target in rule.properties.get("Targets") or []:
            function = ref_target(target.get("Arn"))
            if function:
                out[(rule.tier, function)] = out.get((rule.tier, function), 0.0) + runs
    return out


# ------------------------------------------------------------------------------------------------ state machine

TASK_RESOURCE_PREFIX = "arn:aws:states:::ecs:runTask"
PUBLISH_RESOURCE = "arn:aws:states:::sns:publish"


def _next_states(state: dict) -> list[str]:
    """Where a state goes on success: Next, a Choice's branches then its Default (Catch excluded)."""
    out = [c["Next"] for c in state.get("Choices") or [] if "Next" in c]
    out += [state[k] for k in ("Next", "Default") if k in state]
    return out


def _shortest(states: dict, start: str, goal: Callable[[dict], bool]) -> list[str]:
    """The shortest list of states from `start` to one `goal` accepts (breadth first, in definition order)."""
    queue, seen = [[start]], {start}
    while queue:
        path = queue.pop(0)
        if goal(states[path[-1]]):
            return path
        for nxt in _next_states(states[path[-1]]):
            if nxt in states and nxt not in seen:
                seen.add(nxt)
                queue.append([*path, nxt])
    return []


def _publishes(states: dict, names: list[str]) -> int:
    return sum(1 for n in names if str(states[n].get("Resource", "")).startswith(PUBLISH_RESOURCE))


def paths(definition: dict) -> tuple[Path, Path | None]:
    """The success path (StartAt to the nearest Succeed state) and the failure path: the first task on the
    success path fails on every attempt (1 + its States.TaskFailed retrier's MaxAttempts, or the retries its
    catcher's states make by hand: the shortest loop back to the task), is caught and goes to the nearest Fail
    state. Step Functions bills every state entered, retries
    included (https://aws.amazon.com/step-functions/pricing/)."""
    states = definition.get("States") or {}
    start = definition.get("StartAt")
    if not isinstance(start, str) or start not in states:
        raise InputError("cannot price the state machine: its StartAt names no state")
    success = _shortest(states, start, lambda s: s.get("Type") == "Succeed")
    tasks = [n for n in success if str(states[n].get("Resource", "")).startswith(TASK_RESOURCE_PREFIX)]
    runs = len(tasks)
    ok = Path("success", len(success), runs, _publishes(states, success))
    if not tasks:
        return ok, None
    task = states[tasks[0]]
    retrier: dict = next((r for r in task.get("Retry") or []
                    if {"States.TaskFailed", "States.ALL"} & set(r.get("ErrorEquals") or [])), {})
    attempts = 1 + int(retrier.get("MaxAttempts", 3 if retrier else 0))
    catcher = next((c for c in task.get("Catch") or []
                    if {"States.TaskFailed", "States.ALL"} & set(c.get("ErrorEquals") or [])), None)
    if catcher is None:
        return ok, None
    before = success[:success.index(tasks[0])]
    after = _shortest(states, catcher["Next"], lambda s: s.get("Type") == "Fail")
    # A retry written out as states (the catcher's path leads back to the task): each retry enters that loop's
    # states and the task again; the count is the bound of the Choice that gives up (`NumericGreaterThanEquals`).
    loop = _shortest(states, catcher["Next"], lambda s: s is task) if not retrier else []
    bounds = [rule["NumericGreaterThanEquals"] for name in loop if states[name].get("Type") == "Choice"
              for rule in states[name].get("Choices", []) if rule.get("Next") in after
              and isinstance(rule.get("NumericGreaterThanEquals"), int)]
    retries = bounds[0] if loop and bounds else 0
    attempts += retries
    transitions = len(before) + 1 + (attempts - 1) * (len(loop) or 1) + len(after)
    publishes = _publishes(states, before + after) + retries * _publishes(states, loop)
    return ok, Path("failure", transitions, attempts, publishes)


# ------------------------------------------------------------------------------------------------ rules

Rule = Callable[[Context, Resource], tuple[list[Line], list[Line]]]  # (fixed per month, per video)


def nat_gateway(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    share = NAT_GB_PER_VIDEO / max(1, len(ctx.of_type(r.type)))
    return ([ctx.line(r, "NAT gateway hours", ctx.hours, "hour", "nat_gateway_hour")],
            [ctx.line(r, "NAT data processed", share, "GB", "nat_gateway_gb")])


def public_ip(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    return [ctx.line(r, "public IPv4 address hours", ctx.hours, "hour", "public_ipv4_hour")], []


def vpc_endpoint(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    if r.properties.get("VpcEndpointType", "Gateway") != "Interface":
        return [], []  # gateway endpoints (S3, DynamoDB) are free: https://aws.amazon.com/vpc/pricing/
    zones = len(r.properties.get("SubnetIds") or [])
    service = str((r.properties.get("ServiceName") or {}).get("Fn::Sub", r.properties.get("ServiceName")))
    per_video = [ctx.line(r, "log data through the endpoint", LOG_MB_PER_VIDEO / 1024, "GB", "interface_endpoint_gb")] \
        if service.endswith(".logs") else []
    return [ctx.line(r, f"endpoint hours in {zones} zone(s)", ctx.hours * zones, "hour",
                     "interface_endpoint_hour")], per_video


def flow_log(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    if r.properties.get("LogDestinationType", "cloud-watch-logs") != "cloud-watch-logs":
        raise InputError(f"{r.tier}/{r.logical_id}: only flow logs to CloudWatch Logs are priced")
    months = ctx.retention_months(r.tier, r.properties.get("LogGroupName"))
    return [ctx.line(r, "flow log ingestion", FLOW_LOG_GB_PER_MONTH, "GB", "logs_ingestion_gb"),
            ctx.line(r, f"flow logs kept {months:.1f} months", FLOW_LOG_GB_PER_MONTH * months, "GB-month",
                     "logs_storage_gb_month")], []


def db_instance(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    p = r.properties
    cls, multi = p["DBInstanceClass"], bool(p.get("MultiAZ"))
    storage = float(p.get("AllocatedStorage", 0))
    storage_type = str(p.get("StorageType", "gp2")).lower()
    suffix = "_multi_az" if multi else ""
    lines = [
        ctx.line(r, f"{cls} hours ({'Multi-AZ' if multi else 'Single-AZ'})", ctx.hours, "hour",
                 f"rds_instance_hour{suffix}:{cls}"),
        ctx.line(r, f"{storage_type} storage", storage, "GB-month", f"rds_{storage_type}_gb_month{suffix}"),
        ctx.line(r, f"backup storage beyond the free allowance ({p.get('BackupRetentionPeriod', 1)} days)",
                 storage * RDS_BACKUP_DAILY_CHANGE * int(p.get("BackupRetentionPeriod", 1)), "GB-month",
                 "rds_backup_gb_month"),
    ]
    if p.get("ManageMasterUserPassword"):
        lines.append(ctx.line(r, "master user secret (Secrets Manager)", 1, "secret-month",
                              "secretsmanager_secret_month"))
    return lines, []


def replication_group(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    p = r.properties
    shards, replicas = int(p.get("NumNodeGroups", 1)), int(p.get("ReplicasPerNodeGroup", 0))
    nodes = int(p.get("NumCacheClusters") or shards * (1 + replicas))
    lines = [ctx.line(r, f"{nodes} x {p['CacheNodeType']} node hours", ctx.hours * nodes, "hour",
                      f"elasticache_node_hour:{p['CacheNodeType']}")]
    kept = int(p.get("SnapshotRetentionLimit", 0))
    if kept > 1:
        lines.append(ctx.line(r, f"{kept - 1} snapshot(s) beyond the free one", (kept - 1) * CACHE_DATA_GB,
                              "GB-month", "elasticache_backup_gb_month"))
    return lines, []


def _spot_share(ctx: Context) -> float:
    """The share of tasks on FARGATE_SPOT: the state machine's RunTask strategy, else the cluster's default."""
    strategies = [s.get("Parameters", {}).get("CapacityProviderStrategy")
                  for sm in ctx.of_type("AWS::StepFunctions::StateMachine")
                  for s in (sm.properties.get("Definition") or {}).get("States", {}).values()
                  if str(s.get("Resource", "")).startswith(TASK_RESOURCE_PREFIX)]
    strategies += [c.properties.get("DefaultCapacityProviderStrategy") for c in ctx.of_type("AWS::ECS::Cluster")]
    strategy = next((s for s in strategies if s), None) or [{"CapacityProvider": "FARGATE", "Weight": 1}]
    total = sum(float(s.get("Weight", 0)) for s in strategy) or 1.0
    return sum(float(s.get("Weight", 0)) for s in strategy if s.get("CapacityProvider") == "FARGATE_SPOT") / total


def task_definition(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    p = r.properties
    vcpu, gb = float(p["Cpu"]) / 1024, float(p["Memory"]) / 1024
    arm = str((p.get("RuntimePlatform") or {}).get("CpuArchitecture", "X86_64")).upper() == "ARM64"
    runs = ctx.path.task_runs if ctx.path else 1
    minutes = ctx.usage.minutes_per_video
    if minutes is None:
        minutes = encode_speed.minutes_per_video(encode_speed.TYPICAL_SOURCE_MINUTES, vcpu)
    hours = minutes / 60 * runs
    spot = _spot_share(ctx)
    lines = []
    for share, kind, prefix in ((1 - spot, "On-Demand", "fargate_arm" if arm else "fargate"),
                                (spot, "Spot", "fargate_spot")):
        if share:
            lines += [ctx.line(r, f"Fargate {kind} vCPU-hours ({vcpu:g} vCPU, {runs} run(s))", vcpu * hours * share,
                               "vCPU-hour", f"{prefix}_vcpu_hour"),
                      ctx.line(r, f"Fargate {kind} GB-hours ({gb:g} GB)", gb * hours * share, "GB-hour",
                               f"{prefix}_gb_hour")]
    extra = int((p.get("EphemeralStorage") or {}).get("SizeInGiB", FARGATE_INCLUDED_EPHEMERAL_GIB)) \
        - FARGATE_INCLUDED_EPHEMERAL_GIB
    if extra > 0:
        lines.append(ctx.line(r, f"ephemeral storage beyond {FARGATE_INCLUDED_EPHEMERAL_GIB} GiB", extra * hours,
                              "GB-hour", "fargate_ephemeral_gb_hour"))
    logs = ctx.retention_months(r.tier, _awslogs_group(p))
    lines += [ctx.line(r, "log ingestion (everything a video logs)", LOG_MB_PER_VIDEO / 1024, "GB",
                       "logs_ingestion_gb"),
              ctx.line(r, f"logs kept {logs:.1f} months", LOG_MB_PER_VIDEO / 1024 * logs, "GB-month",
                       "logs_storage_gb_month")]
    return [], lines


def _awslogs_group(task_properties: dict) -> Any:
    for container in task_properties.get("ContainerDefinitions") or []:
        options = (container.get("LogConfiguration") or {}).get("Options") or {}
        if "awslogs-group" in options:
            return options["awslogs-group"]
    return None


def cluster(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    insights = {s.get("Name"): s.get("Value") for s in r.properties.get("ClusterSettings") or []}
    if insights.get("containerInsights") not in ("enabled", "enhanced"):
        return [], []
    families = len(ctx.of_type("AWS::ECS::TaskDefinition"))
    metrics = CONTAINER_INSIGHTS_CLUSTER_METRICS + CONTAINER_INSIGHTS_METRICS_PER_TASK_FAMILY * families
    return [ctx.line(r, "Container Insights metrics", metrics, "metric-month", "cloudwatch_metric_month")], []


def state_machine(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    if r.properties.get("StateMachineType", "STANDARD") != "STANDARD" or ctx.path is None:
        raise InputError(f"{r.tier}/{r.logical_id}: only Standard state machines with a definition are priced")
    path = ctx.path
    lines = [ctx.line(r, f"state transitions ({path.name} path)", path.transitions, "transition",
                      "sfn_standard_transition")]
    if path.publishes:
        lines += [ctx.line(r, "SNS publishes", path.publishes, "request", "sns_request"),
                  ctx.line(r, "SNS e-mail deliveries", path.publishes * EMAILS_PER_PUBLISH, "delivery",
                           "sns_email_delivery")]
    if (r.properties.get("TracingConfiguration") or {}).get("Enabled"):
        lines.append(ctx.line(r, "X-Ray trace of the execution", 1, "trace", "xray_trace_recorded"))
    return [], lines


def _per_video_invocations(ctx: Context, handler: str) -> list[tuple[str, float]]:
    """(invocation, times per video) of job control's recorded invocations that `handler` serves."""
    times = {"submit": 1.0, "status": float(STATUS_READS_PER_VIDEO), "execution_ended": 1.0}
    return [(name, times[name]) for name, inv in sorted(ctx.job_calls.invocations.items())
            if inv.handler == handler and name in times]


def _handler_module(function: Resource) -> str:
    return str(function.properties.get("Handler", "")).split(".")[0]


def lambda_function(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    p = r.properties
    handler = _handler_module(r)
    gb = float(p.get("MemorySize", 128)) / 1024
    arch = "arm" if (p.get("Architectures") or ["x86_64"])[0] == "arm64" else "x86"
    seconds = LAMBDA_MILLISECONDS.get(handler, 0) / 1000
    traced = (p.get("TracingConfig") or {}).get("Mode") == "Active"

    def invocations(n: float, why: str) -> list[Line]:
        out = [ctx.line(r, f"requests ({why})", n, "request", "lambda_request"),
               ctx.line(r, f"duration ({why}, {seconds * 1000:g} ms at {gb * 1024:g} MB)", n * seconds * gb,
                        "GB-second", f"lambda_gb_second_{arch}")]
        return out + ([ctx.line(r, f"X-Ray traces ({why})", n, "trace", "xray_trace_recorded")] if traced else [])

    per_video_runs = sum(times for _, times in _per_video_invocations(ctx, handler))
    per_video = invocations(per_video_runs, "job control") if per_video_runs else []
    fixed: list[Line] = []
    runs = ctx.scheduled_runs.get((r.tier, r.logical_id), 0.0)
    if runs:
        months = ctx.retention_months(r.tier, (p.get("LoggingConfig") or {}).get("LogGroup"))
        log_gb = runs * LOG_KB_PER_SCHEDULED_RUN / 1024 / 1024
        fixed += invocations(runs, "schedule")
        fixed += [ctx.line(r, "log ingestion (schedule)", log_gb, "GB", "logs_ingestion_gb"),
                  ctx.line(r, f"logs kept {months:.1f} months (schedule)", log_gb * months, "GB-month",
                           "logs_storage_gb_month")]
        if any(inv.handler == handler for name, inv in ctx.job_calls.invocations.items() if name == "reconcile"):
            fixed.append(ctx.line(r, "custom metrics (embedded metric format)",
                                  ctx.job_calls.custom_metrics_per_table, "metric-month", "cloudwatch_metric_month"))
    return fixed, per_video


def rest_api(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    requests = sum(times for _, times in _per_video_invocations(ctx, "api"))
    return [], [ctx.line(r, "API requests (submit and status reads)", requests, "request", "apigateway_rest_request")]


def stage(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    if r.properties.get("CacheClusterEnabled"):
        raise InputError(f"{r.tier}/{r.logical_id}: an API Gateway cache has no price rule yet")
    return [], []


def dynamodb_table(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    p = r.properties
    if p.get("BillingMode") != "PAY_PER_REQUEST":
        raise InputError(f"{r.tier}/{r.logical_id}: only on-demand (PAY_PER_REQUEST) tables are priced")
    copies = 1 + len(p.get("GlobalSecondaryIndexes") or [])
    invs = ctx.job_calls.invocations
    reads = sum(invs[name].read_units * times for name, times in _all_per_video(ctx))
    writes = sum(invs[name].write_units * times for name, times in _all_per_video(ctx)) * copies
    gb = JOB_RECORD_KB / 1024 / 1024 * copies
    per_video = [ctx.line(r, "read request units", reads, "read request unit", "dynamodb_read_request_unit"),
                 ctx.line(r, f"write request units (table and {copies - 1} index(es))", writes, "write request unit",
                          "dynamodb_write_request_unit"),
                 ctx.line(r, "job record storage (a month)", gb, "GB-month", "dynamodb_storage_gb_month")]
    if (p.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled"):
        per_video.append(ctx.line(r, "point-in-time recovery (a month)", gb, "GB-month", "dynamodb_pitr_gb_month"))
    reconcile = invs.get("reconcile")
    runs = sum(n for (tier, lid), n in ctx.scheduled_runs.items()
               for f in ctx.of_type("AWS::Lambda::Function")
               if (f.tier, f.logical_id) == (tier, lid) and reconcile and _handler_module(f) == reconcile.handler)
    fixed = [ctx.line(r, "read request units (schedule)", runs * reconcile.read_units, "read request unit",
                      "dynamodb_read_request_unit")] if reconcile and runs else []
    return fixed, per_video


def _all_per_video(ctx: Context) -> list[tuple[str, float]]:
    handlers = sorted({inv.handler for inv in ctx.job_calls.invocations.values()})
    return [pair for h in handlers for pair in _per_video_invocations(ctx, h)]


def file_system(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    p = r.properties
    gb = ctx.usage.gb_per_video
    lines = [ctx.line(r, f"outputs kept {OUTPUT_MONTHS_KEPT:g} month in EFS Standard", gb * OUTPUT_MONTHS_KEPT,
                      "GB-month", "efs_standard_gb_month")]
    if p.get("ThroughputMode") == "elastic":
        lines += [ctx.line(r, "Elastic Throughput writes (the outputs)", gb, "GB", "efs_elastic_write_gb"),
                  ctx.line(r, "Elastic Throughput reads (the source)", gb, "GB", "efs_elastic_read_gb")]
    if (p.get("BackupPolicy") or {}).get("Status") == "ENABLED":
        lines.append(ctx.line(r, f"AWS Backup of the outputs ({OUTPUT_MONTHS_KEPT:g} month)", gb * OUTPUT_MONTHS_KEPT,
                              "GB-month", "backup_efs_warm_gb_month"))
    return [], lines


def bucket(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    """The media bucket: the source and the outputs kept OUTPUT_MONTHS_KEPT in S3 Standard, their requests, and
    the request metrics of each metrics filter."""
    gb = ctx.usage.gb_per_video * 2  # source and outputs
    filters = len(r.properties.get("MetricsConfigurations") or [])
    fixed = [ctx.line(r, f"request metrics ({filters} filter(s))", filters * S3_REQUEST_METRICS_PER_FILTER,
                      "metric-month", "cloudwatch_metric_month")] if filters else []
    return fixed, [
        ctx.line(r, f"source and outputs kept {OUTPUT_MONTHS_KEPT:g} month in S3 Standard", gb * OUTPUT_MONTHS_KEPT,
                 "GB-month", "s3_standard_gb_month"),
        ctx.line(r, "PUT-class requests", S3_PUT_REQUESTS_PER_VIDEO, "request", "s3_put_request"),
        ctx.line(r, "GET-class requests", S3_GET_REQUESTS_PER_VIDEO, "request", "s3_get_request"),
    ]


def kms_key(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    return ([ctx.line(r, "customer managed key", 1, "key-month", "kms_key_month")],
            [ctx.line(r, "KMS requests", KMS_REQUESTS_PER_KEY_PER_VIDEO, "request", "kms_request")])


def alarm(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    """One charge per metric the alarm watches (metric math alarms: each MetricStat); under 60 s: high resolution.
    https://aws.amazon.com/cloudwatch/pricing/"""
    p = r.properties
    stats = [m["MetricStat"] for m in p.get("Metrics") or [] if "MetricStat" in m]
    periods = [int(s.get("Period", 60)) for s in stats] or [int(p.get("Period", 60))]
    high = min(periods) < 60
    key = "cloudwatch_high_resolution_alarm_metric_month" if high else "cloudwatch_alarm_metric_month"
    return [ctx.line(r, f"alarm on {max(1, len(stats))} metric(s)", max(1, len(stats)), "alarm metric-month", key)], []


def dashboard(ctx: Context, r: Resource) -> tuple[list[Line], list[Line]]:
    return [ctx.line(r, "dashboard", 1, "dashboard-month", "cloudwatch_dashboard_month")], []


RULES: dict[str, Rule] = {
    "AWS::ApiGateway::RestApi": rest_api,
    "AWS::ApiGateway::Stage": stage,
    "AWS::CloudWatch::Alarm": alarm,
    "AWS::CloudWatch::Dashboard": dashboard,
    "AWS::DynamoDB::Table": dynamodb_table,
    "AWS::EC2::EIP": public_ip,
    "AWS::EC2::FlowLog": flow_log,
    "AWS::EC2::NatGateway": nat_gateway,
    "AWS::EC2::VPCEndpoint": vpc_endpoint,
    "AWS::ECS::Cluster": cluster,
    "AWS::ECS::TaskDefinition": task_definition,
    "AWS::EFS::FileSystem": file_system,
    "AWS::ElastiCache::ReplicationGroup": replication_group,
    "AWS::KMS::Key": kms_key,
    "AWS::Lambda::Function": lambda_function,
    "AWS::RDS::DBInstance": db_instance,
    "AWS::S3::Bucket": bucket,
    "AWS::StepFunctions::StateMachine": state_machine,
}

# Billed, but by what another resource does: its rule prices it.
PRICED_AT = {
    "AWS::Logs::LogGroup": "ingestion and storage are priced at the writer (flow log, task, scheduled function), "
                           "with the group's retention",
    "AWS::SNS::Topic": "publishes and deliveries are priced at the publisher (the state machine's notify states)",
    "AWS::SNS::Subscription": "deliveries are priced at the publisher, EMAILS_PER_PUBLISH each",
    "AWS::SQS::Queue": "the dead-letter queue is billed per request, made only when a delivery fails (none priced); "
                       "an idle queue nobody polls costs nothing",
}

# Not billed. https://aws.amazon.com/cloudformation/pricing/: no charge for AWS::* resources and nested stacks.
FREE = {
    "AWS::ApiGateway::Deployment": "configuration of the REST API (billed per request at the RestApi)",
    "AWS::ApiGateway::GatewayResponse": "configuration of the REST API",
    "AWS::ApiGateway::Method": "configuration of the REST API",
    "AWS::ApiGateway::Model": "configuration of the REST API",
    "AWS::ApiGateway::RequestValidator": "configuration of the REST API",
    "AWS::ApiGateway::Resource": "configuration of the REST API",
    "AWS::CloudFormation::Stack": "nested stacks of AWS::* resources cost nothing",
    "AWS::EC2::InternetGateway": "no charge (data transfer out is priced per GB)",
    "AWS::EC2::Route": "no charge",
    "AWS::EC2::RouteTable": "no charge",
    "AWS::EC2::SecurityGroup": "no charge",
    "AWS::EC2::SecurityGroupEgress": "no charge",
    "AWS::EC2::Subnet": "no charge",
    "AWS::EC2::SubnetRouteTableAssociation": "no charge",
    "AWS::EC2::VPC": "no charge (its NAT gateways, endpoints and addresses are priced on their own)",
    "AWS::EC2::VPCGatewayAttachment": "no charge",
    "AWS::EFS::AccessPoint": "no charge",
    "AWS::EFS::MountTarget": "no charge",
    "AWS::ElastiCache::SubnetGroup": "no charge",
    "AWS::ElastiCache::User": "no charge",
    "AWS::ElastiCache::UserGroup": "no charge",
    "AWS::Events::Rule": "AWS service events and schedules on the default bus are free; the invocations they cause "
                         "are priced at the target function",
    "AWS::IAM::Role": "IAM is free",
    "AWS::KMS::Alias": "aliases are free (the key is priced)",
    "AWS::Lambda::Permission": "no charge",
    "AWS::RDS::DBParameterGroup": "no charge",
    "AWS::RDS::DBSubnetGroup": "no charge",
    "AWS::S3::BucketPolicy": "no charge",
    "AWS::SNS::TopicPolicy": "no charge",
    "AWS::SQS::QueuePolicy": "no charge",
    "Custom::AdoptedLogGroup": "runs its function at deploy time only: a few invocations, not priced (a log group "
                               "is billed for what it receives: the database's exports, whose volume is not priced)",
    "Custom::DatabaseBootstrap": "runs its function at deploy time only: a few invocations, not priced",
}


def _resources(templates: dict[str, dict]) -> tuple[Resource, ...]:
    return tuple(Resource(tier, lid, r.get("Type", "?"), r.get("Properties") or {})
                 for tier, template in sorted(templates.items())
                 for lid, r in sorted((template.get("Resources") or {}).items()))


def unpriced_types(templates: dict[str, dict]) -> list[str]:
    """Resource types in `templates` with no rule, not priced elsewhere and not listed as free."""
    return sorted({r.type for r in _resources(templates)} - RULES.keys() - PRICED_AT.keys() - FREE.keys())


def _state_machine_paths(resources: tuple[Resource, ...]) -> tuple[Path | None, Path | None]:
    machines = [r for r in resources if r.type == "AWS::StepFunctions::StateMachine"]
    if not machines:
        return None, None
    if len(machines) > 1:
        raise InputError("cannot price more than one state machine per environment yet")
    definition = machines[0].properties.get("Definition")
    if not isinstance(definition, dict):
        raise InputError(f"{machines[0].tier}/{machines[0].logical_id}: only an inline Definition is priced")
    return paths(definition)


def _lines(ctx: Context, which: int) -> Iterator[Line]:
    for r in ctx.resources:
        rule = RULES.get(r.type)
        if rule is not None:
            yield from (line for line in rule(ctx, r)[which] if line.quantity)


def estimate(env: str, region: str, templates: dict[str, dict], usage: Usage, snapshot: Snapshot,
             job_calls: JobCalls) -> Estimate:
    """`templates`: tier (file stem) -> template, for one environment (its parent included or not)."""
    missing = unpriced_types(templates)
    if missing:
        raise InputError(f"{env}: no price rule for {', '.join(missing)}; add one to generator/cost/model.py "
                         "(RULES, PRICED_AT, or FREE with the reason)")
    resources = _resources(templates)
    success, failure = _state_machine_paths(resources)
    base = Context(region, snapshot, usage, job_calls, resources, templates, success,
                   _scheduled_runs(resources, snapshot.hours_per_month))
    failed = Context(region, snapshot, usage, job_calls, resources, templates, failure or success,
                     base.scheduled_runs)
    return Estimate(env, region, snapshot.date, usage, tuple(_lines(base, 0)), tuple(_lines(base, 1)),
                    tuple(_lines(failed, 1)), success, failure)
