"""Facts about AWS, in one place for the review diff, the deploy report, the preflight, the capacity plan and the tests.

Which types hold data (replacing or removing one loses it), which DeletionPolicy/UpdateReplacePolicy keeps
that data, and which properties are create-only (from the resource schemas cfn-lint ships); the account's
quotas and rates the preflight and `python -m generator capacity` weigh the settings against, each with the
documentation page that states it. Importing this module is cheap and needs neither boto3 nor cfn-lint: the
schemas are read on first use and cached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from generator.config import CPU_UNITS_PER_VCPU, DEFAULT_REGION, MAX_DB_CONNECTIONS

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
FARGATE_CPU_UNITS_PER_VCPU = CPU_UNITS_PER_VCPU  # task_cpu's unit (config.FARGATE_SIZES are in it)

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
RDS_POSTGRES_MAX_CONNECTIONS = Fact("RDS for PostgreSQL default max_connections, at most", MAX_DB_CONNECTIONS,
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

# Schemas are read for the pipeline's region, and for us-east-1 (where every type exists first) when missing.
SCHEMA_REGIONS = (DEFAULT_REGION, "us-east-1")


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
    digest = next((d for d in (_provider_index(r).get(resource_type) for r in SCHEMA_REGIONS) if d), None)
    if digest is None:
        return None
    return json.loads((_schemas() / "resources" / f"{digest}.json").read_text(encoding="utf-8"))


@cache
def create_only(resource_type: str) -> tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]]:
    """(create-only, conditionally create-only) property pointers of a type, as segment tuples."""
    schema = resource_schema(resource_type)
    if schema is None:
        return (), ()

    def pointers(key: str) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(p.split("/")[2:]) for p in schema.get(key, ()) if p.startswith("/properties/"))
    return pointers("createOnlyProperties"), pointers("conditionalCreateOnlyProperties")
