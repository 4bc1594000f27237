"""Per-environment settings: frozen, validated when built, settled at generation time.

A field exists because an environment differs (size, safety, retention), not "just in case".
Every environment's committed templates therefore show exactly what will be deployed.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

from generator.aws_facts import (
    API_GATEWAY_ACCOUNT_BURST_LIMIT,
    API_GATEWAY_ACCOUNT_RATE_LIMIT,
    ELASTICACHE_MAX_SNAPSHOT_RETENTION_DAYS,
    FARGATE_CPU_UNITS_PER_VCPU,
    FARGATE_TASK_SIZES,
    LOG_RETENTION_DAYS,
    RDS_AUTOSCALING_MIN_CEILING_RATIO,
    RDS_GP3_STORAGE_GIB,
    RDS_MAX_BACKUP_RETENTION_DAYS,
    RDS_MAX_CONNECTIONS_PAGE,
    RDS_POSTGRES_MAX_CONNECTIONS,
    default_max_connections,
)
from generator.errors import ConfigError
from generator.names import PROJECT

DEFAULT_REGION = "ap-northeast-1"

AZ_COUNTS = (2, 3)
VPC_PREFIX_LENGTH = 16
# Matched with fullmatch: `$` alone would accept a value ending in a newline.
DB_INSTANCE_CLASS = re.compile(r"db\.[a-z0-9]+\.[a-z0-9]+")
CACHE_NODE_TYPE = re.compile(r"cache\.[a-z0-9]+\.[a-z0-9]+")
# An AWS region name (ap-northeast-1, us-gov-west-1); deploy.sh checks the same shape.
REGION_NAME = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")
# Above this the Fargate launch rate (20 tasks/s) and the quota check would need a real capacity plan
# (`python -m generator capacity` is the one on paper).
MAX_CONCURRENT_VIDEOS = 1000
# An alarm threshold above RDS for PostgreSQL's default max_connections never fires.
MAX_DB_CONNECTIONS = RDS_POSTGRES_MAX_CONNECTIONS.value
MAX_SOURCE_EXPIRY_DAYS = 3650
# Ten hours of source: beyond it even the largest Fargate task's timeout would run to days.
MAX_SOURCE_MINUTES = 600
MAX_UPLOAD_GIB = 1024
CONTENT_TYPE = re.compile(r"video/[a-z0-9.+-]+")
MAX_PRESIGNED_SECONDS = 7 * 24 * 3600
MAX_VALUE_SHOWN = 60  # characters of a rejected value echoed in a message


@dataclass(frozen=True)
class EnvConfig:
    name: str
    vpc_cidr: str
    az_count: int
    nat_per_az: bool
    log_retention_days: int
    spot_default: bool  # FARGATE_SPOT as the cluster's default capacity provider
    db_instance_class: str
    db_storage_gib: int
    db_max_storage_gib: int  # storage autoscaling ceiling
    backup_retention_days: int  # RDS automated backups
    # Standby database in another AZ, and a second Redis node with automatic failover.
    multi_az: bool
    cache_node_type: str
    cache_snapshot_retention_days: int  # 0: no automatic Redis snapshots
    # The processing task's size, chosen from the measured encode speed (generator/encode_speed.py) so that the
    # longest source accepted keeps the execution timeout within hours.
    task_cpu: int = 1024
    task_memory: int = 2048
    # The longest source accepted, in minutes (the processor's MAX_DURATION_SECONDS, from the task definition): with
    # task_cpu and the measured speed it sets the execution timeout.
    max_source_minutes: int = 60
    region: str = DEFAULT_REGION
    # Production safety: retain (rather than delete) log groups, keys, queues and the file system when the
    # stack goes away; database deletion protection; automatic EFS backups.
    retain_data: bool = False
    # The API stage's throttling: steady requests per second, and the burst above it.
    api_rate_limit: int = 10
    api_burst_limit: int = 20
    # Alarm thresholds that follow the database's size (operations tier): free storage and freeable memory
    # below which, and connections above which, someone is told.
    db_min_free_storage_gib: int = 2
    db_min_freeable_memory_mib: int = 64
    db_max_connections: int = 70
    # Lambda reserved concurrency of the API function; 0: none (it shares the account's unreserved pool).
    # Lambda refuses a reservation that leaves fewer than 100 unreserved executions in the account, and new
    # accounts start with a reduced quota: deploy.sh's preflight checks it against the account.
    api_reserved_concurrency: int = 0
    # DeletionPolicy of the database and the cache: a final snapshot (True) or none (False: the data is
    # disposable, and manual snapshots would pile up to the region's quota one per delete).
    snapshot_on_delete: bool = False
    # Admission control: at most this many videos are processed (one Fargate task each) at once; the rest wait
    # QUEUED. It must fit fargate_vcpu_quota (times the task's vCPU); the preflight checks the account's real
    # quota against it.
    max_concurrent_videos: int = 2
    # The Fargate vCPU quota this environment's account and region is assumed to have, for the capacity type its
    # tasks run on (Spot where spot_default, else On-Demand): 6 is what a new account may start with
    # (aws_facts.FARGATE_NEW_ACCOUNT_VCPU); more must be requested in Service Quotas before the first deploy.
    # Shared with everything else on Fargate in that account and region (environments sharing one included).
    fargate_vcpu_quota: int = 6
    # The database logs every connection and disconnection (who, from where, how long).
    db_log_connections: bool = False
    # Interface endpoints for the AWS APIs the private subnets call (Secrets Manager, Logs, ECR, STS, Step
    # Functions): that traffic stays in the VPC, under endpoint policies limited to this account.
    vpc_endpoints: bool = False
    # The processor image must be pinned by digest (`@sha256:`), never by a tag that can be moved.
    require_image_digest: bool = False
    # The media bucket (media tier): sources expire this many days after their upload, with their older versions
    # (0: kept, as prod keeps them); an alarm fires when the bucket's standard storage exceeds the budget.
    media_source_expiry_days: int = 0
    media_bucket_budget_gib: int = 100
    # Uploads (POST /videos/{videoId}/upload): the largest source accepted, the content types accepted, and how
    # long a presigned URL is valid (at most: the signing role's session may end first).
    upload_max_gib: int = 20
    upload_content_types: tuple[str, ...] = ("video/mp4", "video/quicktime", "video/webm", "video/x-matroska")
    upload_url_seconds: int = 3600
    tags: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        _check(self.name.isalnum() and self.name.islower(), self.name, "name", self.name,
               "lower-case letters and digits")
        try:
            net = ipaddress.ip_network(self.vpc_cidr)
        except ValueError:
            raise ConfigError(f"{self.name}: invalid vpc_cidr {shown(self.vpc_cidr)} (not a network); "
                              f"accepted: an IPv4 /{VPC_PREFIX_LENGTH} such as 10.10.0.0/16") from None
        _check(net.version == 4 and net.prefixlen == VPC_PREFIX_LENGTH and net.is_private,
               self.name, "vpc_cidr", self.vpc_cidr, f"a private IPv4 /{VPC_PREFIX_LENGTH} such as 10.10.0.0/16")
        _check(self.az_count in AZ_COUNTS, self.name, "az_count", self.az_count, " or ".join(map(str, AZ_COUNTS)))
        _check(self.log_retention_days in LOG_RETENTION_DAYS, self.name, "log_retention_days",
               self.log_retention_days, "one of " + ", ".join(map(str, LOG_RETENTION_DAYS)))
        _check(self.task_cpu in FARGATE_TASK_SIZES, self.name, "task_cpu", self.task_cpu,
               "one of " + ", ".join(map(str, FARGATE_TASK_SIZES)))
        _check(self.task_memory in FARGATE_TASK_SIZES[self.task_cpu], self.name, "task_memory", self.task_memory,
               f"for task_cpu {self.task_cpu}: {FARGATE_TASK_SIZES[self.task_cpu][0]}-"
               f"{FARGATE_TASK_SIZES[self.task_cpu][-1]} MiB in 1024 steps")
        _check(0 < self.api_rate_limit <= API_GATEWAY_ACCOUNT_RATE_LIMIT, self.name, "api_rate_limit",
               self.api_rate_limit, f"1-{API_GATEWAY_ACCOUNT_RATE_LIMIT} requests per second")
        _check(self.api_rate_limit <= self.api_burst_limit <= API_GATEWAY_ACCOUNT_BURST_LIMIT, self.name,
               "api_burst_limit", self.api_burst_limit,
               f"api_rate_limit ({self.api_rate_limit}) to {API_GATEWAY_ACCOUNT_BURST_LIMIT} requests")
        _check(bool(REGION_NAME.fullmatch(self.region)), self.name, "region", self.region,
               "an AWS region name such as ap-northeast-1")
        _check(bool(DB_INSTANCE_CLASS.fullmatch(self.db_instance_class)), self.name, "db_instance_class",
               self.db_instance_class, "an RDS instance class such as db.t4g.micro")
        low, high = RDS_GP3_STORAGE_GIB
        _check(low <= self.db_storage_gib <= high, self.name, "db_storage_gib", self.db_storage_gib,
               f"{low}-{high} GiB")
        ceiling = math.ceil(self.db_storage_gib * RDS_AUTOSCALING_MIN_CEILING_RATIO)
        _check(ceiling <= self.db_max_storage_gib <= high, self.name, "db_max_storage_gib",
               self.db_max_storage_gib, f"{ceiling}-{high} GiB (at least 10% above db_storage_gib)")
        _check(1 <= self.backup_retention_days <= RDS_MAX_BACKUP_RETENTION_DAYS, self.name,
               "backup_retention_days", self.backup_retention_days,
               f"1-{RDS_MAX_BACKUP_RETENTION_DAYS} days (0 would turn backups off)")
        _check(1 <= self.db_min_free_storage_gib < self.db_storage_gib, self.name, "db_min_free_storage_gib",
               self.db_min_free_storage_gib, f"1-{self.db_storage_gib - 1} GiB (below db_storage_gib)")
        _check(1 <= self.db_min_freeable_memory_mib <= 65536, self.name, "db_min_freeable_memory_mib",
               self.db_min_freeable_memory_mib, "1-65536 MiB")
        _check(1 <= self.db_max_connections <= MAX_DB_CONNECTIONS, self.name, "db_max_connections",
               self.db_max_connections, f"1-{MAX_DB_CONNECTIONS} connections")
        # The database-connections alarm (threshold db_max_connections) must be able to fire: RDS for PostgreSQL's
        # default max_connections is LEAST({DBInstanceClassMemory/9531392}, 5000) (RDS_MAX_CONNECTIONS_PAGE); a class
        # without a memory figure is the capacity command's to refuse.
        allowed = default_max_connections(self.db_instance_class)
        if allowed is not None:
            _check(self.db_max_connections < allowed, self.name, "db_max_connections", self.db_max_connections,
                   f"1-{allowed - 1} connections for db_instance_class {self.db_instance_class}, whose default "
                   f"max_connections is at most {allowed} (LEAST(DBInstanceClassMemory/9531392, 5000), "
                   f"{RDS_MAX_CONNECTIONS_PAGE}): above it the database-connections alarm can never fire; "
                   "lower db_max_connections or choose a larger db_instance_class")
        _check(bool(CACHE_NODE_TYPE.fullmatch(self.cache_node_type)), self.name, "cache_node_type",
               self.cache_node_type, "an ElastiCache node type such as cache.t4g.micro")
        _check(0 <= self.cache_snapshot_retention_days <= ELASTICACHE_MAX_SNAPSHOT_RETENTION_DAYS, self.name,
               "cache_snapshot_retention_days", self.cache_snapshot_retention_days,
               f"0-{ELASTICACHE_MAX_SNAPSHOT_RETENTION_DAYS} days")
        _check(0 <= self.api_reserved_concurrency <= self.api_burst_limit, self.name, "api_reserved_concurrency",
               self.api_reserved_concurrency, f"0 (none) to api_burst_limit ({self.api_burst_limit})")
        _check(1 <= self.max_concurrent_videos <= MAX_CONCURRENT_VIDEOS, self.name, "max_concurrent_videos",
               self.max_concurrent_videos, f"1-{MAX_CONCURRENT_VIDEOS} videos")
        _check(0 <= self.media_source_expiry_days <= MAX_SOURCE_EXPIRY_DAYS, self.name, "media_source_expiry_days",
               self.media_source_expiry_days, f"0 (kept) to {MAX_SOURCE_EXPIRY_DAYS} days")
        _check(self.media_bucket_budget_gib >= 1, self.name, "media_bucket_budget_gib", self.media_bucket_budget_gib,
               "1 GiB or more")
        _check(1 <= self.upload_max_gib <= MAX_UPLOAD_GIB, self.name, "upload_max_gib", self.upload_max_gib,
               f"1-{MAX_UPLOAD_GIB} GiB (S3's 10,000 parts of at most 5 GiB hold more; the processor's disk less)")
        _check(bool(self.upload_content_types) and all(CONTENT_TYPE.fullmatch(t) for t in self.upload_content_types)
               and list(self.upload_content_types) == sorted(set(self.upload_content_types)), self.name,
               "upload_content_types", self.upload_content_types, "sorted, distinct types such as video/mp4")
        _check(60 <= self.upload_url_seconds <= MAX_PRESIGNED_SECONDS, self.name, "upload_url_seconds",
               self.upload_url_seconds, f"60-{MAX_PRESIGNED_SECONDS} seconds (SigV4's 7-day maximum)")
        _check(1 <= self.max_source_minutes <= MAX_SOURCE_MINUTES, self.name, "max_source_minutes",
               self.max_source_minutes, f"1-{MAX_SOURCE_MINUTES} minutes")
        task_vcpu = self.task_cpu / FARGATE_CPU_UNITS_PER_VCPU
        capacity_type = "Spot" if self.spot_default else "On-Demand"
        _check(self.fargate_vcpu_quota * FARGATE_CPU_UNITS_PER_VCPU >= self.task_cpu, self.name,
               "fargate_vcpu_quota", self.fargate_vcpu_quota, f"a whole number of vCPU from {math.ceil(task_vcpu)} "
               f"(one task of task_cpu {self.task_cpu}): the account's Fargate {capacity_type} vCPU quota, as assumed")
        fits = self.fargate_vcpu_quota * FARGATE_CPU_UNITS_PER_VCPU // self.task_cpu
        _check(self.max_concurrent_videos <= fits, self.name, "max_concurrent_videos", self.max_concurrent_videos,
               f"1-{fits} videos: max_concurrent_videos x {task_vcpu:g} vCPU (task_cpu {self.task_cpu}) must fit "
               f"fargate_vcpu_quota {self.fargate_vcpu_quota}, the Fargate {capacity_type} vCPU quota assumed for "
               "the account (request more in Service Quotas, then raise fargate_vcpu_quota)")

    @property
    def nat_gateway_count(self) -> int:
        return self.az_count if self.nat_per_az else 1

    @property
    def cache_node_count(self) -> int:
        return 2 if self.multi_az else 1


def shown(value: object) -> str:
    """A value as a message may echo it: its repr, cut (a 10 MB value is not printed whole)."""
    text = repr(value)
    return text if len(text) <= MAX_VALUE_SHOWN else f"{text[:MAX_VALUE_SHOWN]}... ({len(text)} characters)"


def _check(ok: bool, env: str, field_name: str, value: object, accepted: str) -> None:
    if not ok:
        raise ConfigError(f"{env}: invalid {field_name} {shown(value)}; accepted: {accepted}")


def _base_tags(env: str) -> tuple[tuple[str, str], ...]:
    return (("Environment", env), ("Project", PROJECT))


ENVIRONMENTS: dict[str, EnvConfig] = {
    "dev": EnvConfig(
        name="dev", vpc_cidr="10.10.0.0/16", az_count=2, nat_per_az=False,
        log_retention_days=7, spot_default=True, api_rate_limit=10, api_burst_limit=20,
        db_instance_class="db.t4g.micro", db_storage_gib=20, db_max_storage_gib=100, backup_retention_days=1,
        multi_az=False, cache_node_type="cache.t4g.micro", cache_snapshot_retention_days=0,
        db_min_free_storage_gib=2, db_min_freeable_memory_mib=64, db_max_connections=70,
        # 2 vCPU, sources up to 10 minutes (`python -m generator capacity` prints the execution timeout).
        task_cpu=2048, task_memory=4096, max_source_minutes=10,
        api_reserved_concurrency=0, max_concurrent_videos=2, fargate_vcpu_quota=6,
        media_source_expiry_days=7, media_bucket_budget_gib=50,
        tags=_base_tags("dev"),
    ),
    "staging": EnvConfig(
        name="staging", vpc_cidr="10.20.0.0/16", az_count=2, nat_per_az=False,
        log_retention_days=30, spot_default=False, api_rate_limit=50, api_burst_limit=100,
        db_instance_class="db.t4g.medium", db_storage_gib=50, db_max_storage_gib=200, backup_retention_days=7,
        multi_az=False, cache_node_type="cache.t4g.small", cache_snapshot_retention_days=0,
        db_min_free_storage_gib=5, db_min_freeable_memory_mib=256, db_max_connections=300,
        # Half prod's task and sources (a new account's 6 vCPU hold 3 tasks of 2 vCPU), prod's execution timeout.
        task_cpu=2048, task_memory=4096, max_source_minutes=30,
        api_reserved_concurrency=100, max_concurrent_videos=2, fargate_vcpu_quota=6,
        media_source_expiry_days=30, media_bucket_budget_gib=500, upload_max_gib=50,
        tags=_base_tags("staging"),
    ),
    "prod": EnvConfig(
        name="prod", vpc_cidr="10.30.0.0/16", az_count=3, nat_per_az=True,
        log_retention_days=365, spot_default=False, api_rate_limit=100, api_burst_limit=200,
        db_instance_class="db.m7g.large", db_storage_gib=100, db_max_storage_gib=1000, backup_retention_days=30,
        multi_az=True, cache_node_type="cache.m7g.large", cache_snapshot_retention_days=7,
        db_min_free_storage_gib=10, db_min_freeable_memory_mib=512, db_max_connections=700,
        # 4 vCPU encode an hour of source in about an hour (0.96x realtime at the measured 0.24x per vCPU; the
        # execution timeout allows two runs with headroom). 12 x 4 vCPU of the 64 On-Demand vCPU to request before
        # the first deploy (16 to spare for other tasks).
        task_cpu=4096, task_memory=8192, max_source_minutes=60,
        api_reserved_concurrency=200, max_concurrent_videos=12, fargate_vcpu_quota=64, snapshot_on_delete=True,
        retain_data=True, db_log_connections=True, vpc_endpoints=True, require_image_digest=True,
        media_source_expiry_days=0, media_bucket_budget_gib=20000, upload_max_gib=200,
        tags=_base_tags("prod"),
    ),
}


def check_environments(envs: dict[str, EnvConfig]) -> None:
    """Cross-environment rules: names match keys and VPC ranges never overlap (peering, VPN, reuse)."""
    for key, cfg in envs.items():
        if key != cfg.name:
            raise ConfigError(f"environment key {key!r} differs from its name {cfg.name!r}")
    items = sorted(envs.values(), key=lambda c: c.name)
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            if ipaddress.ip_network(a.vpc_cidr).overlaps(ipaddress.ip_network(b.vpc_cidr)):
                raise ConfigError(f"invalid vpc_cidr: {a.name} ({a.vpc_cidr}) overlaps {b.name} "
                                  f"({b.vpc_cidr}); accepted: non-overlapping ranges per environment")


def get(name: str) -> EnvConfig:
    if name not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment {shown(name)}; valid: {', '.join(sorted(ENVIRONMENTS))}")
    return ENVIRONMENTS[name]


def environment_of_stack(stack: dict) -> str | None:
    """The environment a deployed parent stack belongs to (a DescribeStacks entry): its Environment tag, else
    the `(env)` its template Description ends with (stacks deployed before deploy.sh tagged them)."""
    tags = {t["Key"]: t["Value"] for t in stack.get("Tags") or []}
    if tags.get("Environment") in ENVIRONMENTS:
        return tags["Environment"]
    description = stack.get("Description") or ""
    return next((env for env in ENVIRONMENTS if description.endswith(f"({env})")), None)


def environments_table() -> str:
    """`<name>\t<region>` per environment, in registry order: what deploy.sh validates --env against."""
    return "".join(f"{cfg.name}\t{cfg.region}\n" for cfg in ENVIRONMENTS.values())


def override(cfg: EnvConfig, **changes: Any) -> EnvConfig:
    """A validated copy with some fields changed (tests and what-if generation)."""
    known = {f.name for f in fields(EnvConfig)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(shown(u) for u in unknown)}; known: "
                          f"{', '.join(sorted(known - NOT_OVERRIDABLE))}")
    return replace(cfg, **changes)


JSON_TYPES = {bool: "boolean", int: "integer", str: "string"}
NOT_OVERRIDABLE = frozenset({"name", "tags"})  # identity, not settings


def with_overrides(overrides: object) -> dict[str, EnvConfig]:
    """Every environment with per-environment overrides such as {"dev": {"az_count": 3}} applied (what-if
    generation from `python -m generator --config FILE`): each value validated like the built-in ones,
    then all environments checked together."""
    if not isinstance(overrides, dict):
        raise ConfigError('invalid overrides; accepted: an object of environments such as {"dev": {"az_count": 3}}')
    envs = dict(ENVIRONMENTS)
    for name, changes in sorted(overrides.items()):
        base = get(name)
        if not isinstance(changes, dict):
            raise ConfigError(f"{name}: invalid overrides {shown(changes)}; accepted: an object of settings")
        for key, value in sorted(changes.items()):
            if key in NOT_OVERRIDABLE:
                raise ConfigError(f"{name}: invalid setting {key}; accepted: any setting but name and tags")
            current = getattr(base, key, None)
            if type(current) in JSON_TYPES and type(value) is not type(current):
                raise ConfigError(f"{name}: invalid {key} {shown(value)}; accepted: a JSON {JSON_TYPES[type(current)]} "
                                  f"such as {json.dumps(current)}")
        envs[name] = override(base, **changes)
    check_environments(envs)
    return envs


check_environments(ENVIRONMENTS)
