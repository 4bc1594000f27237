"""cache: the ElastiCache Redis replication group, its users (role-based access), its slow log and their key.

No shared AUTH token: the group admits only the users of its user group, each signing in with IAM (Redis 7
supports it: a role's `elasticache:Connect` on the group and the user makes the token, nothing secret to hand out or
rotate) and each allowed only what it does with the one kind of key the pipeline keeps, an attempt's progress
(contract.progress_key): the processor's user SETs progress keys, the API's user GETs them. Neither may read other
keys, scan the key space or run anything else. ElastiCache requires a user named `default` in every user group:
here it is switched off.

Its own key rather than storage's data key: the cache then consumes only network and deploys in
parallel with storage.
"""

from __future__ import annotations

from troposphere import GetAtt, Ref, Template
from troposphere.elasticache import AuthenticationMode as UserAuthentication
from troposphere.elasticache import (
    CloudWatchLogsDestinationDetails,
    DestinationDetails,
    LogDeliveryConfigurationRequest,
    ReplicationGroup,
    SubnetGroup,
    User,
    UserGroup,
)

from generator import blocks, contracts, names
from generator.alarms import GT, AlarmSpec
from generator.config import EnvConfig
from generator.functions.video_jobs import contract

CONSUMES = (contracts.DATA_SUBNET_IDS, contracts.CACHE_SECURITY_GROUP_ID)
PRODUCES = (contracts.CACHE_ENDPOINT_ADDRESS, contracts.CACHE_ENDPOINT_PORT, contracts.CACHE_USER_ID,
            contracts.CACHE_KEY_ARN, contracts.CACHE_REPLICATION_GROUP_ID, contracts.CACHE_READER_USER_ID)

# Failure modes (generator/alarms.py), one alarm per member node: the operations tier builds them, the runbook
# shows them.
NODE_DIMENSIONS = (("CacheClusterId", contracts.CACHE_REPLICATION_GROUP_ID),)  # <group id>-00N per node
ALARMS = (
    AlarmSpec(
        "CacheMemoryAlarm", "cache-memory", "AWS/ElastiCache", "DatabaseMemoryUsagePercentage", NODE_DIMENSIONS,
        "Maximum", GT, 80, "breaching",
        "A Redis node used over 80% of its memory for 15 minutes, or stopped reporting",
        "Keys without a TTL (redis-cli --bigkeys over TLS); the node's status in the ElastiCache console",
        "Expire or delete keys, or a larger cache_node_type",
        periods=3, per_cache_node=True),
    AlarmSpec(
        "CacheEvictionsAlarm", "cache-evictions", "AWS/ElastiCache", "Evictions", NODE_DIMENSIONS, "Sum", GT, 0,
        "ignore",
        "Redis evicted keys to make room: data the pipeline stored is gone",
        "The node's memory (CacheMemoryAlarm, dashboard) and which keys lack a TTL",
        "Same as cache memory; make the processor tolerate a missing key",
        per_cache_node=True),
    AlarmSpec(
        "CacheCpuAlarm", "cache-engine-cpu", "AWS/ElastiCache", "EngineCPUUtilization", NODE_DIMENSIONS, "Average",
        GT, 80, "ignore",
        "The Redis engine thread stayed above 80% CPU for 15 minutes",
        "The cache slow log group for expensive commands",
        "Replace the expensive commands (KEYS, large ranges), or a larger cache_node_type",
        periods=3, per_cache_node=True),
)

REDIS_ENGINE_VERSION = "7.1"
# Access strings (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/Clusters.RBAC.html): progress keys only, no
# command but the one each user runs (redis-py's sign-in, AUTH, needs no grant; it sends no CLIENT SETINFO here:
# processor/cache_connection.py). `-@dangerous` last: a category added later cannot bring FLUSHALL, KEYS, CONFIG,
# DEBUG, ... back, and rule VP511 checks it is there.
PROGRESS_KEYS = f"~{contract.PROGRESS_KEY_PREFIX}*"
PROCESSOR_ACCESS = f"on {PROGRESS_KEYS} -@all +set -@dangerous"
READER_ACCESS = f"on {PROGRESS_KEYS} -@all +get -@dangerous"
DEFAULT_USER_ACCESS = "off -@all"  # the mandatory `default` user, unusable
PROCESSOR_USER = "ProcessorCacheUser"
READER_USER = "ApiCacheUser"
SNAPSHOT_WINDOW = "17:00-18:00"  # UTC, 02:00-03:00 in Tokyo
MAINTENANCE_WINDOW = "sun:18:00-sun:19:00"  # UTC, after the snapshot window
KEY_SERVICES = ("elasticache",)


def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing cache: Redis replication group")
    p = blocks.parameters(t, CONSUMES)
    # Retained everywhere: final snapshots outlive the stack, and only this key decrypts them.
    key = blocks.kms_key(t, cfg, "CacheKey", "Encrypts the Redis cache and its slow log",
                         names.env_prefixed(cfg.name, "cache"),
                         [blocks.via_services_statement(list(KEY_SERVICES)),
                          blocks.logs_key_statement([names.cache_slow_log_group(cfg.name)])],
                         blocks.RETAIN_POLICIES)
    key_arn = GetAtt(key, "Arn")
    users = _users(t, cfg)
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
        UserGroupIds=[Ref(users)],
        PreferredMaintenanceWindow=MAINTENANCE_WINDOW,
        LogDeliveryConfigurations=[LogDeliveryConfigurationRequest(
            LogType="slow-log",
            LogFormat="json",
            DestinationType="cloudwatch-logs",
            DestinationDetails=DestinationDetails(
                CloudWatchLogsDetails=CloudWatchLogsDestinationDetails(LogGroup=Ref(slow_log))),
        )],
        Tags=blocks.tags(cfg),
        Metadata=blocks.checkov_skip(
            ("CKV_AWS_31", "no AUTH token by design: ElastiCache users of the user group sign in (IAM for the "
                           "processor and the API), and a token cannot be combined with a user group"),
        ),
        **snapshots,
        **blocks.snapshot_policies(cfg),
    ))

    blocks.output(t, contracts.CACHE_ENDPOINT_ADDRESS, GetAtt(group, "PrimaryEndPoint.Address"))
    blocks.output(t, contracts.CACHE_ENDPOINT_PORT, GetAtt(group, "PrimaryEndPoint.Port"))
    blocks.output(t, contracts.CACHE_USER_ID, Ref(PROCESSOR_USER))
    blocks.output(t, contracts.CACHE_KEY_ARN, key_arn)
    blocks.output(t, contracts.CACHE_REPLICATION_GROUP_ID, Ref(group))
    blocks.output(t, contracts.CACHE_READER_USER_ID, Ref(READER_USER))
    return t


def processor_user_id(cfg: EnvConfig) -> str:
    """IAM authentication requires the user ID and name to be equal, lower case."""
    return names.env_prefixed(cfg.name, "processor")


def reader_user_id(cfg: EnvConfig) -> str:
    """The API function's user: reads progress, nothing else (id and name equal, lower case, as for IAM)."""
    return names.env_prefixed(cfg.name, "api-reader")


def _users(t: Template, cfg: EnvConfig) -> UserGroup:
    default = t.add_resource(User(
        "DefaultCacheUser", Engine="redis", UserId=names.env_prefixed(cfg.name, "default"), UserName="default",
        AccessString=DEFAULT_USER_ACCESS, AuthenticationMode=UserAuthentication(Type="no-password-required"),
        Tags=blocks.tags(cfg),
    ))
    processor = t.add_resource(User(
        PROCESSOR_USER, Engine="redis", UserId=processor_user_id(cfg), UserName=processor_user_id(cfg),
        AccessString=PROCESSOR_ACCESS, AuthenticationMode=UserAuthentication(Type="iam"), Tags=blocks.tags(cfg),
    ))
    reader = t.add_resource(User(
        READER_USER, Engine="redis", UserId=reader_user_id(cfg), UserName=reader_user_id(cfg),
        AccessString=READER_ACCESS, AuthenticationMode=UserAuthentication(Type="iam"), Tags=blocks.tags(cfg),
    ))
    return t.add_resource(UserGroup(
        "CacheUserGroup", Engine="redis", UserGroupId=names.env_prefixed(cfg.name, "cache"),
        UserIds=[Ref(default), Ref(processor), Ref(reader)], Tags=blocks.tags(cfg),
    ))
