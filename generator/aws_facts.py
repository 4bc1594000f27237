"""Facts about AWS resource types, in one place for the review diff, the deploy report and the tests.

Which types hold data (replacing or removing one loses it), which DeletionPolicy/UpdateReplacePolicy keeps
that data, and which properties are create-only (from the resource schemas cfn-lint ships). Importing this
module is cheap and needs neither boto3 nor cfn-lint: the schemas are read on first use and cached.
"""

from __future__ import annotations

import json
from functools import cache

from generator.config import DEFAULT_REGION

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
FARGATE_CPU_UNITS_PER_VCPU = 1024

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
