"""Encryption rules (VP3xx): keys rotate; logs, messages and data stores are encrypted at rest and in transit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from generator.rules.common import Templates, as_list, each_resource, is_tls_deny, resolve, resource_of, rule


@rule("VP301", "Every KMS key rotates", "https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html")
def key_rotation(templates: Templates) -> list[str]:
    return [f"{where}: key rotation is not enabled" for where, *_, r in each_resource(templates, "AWS::KMS::Key")
            if r["Properties"].get("EnableKeyRotation") is not True]


@rule("VP302", "Every log group has a retention and a KMS key",
      "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html")
def log_groups(templates: Templates) -> list[str]:
    # Custom::AdoptedLogGroup: a group RDS names and creates, owned by the stack with the same properties.
    return [f"{where}: no {prop}"
            for where, *_, r in each_resource(templates, "AWS::Logs::LogGroup", "Custom::AdoptedLogGroup")
            for prop in ("RetentionInDays", "KmsKeyId") if prop not in r["Properties"]]


@rule("VP303", "Every topic and queue is encrypted with a KMS key",
      "https://docs.aws.amazon.com/sns/latest/dg/sns-server-side-encryption.html")
def messages_encrypted(templates: Templates) -> list[str]:
    return [f"{where}: not encrypted with a KMS key"
            for where, *_, r in each_resource(templates, "AWS::SNS::Topic", "AWS::SQS::Queue")
            if not r["Properties"].get("KmsMasterKeyId")]


def covered_by_tls_deny(templates: Templates, type_: str, policy_type: str, list_property: str,
                        action: str) -> list[str]:
    """Problems for every resource of type_ that no policy of policy_type covers with a TLS deny."""
    problems = []
    for where, env, tier, logical_id, _r in each_resource(templates, type_):
        policies = [p["Properties"] for p in templates[env][tier]["Resources"].values()
                    if p["Type"] == policy_type and {"Ref": logical_id} in as_list(p["Properties"][list_property])]
        refs = ({"Ref": logical_id}, {"Fn::GetAtt": [logical_id, "Arn"]}, "*")
        if not any(is_tls_deny(s, action) and any(ref in as_list(s.get("Resource", [])) for ref in refs)
                   for p in policies for s in as_list(p["PolicyDocument"]["Statement"])):
            problems.append(f"{where}: no {policy_type} denies {action} without TLS")
    return problems


@rule("VP304", "Every topic's and queue's policy denies access without TLS (aws:SecureTransport)",
      "https://docs.aws.amazon.com/sns/latest/dg/sns-security-best-practices.html#enforce-encryption-data-in-transit")
def messages_tls_only(templates: Templates) -> list[str]:
    return (covered_by_tls_deny(templates, "AWS::SNS::Topic", "AWS::SNS::TopicPolicy", "Topics", "sns:Publish")
            + covered_by_tls_deny(templates, "AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "Queues", "sqs:SendMessage"))


def force_ssl(templates: Templates, env: str, tier: str, group_ref: Any) -> bool:
    group = resolve(templates, env, tier, group_ref)
    if group is None:
        return False
    parameters = resource_of(templates, env, group)["Properties"].get("Parameters", {})
    return str(parameters.get("rds.force_ssl", parameters.get("require_secure_transport", ""))).lower() in ("1", "on")


def efs_policy_denies_plain_nfs(p: dict) -> bool:
    return any(is_tls_deny(s, "elasticfilesystem:ClientMount")
               for s in as_list(p.get("FileSystemPolicy", {}).get("Statement", [])))


def key_of(templates: Templates, env: str, tier: str, value: Any) -> bool:
    """Whether a value names an AWS::KMS::Key of the templates (through the parent)."""
    found = resolve(templates, env, tier, value)
    return found is not None and resource_of(templates, env, found)["Type"] == "AWS::KMS::Key"


def _rds_instance(t: Templates, env: str, tier: str, p: dict) -> list[str]:
    if "DBClusterIdentifier" in p:  # encryption and TLS are the cluster's
        return []
    return ([] if p.get("StorageEncrypted") is True else ["StorageEncrypted is not true"]) + (
        [] if force_ssl(t, env, tier, p.get("DBParameterGroupName")) else ["its parameter group does not force TLS"])


# type -> (templates, env, tier, properties) -> what is missing for encryption at rest and in transit
DATA_STORE_ENCRYPTION: dict[str, Callable[[Templates, str, str, dict], list[str]]] = {
    "AWS::RDS::DBInstance": _rds_instance,
    "AWS::RDS::DBCluster": lambda t, env, tier, p: (
        ([] if p.get("StorageEncrypted") is True else ["StorageEncrypted is not true"])
        + ([] if force_ssl(t, env, tier, p.get("DBClusterParameterGroupName")) else ["TLS is not forced"])),
    "AWS::EFS::FileSystem": lambda t, env, tier, p: (
        ([] if p.get("Encrypted") is True else ["Encrypted is not true"])
        + ([] if efs_policy_denies_plain_nfs(p) else ["its FileSystemPolicy does not deny mounts without TLS"])),
    "AWS::ElastiCache::ReplicationGroup": lambda t, env, tier, p: (
        ([] if p.get("AtRestEncryptionEnabled") is True else ["AtRestEncryptionEnabled is not true"])
        + ([] if p.get("TransitEncryptionEnabled") is True and p.get("TransitEncryptionMode", "required") == "required"
           else ["transit encryption is not required"])),
    "AWS::ElastiCache::CacheCluster": lambda t, env, tier, p: ["cannot encrypt at rest; use a ReplicationGroup"],
    # A customer-managed key of the project (not DynamoDB's own or AWS-managed key): its policy says who may use it.
    "AWS::DynamoDB::Table": lambda t, env, tier, p: (
        [] if p.get("SSESpecification", {}).get("SSEEnabled") is True
        and p["SSESpecification"].get("SSEType") == "KMS"
        and key_of(t, env, tier, p["SSESpecification"].get("KMSMasterKeyId"))
        else ["not encrypted with a customer-managed key (SSESpecification SSEEnabled, SSEType KMS, KMSMasterKeyId)"]),
    "AWS::SecretsManager::Secret": lambda t, env, tier, p: [] if p.get("KmsKeyId") else ["no KmsKeyId"],
    "AWS::S3::Bucket": lambda t, env, tier, p: [] if p.get("BucketEncryption") else ["no BucketEncryption"],
    "AWS::ECS::TaskDefinition": lambda t, env, tier, p: [
        f"EFS volume {v.get('Name')} without TransitEncryption ENABLED" for v in p.get("Volumes", [])
        if "EFSVolumeConfiguration" in v and v["EFSVolumeConfiguration"].get("TransitEncryption") != "ENABLED"],
}


@rule("VP305", "Data stores (databases, file systems, caches, tables, secrets, buckets, EFS volumes) are encrypted "
      "at rest and in transit",
      "https://docs.aws.amazon.com/wellarchitected/latest/security-pillar/protecting-data-at-rest.html")
def data_stores_encrypted(templates: Templates) -> list[str]:
    return [f"{where}: {m}" for where, env, tier, _id, r in each_resource(templates, *DATA_STORE_ENCRYPTION)
            for m in DATA_STORE_ENCRYPTION[r["Type"]](templates, env, tier, r["Properties"])]
