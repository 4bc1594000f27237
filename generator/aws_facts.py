"""Facts about AWS, in one place for the settings' checks, the generator, the review diff, the deploy report, the
preflight, the capacity plan and the tests.

Which types hold data (replacing or removing one loses it), which DeletionPolicy/UpdateReplacePolicy keeps
that data, and which properties are create-only (from the resource schemas cfn-lint ships); which IAM actions
cannot be scoped to a resource (from the Service Authorization Reference data cfn-lint ships); the service
limits the settings are checked against and the templates must fit; the account's quotas and rates the
preflight and `python -m generator capacity` weigh the settings against. Each with the documentation page that
states it. Facts know nothing of this project's settings: this module imports nothing of the generator (config
imports it, not the other way round). Importing it is cheap and needs neither boto3 nor cfn-lint: cfn-lint's
data is read on first use and cached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

NESTED_STACK_TYPE = "AWS::CloudFormation::Stack"

# DeletionPolicy / UpdateReplacePolicy values that leave the data behind ("Delete", the default, does not).
RETAINING_POLICIES = ("Retain", "RetainExceptOnCreate", "Snapshot")

# Stateful type -> the policy that keeps its data when CloudFormation deletes or replaces the resource.
# "Snapshot" (a final snapshot, then the resource is deleted) only where CloudFormation supports it, see
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html;
# everything else is "Retain" (the old resource stays, outside the stack).
RETAINING_POLICY = {
    # Databases and their clusters: the rows.
    "AWS::RDS::DBInstance": "Snapshot",
    "AWS::RDS::DBCluster": "Snapshot",
    "AWS::Neptune::DBCluster": "Snapshot",
    "AWS::DocDB::DBCluster": "Snapshot",
    "AWS::Redshift::Cluster": "Snapshot",
    # Caches: the keys (Redis persists them; clients may treat the cache as a store).
    "AWS::ElastiCache::ReplicationGroup": "Snapshot",
    "AWS::ElastiCache::CacheCluster": "Snapshot",
    "AWS::ElastiCache::ServerlessCache": "Retain",  # no Snapshot policy (it has its own FinalSnapshotName)
    # Block and file storage, buckets, tables: the bytes, files, objects and items.
    "AWS::EC2::Volume": "Snapshot",
    "AWS::EFS::FileSystem": "Retain",
    "AWS::S3::Bucket": "Retain",
    "AWS::DynamoDB::Table": "Retain",
    "AWS::ECR::Repository": "Retain",  # the images pushed to it
    # Queues and streams: messages and records not yet consumed (up to their retention period).
    "AWS::SQS::Queue": "Retain",
    "AWS::Kinesis::Stream": "Retain",
    # Log events: flow, execution, task and database logs, often the only record of an incident.
    "AWS::Logs::LogGroup": "Retain",
    # A key's material cannot be recreated: everything encrypted under it becomes unreadable.
    "AWS::KMS::Key": "Retain",
    # The secret value: a generated password or token exists nowhere else.
    "AWS::SecretsManager::Secret": "Retain",
    # Not stateful: AWS::SNS::Topic. A topic stores no messages (each is delivered when published), its
    # subscriptions and policy are declared in the templates and come back with a new topic, and a
    # retained old topic would be an orphan nobody publishes to. (A replaced topic's e-mail subscriptions
    # must be confirmed again: the diff shows that as a replacement, not as lost data.)
}
# Custom resources that own a resource of an AWS type (a log group a service names and creates, adopted by the
# stack: generator/functions/rds_log_groups/), with that type's properties: the diff, the deploy report and the rules
# read them as that type (what holds data, what keeps it, which property changes replace it).
CUSTOM_TYPES_AS_AWS = {"Custom::AdoptedLogGroup": "AWS::Logs::LogGroup"}
RETAINING_POLICY.update({custom: RETAINING_POLICY[aws] for custom, aws in sorted(CUSTOM_TYPES_AS_AWS.items())})
STATEFUL_TYPES = frozenset(RETAINING_POLICY)

# The actions a topic policy may name (the topic's own API), as AWS's default topic policy lists them:
# https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html and
# https://docs.aws.amazon.com/sns/latest/dg/sns-using-identity-based-policies.html#sns-policy-keys
SNS_TOPIC_POLICY_ACTIONS = ("AddPermission", "DeleteTopic", "GetTopicAttributes", "ListSubscriptionsByTopic",
                            "Publish", "RemovePermission", "SetTopicAttributes", "Subscribe")

# --- one per account and region, and the account's quotas (deploytools.bootstrap and .preflight) -----------
# ECS creates this service-linked role on first use, except when a cluster with capacity providers is created
# through CloudFormation: that create fails ("Unable to assume the service linked role") until it exists.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-service-linked-roles.html
ECS_SERVICE = "ecs.amazonaws.com"
ECS_SERVICE_LINKED_ROLE = "AWSServiceRoleForECS"
# Lambda keeps at least this many executions unreserved in every account and region:
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
LAMBDA_MIN_UNRESERVED = 100
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"  # "Concurrent executions", service code lambda
# Fargate vCPU quotas (service code fargate), counted over every running task in the region:
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-quotas.html
FARGATE_ON_DEMAND_VCPU_QUOTA = "L-3032A538"
FARGATE_SPOT_VCPU_QUOTA = "L-36FBB829"

# --- service limits the settings (generator/config.py) and the templates must stay inside --------------------
# A task's cpu is in CPU units, 1024 to a vCPU; Fargate accepts only these cpu -> memory (MiB) combinations (the
# 8 and 16 vCPU sizes exist too; no environment offers them):
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
FARGATE_CPU_UNITS_PER_VCPU = 1024
FARGATE_TASK_SIZES = {
    256: (512, 1024, 2048),
    512: (1024, 2048, 3072, 4096),
    1024: (2048, 3072, 4096, 5120, 6144, 7168, 8192),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}
# CloudWatch Logs accepts only these retention periods (days):
# https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)
# API Gateway's default throttling per account and region (a stage limit above it never applies):
# https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
API_GATEWAY_ACCOUNT_RATE_LIMIT = 10_000  # requests per second
API_GATEWAY_ACCOUNT_BURST_LIMIT = 5_000  # requests
# RDS gp3 storage for PostgreSQL, GiB: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/CHAP_Storage.html
RDS_GP3_STORAGE_GIB = (20, 65536)
# Storage autoscaling's ceiling (maximum storage threshold) must be at least 10% above the allocated storage:
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_PIOPS.Autoscaling.html
RDS_AUTOSCALING_MIN_CEILING_RATIO = 1.1
# Automated backups are kept 1-35 days (0 turns them off):
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_WorkingWithAutomatedBackups.BackupRetention.html
RDS_MAX_BACKUP_RETENTION_DAYS = 35
# ElastiCache keeps automatic snapshots at most 35 days (SnapshotRetentionLimit):
# https://docs.aws.amazon.com/AmazonElastiCache/latest/APIReference/API_CreateReplicationGroup.html
ELASTICACHE_MAX_SNAPSHOT_RETENTION_DAYS = 35
# CloudFormation's quotas for one template: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html
CLOUDFORMATION_MAX_TEMPLATE_BYTES = 1_000_000  # template body uploaded to S3
CLOUDFORMATION_MAX_RESOURCES = 500
CLOUDFORMATION_MAX_PARAMETERS = 200
CLOUDFORMATION_MAX_OUTPUTS = 200
# An EventBridge target's retry policy: events are kept at most 24 hours and retried at most 185 times, and an
# event age below 60 seconds is refused: https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_RetryPolicy.html
EVENTBRIDGE_MAX_EVENT_AGE_SECONDS = 24 * 3600
EVENTBRIDGE_MIN_EVENT_AGE_SECONDS = 60
EVENTBRIDGE_MAX_RETRIES = 185
# SQS keeps a message at most 14 days (MessageRetentionPeriod):
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html
SQS_MAX_RETENTION_SECONDS = 14 * 24 * 3600
# API Gateway waits at most 29 seconds for an integration (REST APIs, by default):
# https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS = 29
# An execution's (or a task's) failure cause is at most 32,768 characters:
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_ExecutionFailedEventDetails.html
STEP_FUNCTIONS_CAUSE_MAX_CHARS = 32768
# A DynamoDB item, attribute names and values together, is at most 400 KB:
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html
DYNAMODB_ITEM_MAX_BYTES = 400 * 1024

# --- capacity: the limits `python -m generator capacity` weighs max_concurrent_videos against ----------------
# Each figure with the AWS page that states it; figures of our own design are Assumptions, with where they come
# from. AWS may raise a default at any time (and raises some automatically with usage): the preflight asks the
# account for its real Fargate vCPU quota before every change set.


@dataclass(frozen=True)
class Fact:
    """A figure AWS documents, and the documentation page that states it."""

    title: str
    value: int
    unit: str
    source: str


@dataclass(frozen=True)
class Assumption:
    """A figure of this project's own design, not AWS's, and what it rests on."""

    title: str
    value: int
    unit: str
    basis: str


ECS_QUOTAS_PAGE = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-quotas.html"
FARGATE_THROTTLING_PAGE = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html"
STEP_FUNCTIONS_QUOTAS_PAGE = "https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html"
RDS_MAX_CONNECTIONS_PAGE = "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/CHAP_Limits.html#RDS_Limits.MaxConnections"
RDS_INSTANCE_CLASSES_PAGE = "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Concepts.DBInstanceClass.Summary.html"

# What a new account may start with, On-Demand and Spot alike (FARGATE_ON_DEMAND_VCPU_QUOTA, FARGATE_SPOT_VCPU_QUOTA);
# the page says new accounts may start lower than established ones and that AWS raises the quotas with usage, so
# an older account often has far more. 6 is the low figure this project plans for (config's fargate_vcpu_quota).
FARGATE_NEW_ACCOUNT_VCPU = Fact("Fargate vCPU quota of a new account, On-Demand and Spot each", 6, "vCPU",
                                ECS_QUOTAS_PAGE)
# Task launches, On-Demand and Spot each: a token bucket per account and region.
FARGATE_LAUNCH_BURST = Fact("Fargate task launches, bucket (burst)", 100, "tasks", FARGATE_THROTTLING_PAGE)
FARGATE_LAUNCH_RATE = Fact("Fargate task launches, refill (sustained)", 20, "tasks/s", FARGATE_THROTTLING_PAGE)
# RunTask calls launching Fargate tasks, a separate quota from the launches (one call may launch up to 10 tasks;
# the pipeline launches one per call).
RUN_TASK_RATE = Fact("ECS RunTask calls launching Fargate tasks, burst and sustained", 20, "calls/s",
                     FARGATE_THROTTLING_PAGE)
# StartExecution of Standard workflows: a token bucket per account and region, larger in three regions.
START_EXECUTION_LARGE_REGIONS = ("eu-west-1", "us-east-1", "us-west-2")
START_EXECUTION_BURST_LARGE = Fact("Step Functions StartExecution (Standard), bucket in us-east-1, us-west-2, "
                                   "eu-west-1", 1300, "calls", STEP_FUNCTIONS_QUOTAS_PAGE)
START_EXECUTION_RATE_LARGE = Fact("Step Functions StartExecution (Standard), refill in us-east-1, us-west-2, "
                                  "eu-west-1", 300, "calls/s", STEP_FUNCTIONS_QUOTAS_PAGE)
START_EXECUTION_BURST = Fact("Step Functions StartExecution (Standard), bucket in other regions", 800, "calls",
                             STEP_FUNCTIONS_QUOTAS_PAGE)
START_EXECUTION_RATE = Fact("Step Functions StartExecution (Standard), refill in other regions", 150, "calls/s",
                            STEP_FUNCTIONS_QUOTAS_PAGE)
# The longest a Standard execution may run (a year): the most minutes per video worth planning for.
STANDARD_EXECUTION_MAX_MINUTES = Fact("Step Functions Standard execution, longest run", 365 * 24 * 60, "minutes",
                                      STEP_FUNCTIONS_QUOTAS_PAGE)
# RDS for PostgreSQL's default max_connections is LEAST({DBInstanceClassMemory/9531392}, 5000).
RDS_POSTGRES_BYTES_PER_CONNECTION = Fact("RDS for PostgreSQL default max_connections, DBInstanceClassMemory per "
                                         "connection", 9531392, "bytes", RDS_MAX_CONNECTIONS_PAGE)
RDS_POSTGRES_MAX_CONNECTIONS = Fact("RDS for PostgreSQL default max_connections, at most", 5000,
                                    "connections", RDS_MAX_CONNECTIONS_PAGE)
# Nominal memory of the instance classes config.py uses. DBInstanceClassMemory, the figure the formula divides, is
# somewhat less (RDS subtracts what the operating system and its own processes hold), so max_connections computed
# from nominal memory is an upper bound of the real default; `SHOW max_connections` on the instance gives it.
DB_INSTANCE_MEMORY = {
    name: Fact(f"{name} memory (nominal)", gib, "GiB", RDS_INSTANCE_CLASSES_PAGE)
    for name, gib in (("db.m7g.large", 8), ("db.t4g.medium", 4), ("db.t4g.micro", 1))
}

# Ours, not AWS's: how much of each limit one video takes.
DB_CONNECTIONS_PER_TASK = Assumption(
    "database connections per processing task", 1, "connections",
    "README.md, Container contract: a processing task holds one database connection at a time")
EXECUTIONS_PER_VIDEO = Assumption(
    "StartExecution calls per video", 1, "calls",
    "admission control starts one execution per admitted video (a video put back in the queue starts another)")
RUN_TASK_CALLS_PER_VIDEO = Assumption(
    "RunTask calls and task launches per video", 1, "calls",
    "one Fargate task per video, launched by the state machine's ProcessVideo (its retries aside)")
API_REQUESTS_PER_VIDEO = Assumption(
    "API requests per video", 1, "requests",
    "the submission; status reads are the client's choice and not counted")


def start_execution_limits(region: str) -> tuple[Fact, Fact]:
    """(bucket, refill) of StartExecution for Standard workflows in a region."""
    if region in START_EXECUTION_LARGE_REGIONS:
        return START_EXECUTION_BURST_LARGE, START_EXECUTION_RATE_LARGE
    return START_EXECUTION_BURST, START_EXECUTION_RATE


def default_max_connections(instance_class: str) -> int | None:
    """RDS for PostgreSQL's default max_connections for a class, from its nominal memory (an upper bound, see
    DB_INSTANCE_MEMORY); None for a class whose memory is not listed here."""
    memory = DB_INSTANCE_MEMORY.get(instance_class)
    if memory is None:
        return None
    return min(memory.value * 2**30 // RDS_POSTGRES_BYTES_PER_CONNECTION.value, RDS_POSTGRES_MAX_CONNECTIONS.value)


CAPACITY_FACTS: tuple[Fact, ...] = (
    FARGATE_NEW_ACCOUNT_VCPU, FARGATE_LAUNCH_BURST, FARGATE_LAUNCH_RATE, RUN_TASK_RATE,
    START_EXECUTION_BURST_LARGE, START_EXECUTION_RATE_LARGE, START_EXECUTION_BURST, START_EXECUTION_RATE,
    STANDARD_EXECUTION_MAX_MINUTES, RDS_POSTGRES_BYTES_PER_CONNECTION, RDS_POSTGRES_MAX_CONNECTIONS,
    *(DB_INSTANCE_MEMORY[name] for name in sorted(DB_INSTANCE_MEMORY)),
)
CAPACITY_ASSUMPTIONS: tuple[Assumption, ...] = (
    DB_CONNECTIONS_PER_TASK, EXECUTIONS_PER_VIDEO, RUN_TASK_CALLS_PER_VIDEO, API_REQUESTS_PER_VIDEO,
)

# Schemas are read as us-east-1 has them, where every type exists first. For the types the templates use they are
# the same in every environment's region (tests/test_aws_facts.py checks it).
SCHEMA_REGION = "us-east-1"


def _schemas():
    from importlib import resources  # the cfn-lint package is imported only when a schema is needed

    return resources.files("cfnlint.data.schemas")


@cache
def _provider_index(region: str) -> dict[str, str]:
    """Resource type -> schema file digest, for one region (cfn-lint's providers/<region>.json)."""
    return json.loads((_schemas() / "providers" / f"{region}.json").read_text(encoding="utf-8"))


@cache
def resource_schema(resource_type: str) -> dict | None:
    """The CloudFormation resource schema of a type, or None for a type cfn-lint does not know."""
    digest = _provider_index(SCHEMA_REGION).get(resource_type)
    if digest is None:
        return None
    return json.loads((_schemas() / "resources" / f"{digest}.json").read_text(encoding="utf-8"))


@cache
def create_only(resource_type: str) -> tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]]:
    """(create-only, conditionally create-only) property pointers of a type, as segment tuples (a custom type of
    CUSTOM_TYPES_AS_AWS: its AWS type's)."""
    schema = resource_schema(CUSTOM_TYPES_AS_AWS.get(resource_type, resource_type))
    if schema is None:
        return (), ()

    def pointers(key: str) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(p.split("/")[2:]) for p in schema.get(key, ()) if p.startswith("/properties/"))
    return pointers("createOnlyProperties"), pointers("conditionalCreateOnlyProperties")


# --- IAM: actions AWS cannot scope to a resource ---------------------------------------------------------------
# The Service Authorization Reference lists, for each action, the resource types a policy may name; an action with
# none takes only Resource "*" (https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html).
# cfn-lint ships that reference as data (its AdditionalSpecs/Policies.json, refreshed from AWS's machine-readable
# https://servicereference.us-east-1.amazonaws.com by its maintainers, pinned with cfn-lint in setup.cfg): read
# here rather than kept by hand.


@cache
def _iam_service_map() -> dict:
    """Service prefix -> {"Actions": {lower-case action: {"Resources": [type, ...]} or {}}, "Resources": ...}."""
    from importlib import resources  # the cfn-lint package is imported only when the data is needed

    data = resources.files("cfnlint.data.AdditionalSpecs") / "Policies.json"
    return json.loads(data.read_text(encoding="utf-8"))


@cache
def unscopable_actions() -> frozenset[str]:
    """Every IAM action that names no resource type, so that a policy can grant it only on Resource "*", as
    `service:action` in lower case (IAM compares action names case-insensitively)."""
    return frozenset(f"{service}:{action}" for service, spec in _iam_service_map().items()
                     for action, resource_types in spec.get("Actions", {}).items()
                     if not resource_types.get("Resources"))


def is_unscopable(action: str) -> bool:
    """True for an action (any case, such as `xray:PutTraceSegments`) that AWS cannot scope to a resource. False
    for one it can, for a wildcard (`logs:*Delivery` may match scopable actions) and for an action the reference
    does not know: a rule allowing Resource "*" only where this is True fails closed on a typo."""
    return action.lower() in unscopable_actions()
