"""storage: the data KMS key, RDS PostgreSQL with its generated credentials and its log groups, and EFS for the
media.

RDS names the groups it exports the database's logs to after the instance's generated identifier and would create
them itself, under CloudWatch Logs' own key and kept forever. A custom resource per exported log (Custom::
AdoptedLogGroup, code in generator/functions/rds_log_groups/) creates each group under the data key with the
environment's retention, or adopts it where RDS created it first. Its template names a local zip,
`functions/rds_log_groups.zip` beside the template: deploy.sh builds it like the schema tier's bootstrap.
"""

from __future__ import annotations

from typing import ClassVar

from awacs import elasticfilesystem as efs_actions
from awacs import kms as kms_actions
from awacs import logs as logs_actions
from awacs import xray as xray_actions
from awacs.aws import Allow, ArnLike, Bool, Condition, PolicyDocument, Principal, Statement
from troposphere import GetAtt, Ref, Select, Sub, Template
from troposphere.awslambda import Code, Function, LoggingConfig, TracingConfig
from troposphere.cloudformation import CustomResource
from troposphere.efs import (
    AccessPoint,
    BackupPolicy,
    CreationInfo,
    FileSystem,
    LifecyclePolicy,
    MountTarget,
    PosixUser,
    RootDirectory,
)
from troposphere.rds import DBInstance, DBParameterGroup, DBSubnetGroup, MasterUserSecret

from generator import blocks, contracts, names
from generator.alarms import GIB, GT, LT, MIB, AlarmSpec
from generator.config import EnvConfig

CONSUMES = (contracts.PRIVATE_SUBNET_IDS, contracts.DATA_SUBNET_IDS, contracts.DATABASE_SECURITY_GROUP_ID,
            contracts.FILE_SYSTEM_SECURITY_GROUP_ID)
PRODUCES = (contracts.DATA_KEY_ARN, contracts.DATABASE_ENDPOINT_ADDRESS, contracts.DATABASE_ENDPOINT_PORT,
            contracts.DATABASE_MASTER_SECRET_ARN, contracts.DATABASE_RESOURCE_ID, contracts.FILE_SYSTEM_ID,
            contracts.FILE_SYSTEM_ARN, contracts.ACCESS_POINT_ID, contracts.ACCESS_POINT_ARN,
            contracts.DATABASE_IDENTIFIER, contracts.DATABASE_LOG_GROUPS_FUNCTION_NAME)

# Failure modes (generator/alarms.py): the operations tier builds them, the runbook shows them.
DATABASE_DIMENSIONS = (("DBInstanceIdentifier", contracts.DATABASE_IDENTIFIER),)
LOG_GROUPS_FUNCTION = (("FunctionName", contracts.DATABASE_LOG_GROUPS_FUNCTION_NAME),)
ALARMS = (
    AlarmSpec(
        "DatabaseLogGroupsErrorsAlarm", "db-log-groups-errors", "AWS/Lambda", "Errors", LOG_GROUPS_FUNCTION, "Sum", GT,
        0, "notBreaching",
        "The function owning the database's log groups raised (a timeout, or a failure before it could answer "
        "CloudFormation): the deploy that ran it failed or waited for its service timeout",
        "The function's log group (/aws/lambda/<function>) and the storage stack's events",
        "Fix the function (generator/functions/rds_log_groups/) or its role and deploy again; the groups RDS "
        "created meanwhile are adopted then"),
    AlarmSpec(
        "DatabaseLogGroupsThrottlesAlarm", "db-log-groups-throttles", "AWS/Lambda", "Throttles", LOG_GROUPS_FUNCTION,
        "Sum", GT, 0, "notBreaching",
        "The log groups function was refused for lack of Lambda concurrency in the account: its deploy waits or fails",
        "The account's ConcurrentExecutions against its Lambda concurrency quota; other functions' reservations",
        "Deploy again once the account has free concurrency, or raise the account's Lambda concurrency quota"),
    AlarmSpec(
        "DatabaseCpuAlarm", "database-cpu", "AWS/RDS", "CPUUtilization", DATABASE_DIMENSIONS, "Average", GT, 80,
        "ignore",
        "The database's CPU stayed above 80% for 15 minutes",
        "Performance Insights: top SQL and waits",
        "Fix the query or index; else a larger db_instance_class",
        periods=3),
    AlarmSpec(
        "DatabaseFreeStorageAlarm", "database-free-storage", "AWS/RDS", "FreeStorageSpace", DATABASE_DIMENSIONS,
        "Minimum", LT, "db_min_free_storage_gib", "breaching",
        "Free storage fell below db_min_free_storage_gib, or the database stopped reporting",
        "Whether storage autoscaling reached db_max_storage_gib; the database's status (available?)",
        "Raise db_max_storage_gib, or remove data; if the database is down, its events in the RDS console",
        scale=GIB),
    AlarmSpec(
        "DatabaseFreeableMemoryAlarm", "database-freeable-memory", "AWS/RDS", "FreeableMemory", DATABASE_DIMENSIONS,
        "Average", LT, "db_min_freeable_memory_mib", "ignore",
        "The database's free memory stayed below db_min_freeable_memory_mib for 15 minutes",
        "Connections (each costs memory) and Performance Insights",
        "Fewer connections (pooling), or a larger db_instance_class",
        periods=3, scale=MIB),
    AlarmSpec(
        "DatabaseConnectionsAlarm", "database-connections", "AWS/RDS", "DatabaseConnections", DATABASE_DIMENSIONS,
        "Maximum", GT, "db_max_connections", "ignore",
        "Connections stayed above db_max_connections (near the instance's max_connections) for 10 minutes",
        "Running tasks (dashboard) against connections; pg_stat_activity for idle sessions",
        "Close idle connections, pool them, or a larger db_instance_class",
        periods=2),
)

# Only the major version is pinned (a major upgrade is a deliberate change of this line and the parameter
# group family): RDS creates the major's default minor and upgrades minors in the maintenance window. A pinned
# minor would be rejected once AWS upgraded the instance past it, and stops being creatable when retired.
POSTGRES_MAJOR_VERSION = "17"
# The master: used only by the schema tier's bootstrap; the processor has its own role (contracts.DATABASE_APP_ROLE).
DATABASE_USERNAME = "videoprocessing"
PERFORMANCE_INSIGHTS_DAYS = 7  # the free retention tier
POSTGRES_LOG_EXPORTS = ("postgresql", "upgrade")
# The media directory, owned by contracts.MEDIA_UID: the access point makes every client that user.
MEDIA_DIRECTORY = "/media"
MEDIA_PERMISSIONS = "750"
# Services that encrypt and decrypt with the data key on behalf of this account's principals.
DATA_KEY_SERVICES = ("elasticfilesystem", "rds", "secretsmanager")


# The function owning RDS's log groups: out of the VPC (it calls only the CloudWatch Logs API, and the prod VPC's
# logs endpoint admits only log writes). Its package is built by deploy.sh from generator/functions/rds_log_groups/.
LOG_GROUPS_PACKAGE_PATH = "functions/rds_log_groups.zip"
LOG_GROUPS_RUNTIME = "python3.14"
LOG_GROUPS_TIMEOUT_SECONDS = 60
# CloudFormation fails the resource if no response arrives in this time (instead of the default hour).
LOG_GROUPS_SERVICE_TIMEOUT_SECONDS = 300


class AdoptedLogGroup(CustomResource):
    """A log group an AWS service names and creates, owned by the stack (properties as AWS::Logs::LogGroup's)."""
    resource_type = "Custom::AdoptedLogGroup"
    props: ClassVar[dict] = {"ServiceToken": (str, True), "ServiceTimeout": (int, False)}


def log_groups_function_name(cfg: EnvConfig) -> str:
    return names.physical("rds-log-groups", cfg.name)


def rds_log_group_names(instance_identifier: str) -> dict[str, str]:
    """Exported log type -> the group RDS writes it to, for the instance named `instance_identifier`."""
    return {log_type: names.rds_log_group(instance_identifier, log_type) for log_type in POSTGRES_LOG_EXPORTS}


def data_key_statements(cfg: EnvConfig) -> list[Statement]:
    return [blocks.via_services_statement(list(DATA_KEY_SERVICES)), logs_key_statement(cfg)]


def logs_key_statement(cfg: EnvConfig) -> Statement:
    """CloudWatch Logs encrypts RDS's log groups and the function's own with the data key. The database's
    identifier cannot appear here (the database uses the key: a cycle), so the context admits every
    `/aws/rds/instance/` group of this account and region; a group uses the key only once associated with it,
    which only the log groups function's role may do (for this database's groups)."""
    return Statement(
        Sid="CloudWatchLogsEncryptsDatabaseLogGroups",
        Effect=Allow,
        Principal=blocks.service_principal_regional("logs"),
        Action=[kms_actions.Encrypt, kms_actions.Decrypt, kms_actions.ReEncryptFrom, kms_actions.ReEncryptTo,
                kms_actions.GenerateDataKey, kms_actions.GenerateDataKeyWithoutPlaintext, kms_actions.DescribeKey],
        Resource=["*"],  # in a key policy, "*" means this key
        Condition=Condition(ArnLike("kms:EncryptionContext:aws:logs:arn", [
            blocks.arn("logs", f"log-group:{names.lambda_log_group(log_groups_function_name(cfg))}"),
            blocks.arn("logs", f"log-group:{names.rds_log_group('*', '*')}"),
        ])),
    )


def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing storage: data key, PostgreSQL database, EFS media file system")
    p = blocks.parameters(t, CONSUMES)
    # Retained everywhere: final snapshots outlive the stack, and only this key decrypts them.
    key = blocks.kms_key(t, cfg, "DataKey", "Encrypts the database, the media file system and their secrets",
                         names.env_prefixed(cfg.name, "data"), data_key_statements(cfg), blocks.RETAIN_POLICIES)
    key_arn = GetAtt(key, "Arn")

    database = _database(t, cfg, p, key_arn)
    log_groups_function = _database_log_groups(t, cfg, database, key_arn)
    file_system, access_point = _file_system(t, cfg, p, key_arn)

    blocks.output(t, contracts.DATA_KEY_ARN, key_arn)
    blocks.output(t, contracts.DATABASE_ENDPOINT_ADDRESS, GetAtt(database, "Endpoint.Address"))
    blocks.output(t, contracts.DATABASE_ENDPOINT_PORT, GetAtt(database, "Endpoint.Port"))
    # RDS creates, encrypts (data key) and rotates the master's secret; only the bootstrap function reads it.
    blocks.output(t, contracts.DATABASE_MASTER_SECRET_ARN, GetAtt(database, "MasterUserSecret.SecretArn"))
    blocks.output(t, contracts.DATABASE_RESOURCE_ID, GetAtt(database, "DbiResourceId"))
    blocks.output(t, contracts.FILE_SYSTEM_ID, Ref(file_system))
    blocks.output(t, contracts.FILE_SYSTEM_ARN, GetAtt(file_system, "Arn"))
    blocks.output(t, contracts.ACCESS_POINT_ID, GetAtt(access_point, "AccessPointId"))
    blocks.output(t, contracts.ACCESS_POINT_ARN, GetAtt(access_point, "Arn"))
    blocks.output(t, contracts.DATABASE_IDENTIFIER, Ref(database))
    blocks.output(t, contracts.DATABASE_LOG_GROUPS_FUNCTION_NAME, Ref(log_groups_function))
    return t


def database_parameters(cfg: EnvConfig) -> dict[str, str]:
    """TLS only everywhere; where the setting asks (prod), every connection and disconnection is logged."""
    logging = {"log_connections": "1", "log_disconnections": "1"} if cfg.db_log_connections else {}
    return {"rds.force_ssl": "1", **logging}


def _database(t: Template, cfg: EnvConfig, p: dict[contracts.Contract, Ref], key_arn) -> DBInstance:
    subnet_group = t.add_resource(DBSubnetGroup(
        "DatabaseSubnetGroup",
        DBSubnetGroupDescription=f"Data subnets of the video processing database ({cfg.name})",
        SubnetIds=p[contracts.DATA_SUBNET_IDS],
        Tags=blocks.tags(cfg),
    ))
    parameter_group = t.add_resource(DBParameterGroup(
        "DatabaseParameterGroup",
        Description=f"Video processing PostgreSQL {POSTGRES_MAJOR_VERSION}: TLS only"
                    f"{', connections logged' if cfg.db_log_connections else ''} ({cfg.name})",
        Family=f"postgres{POSTGRES_MAJOR_VERSION}",
        Parameters=database_parameters(cfg),
        Tags=blocks.tags(cfg),
    ))
    # No DBInstanceIdentifier: CloudFormation refuses to replace a custom-named resource, so a fixed name would
    # turn every create-only change into a failed update. RDS therefore names the log groups it exports to
    # after the generated identifier: _database_log_groups owns them.
    database = t.add_resource(DBInstance(
        "Database",
        Engine="postgres",
        EngineVersion=POSTGRES_MAJOR_VERSION,
        AutoMinorVersionUpgrade=True,
        AllowMajorVersionUpgrade=False,
        DBInstanceClass=cfg.db_instance_class,
        DBName=contracts.DATABASE_NAME,
        MasterUsername=DATABASE_USERNAME,
        # RDS generates the password into a secret of its own, encrypted with the data key, and rotates it (7 days).
        ManageMasterUserPassword=True,
        MasterUserSecret=MasterUserSecret(KmsKeyId=key_arn),
        EnableIAMDatabaseAuthentication=True,
        DBParameterGroupName=Ref(parameter_group),
        DBSubnetGroupName=Ref(subnet_group),
        VPCSecurityGroups=[p[contracts.DATABASE_SECURITY_GROUP_ID]],
        PubliclyAccessible=False,
        MultiAZ=cfg.multi_az,
        StorageType="gp3",
        AllocatedStorage=str(cfg.db_storage_gib),
        MaxAllocatedStorage=cfg.db_max_storage_gib,
        StorageEncrypted=True,
        KmsKeyId=key_arn,
        BackupRetentionPeriod=cfg.backup_retention_days,
        CopyTagsToSnapshot=True,
        DeleteAutomatedBackups=not cfg.retain_data,
        DeletionProtection=cfg.retain_data,
        EnablePerformanceInsights=True,
        PerformanceInsightsKMSKeyId=key_arn,
        PerformanceInsightsRetentionPeriod=PERFORMANCE_INSIGHTS_DAYS,
        EnableCloudwatchLogsExports=list(POSTGRES_LOG_EXPORTS),
        Metadata=blocks.checkov_skip(
            ("CKV_AWS_118", "enhanced monitoring writes to the account-wide RDSOSMetrics log group, which no "
                            "stack can own with a KMS key and retention; Performance Insights is on"),
            *([] if cfg.multi_az else [("CKV_AWS_157", "single-AZ by design outside prod (multi_az setting); "
                                                       "prod is Multi-AZ")]),
            # W3691 reads a bare major as a retired version; RDS takes a major alone and creates its default
            # minor (the preflight asks RDS whether the major is still offered, which cfn-lint cannot know).
            metadata={"cfn-lint": {"config": {"ignore_checks": ["W3691"]}}},
        ),
        Tags=blocks.tags(cfg),
        **blocks.snapshot_policies(cfg),
    ))
    return database


def _database_log_groups(t: Template, cfg: EnvConfig, database: DBInstance, key_arn) -> Function:
    """One Custom::AdoptedLogGroup per exported log, served by a function allowed to change only this database's
    groups (and its own log group's streams)."""
    function_logs = blocks.encrypted_log_group(t, cfg, "DatabaseLogGroupsFunctionLogGroup",
                                               names.lambda_log_group(log_groups_function_name(cfg)), key_arn)
    database_groups = blocks.arn("logs", "log-group:" + names.rds_log_group("${Database}", "*"))
    actions = [logs_actions.CreateLogGroup, logs_actions.AssociateKmsKey, logs_actions.PutRetentionPolicy,
               # Deletion only where the groups go with the stack; protection only where they are kept.
               logs_actions.PutLogGroupDeletionProtection if cfg.retain_data else logs_actions.DeleteLogGroup]
    role = blocks.function_role(t, cfg, "DatabaseLogGroupsFunctionRole",
                                "Creates or adopts the database's log groups under the data key",
                                "OwnDatabaseLogGroups", [
        Statement(Sid="OwnThisDatabasesLogGroups", Effect=Allow, Action=actions, Resource=[database_groups]),
        Statement(Sid="WriteFunctionLogs", Effect=Allow,
                  Action=[logs_actions.CreateLogStream, logs_actions.PutLogEvents],
                  # The group's name, not GetAtt Arn: that ARN ends in ":*", so "<Arn>:log-stream:*" matches no
                  # stream (found by the access proof, VP701).
                  Resource=[blocks.arn("logs", "log-group:" + names.lambda_log_group(log_groups_function_name(cfg))
                                       + ":log-stream:*")]),
        Statement(Sid="TraceWithXRay", Effect=Allow,
                  Action=[xray_actions.PutTelemetryRecords, xray_actions.PutTraceSegments],
                  Resource=["*"]),  # X-Ray actions support no resource-level permissions
    ])
    function = t.add_resource(Function(
        "DatabaseLogGroupsFunction",
        FunctionName=log_groups_function_name(cfg),
        Description=f"Creates or adopts the database's log groups under the data key ({cfg.name})",
        Runtime=LOG_GROUPS_RUNTIME,
        Architectures=["arm64"],
        Handler="handler.handler",
        Code=Code(ZipFile="placeholder"),  # replaced below by the local package path
        Role=GetAtt(role, "Arn"),
        MemorySize=128,
        Timeout=LOG_GROUPS_TIMEOUT_SECONDS,
        LoggingConfig=LoggingConfig(LogGroup=Ref(function_logs)),
        TracingConfig=TracingConfig(Mode="Active"),
        Tags=blocks.tags(cfg),
        Metadata=blocks.checkov_skip(
            ("CKV_AWS_117", "calls only the CloudWatch Logs API and reaches nothing in the VPC"),
            ("CKV_AWS_116", "invoked only by CloudFormation, which fails the stack on a missing response; a queued "
                            "event could not be answered later"),
            ("CKV_AWS_115", "runs a few times per deploy; a reservation would need more than a new account's "
                            "Lambda concurrency quota (issue 11, defect 3)"),
            # A local Code path is the point: `aws cloudformation package` uploads it.
            metadata={"cfn-lint": {"config": {"ignore_checks": ["W3002"]}}},
        ),
    ))
    # `aws cloudformation package` uploads a local path given as Code and replaces it with the S3 location.
    function.properties["Code"] = LOG_GROUPS_PACKAGE_PATH
    for log_type, name in sorted(rds_log_group_names("${" + database.title + "}").items()):
        t.add_resource(AdoptedLogGroup(
            f"Database{log_type.capitalize()}LogGroup",
            ServiceToken=GetAtt(function, "Arn"),
            ServiceTimeout=LOG_GROUPS_SERVICE_TIMEOUT_SECONDS,
            LogGroupName=Sub(name),
            KmsKeyId=key_arn,
            RetentionInDays=cfg.log_retention_days,
            **({"DeletionProtectionEnabled": "true"} if cfg.retain_data else {}),
            **blocks.retention_policies(cfg),
        ))
    return function


def _file_system(t: Template, cfg: EnvConfig, p: dict[contracts.Contract, Ref],
                 key_arn) -> tuple[FileSystem, AccessPoint]:
    file_system = t.add_resource(FileSystem(
        "FileSystem",
        Encrypted=True,
        KmsKeyId=key_arn,
        PerformanceMode="generalPurpose",
        ThroughputMode="elastic",
        LifecyclePolicies=[LifecyclePolicy(TransitionToIA="AFTER_30_DAYS"),
                           LifecyclePolicy(TransitionToPrimaryStorageClass="AFTER_1_ACCESS")],
        BackupPolicy=BackupPolicy(Status="ENABLED" if cfg.retain_data else "DISABLED"),
        FileSystemPolicy=file_system_policy().JSONrepr(),  # the schema wants a plain object
        FileSystemTags=blocks.tags(cfg, Name=names.env_prefixed(cfg.name, "media")),
        **blocks.retention_policies(cfg),
    ))
    for az in range(cfg.az_count):
        t.add_resource(MountTarget(
            f"MountTarget{az + 1}",
            FileSystemId=Ref(file_system),
            SubnetId=Select(az, p[contracts.PRIVATE_SUBNET_IDS]),
            SecurityGroups=[p[contracts.FILE_SYSTEM_SECURITY_GROUP_ID]],
        ))
    access_point = t.add_resource(AccessPoint(
        "MediaAccessPoint",
        FileSystemId=Ref(file_system),
        PosixUser=PosixUser(Uid=contracts.MEDIA_UID, Gid=contracts.MEDIA_GID),
        RootDirectory=RootDirectory(Path=MEDIA_DIRECTORY, CreationInfo=CreationInfo(
            OwnerUid=contracts.MEDIA_UID, OwnerGid=contracts.MEDIA_GID, Permissions=MEDIA_PERMISSIONS)),
        AccessPointTags=blocks.tags(cfg, Name=names.env_prefixed(cfg.name, "media")),
    ))
    return file_system, access_point


def file_system_policy() -> PolicyDocument:
    """TLS only; this account's IAM principals through one of its access points, never as root.

    Anonymous clients (mounting without IAM) match no Allow, so EFS refuses them once a policy exists.
    The access point is not named (it needs the file system first); the task role's policy names it.
    """
    return PolicyDocument(Version="2012-10-17", Statement=[
        blocks.deny_insecure_transport([efs_actions.Action("*")]),
        Statement(
            Sid="AccountPrincipalsThroughAccessPoints",
            Effect=Allow,
            Principal=Principal("AWS", [blocks.account_root()]),
            Action=[efs_actions.ClientMount, efs_actions.ClientWrite],
            Condition=Condition([
                Bool("elasticfilesystem:AccessedViaMountTarget", "true"),
                ArnLike("elasticfilesystem:AccessPointArn", blocks.arn("elasticfilesystem", "access-point/*")),
            ]),
        ),
    ])
