"""cache: the ElastiCache Redis replication group, its generated AUTH token, its slow log and their key.

Its own key rather than storage's data key: the cache then consumes only network and deploys in
parallel with storage.
"""

from __future__ import annotations

from troposphere import GetAtt, Ref, Template
from troposphere.elasticache import (
    CloudWatchLogsDestinationDetails,
    DestinationDetails,
    LogDeliveryConfigurationRequest,
    ReplicationGroup,
    SubnetGroup,
)
from troposphere.secretsmanager import GenerateSecretString

from generator import blocks, contracts, names
from generator.config import EnvConfig

CONSUMES = (contracts.DATA_SUBNET_IDS, contracts.CACHE_SECURITY_GROUP_ID)
PRODUCES = (contracts.CACHE_ENDPOINT_ADDRESS, contracts.CACHE_ENDPOINT_PORT, contracts.CACHE_AUTH_SECRET_ARN,
            contracts.CACHE_KEY_ARN, contracts.CACHE_REPLICATION_GROUP_ID)

REDIS_ENGINE_VERSION = "7.1"
AUTH_TOKEN_LENGTH = 64  # Redis accepts 16-128 printable characters; letters and digits avoid escaping anywhere
SNAPSHOT_WINDOW = "17:00-18:00"  # UTC, 02:00-03:00 in Tokyo
MAINTENANCE_WINDOW = "sun:18:00-sun:19:00"  # UTC, after the snapshot window
KEY_SERVICES = ("elasticache", "secretsmanager")


def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing cache: Redis replication group")
    p = blocks.parameters(t, CONSUMES)
    # Retained everywhere: final snapshots outlive the stack, and only this key decrypts them.
    key = blocks.kms_key(t, cfg, "CacheKey", "Encrypts the Redis cache, its AUTH secret and its slow log",
                         names.env_prefixed(cfg.name, "cache"),
                         [blocks.via_services_statement(list(KEY_SERVICES)),
                          blocks.logs_key_statement([names.cache_slow_log_group(cfg.name)])],
                         blocks.RETAIN_POLICIES)
    key_arn = GetAtt(key, "Arn")
    token = blocks.generated_secret(
        t, cfg, "CacheAuthSecret", "Redis AUTH token of the video processing cache", key_arn,
        GenerateSecretString(PasswordLength=AUTH_TOKEN_LENGTH, ExcludePunctuation=True),
    )
    subnet_group = t.add_resource(SubnetGroup(
        "CacheSubnetGroup",
        Description=f"Data subnets of the video processing cache ({cfg.name})",
        SubnetIds=p[contracts.DATA_SUBNET_IDS],
        Tags=blocks.tags(cfg),
    ))
    slow_log = blocks.encrypted_log_group(t, cfg, "CacheSlowLogGroup", names.cache_slow_log_group(cfg.name), key_arn)
    snapshots: dict[str, int | str] = {"SnapshotRetentionLimit": cfg.cache_snapshot_retention_days}
    if cfg.cache_snapshot_retention_days:
        snapshots["SnapshotWindow"] = SNAPSHOT_WINDOW
    group = t.add_resource(ReplicationGroup(
        "CacheReplicationGroup",
        ReplicationGroupDescription=f"Video processing cache ({cfg.name})",
        Engine="redis",
        EngineVersion=REDIS_ENGINE_VERSION,
        AutoMinorVersionUpgrade=True,
        CacheNodeType=cfg.cache_node_type,
        NumCacheClusters=cfg.cache_node_count,
        AutomaticFailoverEnabled=cfg.multi_az,
        MultiAZEnabled=cfg.multi_az,
        CacheSubnetGroupName=Ref(subnet_group),
        SecurityGroupIds=[p[contracts.CACHE_SECURITY_GROUP_ID]],
        AtRestEncryptionEnabled=True,
        KmsKeyId=key_arn,
        TransitEncryptionEnabled=True,
        TransitEncryptionMode="required",
        AuthToken=blocks.secret_reference(token),
        PreferredMaintenanceWindow=MAINTENANCE_WINDOW,
        LogDeliveryConfigurations=[LogDeliveryConfigurationRequest(
            LogType="slow-log",
            LogFormat="json",
            DestinationType="cloudwatch-logs",
            DestinationDetails=DestinationDetails(
                CloudWatchLogsDetails=CloudWatchLogsDestinationDetails(LogGroup=Ref(slow_log))),
        )],
        Tags=blocks.tags(cfg),
        **snapshots,
        **blocks.snapshot_policies(cfg),
    ))

    blocks.output(t, contracts.CACHE_ENDPOINT_ADDRESS, GetAtt(group, "PrimaryEndPoint.Address"))
    blocks.output(t, contracts.CACHE_ENDPOINT_PORT, GetAtt(group, "PrimaryEndPoint.Port"))
    blocks.output(t, contracts.CACHE_AUTH_SECRET_ARN, Ref(token))
    blocks.output(t, contracts.CACHE_KEY_ARN, key_arn)
    blocks.output(t, contracts.CACHE_REPLICATION_GROUP_ID, Ref(group))
    return t
