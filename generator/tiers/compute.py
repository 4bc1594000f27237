"""compute: the ECS cluster (Fargate and Fargate Spot) and the two roles every processing task uses.

The task definition lives in the workflow tier, next to the state machine that runs it; the roles
live here so that their grants are reviewed in one place, scoped to the storage and cache tiers' outputs.
"""

from __future__ import annotations

from awacs import ecr, elasticache, elasticfilesystem, kms, logs, rds_db, s3
from awacs.aws import Allow, Condition, Statement, StringEquals, StringLike
from troposphere import AWS_REGION, GetAtt, Join, Ref, Select, Split, Sub, Template
from troposphere.ecs import CapacityProviderStrategyItem, Cluster, ClusterSetting
from troposphere.iam import Role

from generator import blocks, contracts, names
from generator.config import EnvConfig
from generator.functions.video_jobs import contract

CONSUMES = (contracts.PROCESSOR_IMAGE, contracts.DATABASE_RESOURCE_ID, contracts.DATABASE_APP_USERNAME,
            contracts.CACHE_REPLICATION_GROUP_ID, contracts.CACHE_USER_ID, contracts.FILE_SYSTEM_ARN,
            contracts.ACCESS_POINT_ARN, contracts.MEDIA_BUCKET_ARN, contracts.MEDIA_KEY_ARN)
PRODUCES = (contracts.CLUSTER_NAME, contracts.CLUSTER_ARN, contracts.TASK_EXECUTION_ROLE_ARN, contracts.TASK_ROLE_ARN)


CACHE_GROUP = contracts.CACHE_REPLICATION_GROUP_ID.name


def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing compute: ECS Fargate cluster and task roles")
    p = blocks.parameters(t, CONSUMES)
    # Container Insights writes to a log group named after the cluster; created here first, it is encrypted
    # and expires instead of being created by ECS without either. Hence the cluster's fixed name.
    insights_log_name = names.container_insights_log_group(cfg.name)
    key = blocks.kms_key(t, cfg, "ComputeLogsKey", "Encrypts the cluster's Container Insights log group",
                         names.env_prefixed(cfg.name, "compute-logs"), [blocks.logs_key_statement([insights_log_name])])
    insights_logs = blocks.encrypted_log_group(t, cfg, "ContainerInsightsLogGroup", insights_log_name,
                                               GetAtt(key, "Arn"))
    cluster = t.add_resource(Cluster(
        "Cluster",
        ClusterName=names.cluster(cfg.name),
        DependsOn=[insights_logs.title],
        ClusterSettings=[ClusterSetting(Name="containerInsights", Value="enabled")],
        CapacityProviders=["FARGATE", "FARGATE_SPOT"],
        DefaultCapacityProviderStrategy=[CapacityProviderStrategyItem(**item)
                                         for item in blocks.capacity_provider_strategy(cfg)],
        Tags=blocks.tags(cfg),
    ))

    log_group_arn = blocks.arn("logs", f"log-group:{names.processor_log_group(cfg.name)}")
    execution_role = t.add_resource(Role(
        "TaskExecutionRole",
        Description=f"ECS pulls the processor image and writes its logs ({cfg.name})",
        AssumeRolePolicyDocument=blocks.service_trust("ecs-tasks"),
        Policies=[
            blocks.inline_policy(
                "PullImageAndWriteLogs",
                Statement(Sid="RegistryLogin", Effect=Allow, Action=[ecr.GetAuthorizationToken],
                          Resource=["*"]),  # GetAuthorizationToken cannot be scoped to a resource
                Statement(Sid="PullTheProcessorRepository", Effect=Allow,
                          Action=[ecr.BatchCheckLayerAvailability, ecr.BatchGetImage, ecr.GetDownloadUrlForLayer],
                          Resource=[processor_repository_arn(p[contracts.PROCESSOR_IMAGE])]),
                Statement(Sid="WriteProcessorLogs", Effect=Allow,
                          Action=[logs.CreateLogStream, logs.PutLogEvents],
                          Resource=[Sub("${Group}:log-stream:*", Group=log_group_arn)]),
            ),
            # No container secrets: the database and the cache both sign the processor in with IAM (task role).
        ],
        Tags=blocks.tags(cfg),
    ))
    task_role = t.add_resource(Role(
        "TaskRole",
        Description=f"The video processing container runs as this role ({cfg.name})",
        AssumeRolePolicyDocument=blocks.service_trust("ecs-tasks"),
        Policies=[
            blocks.inline_policy("ConnectToDatabase", Statement(
                # IAM database authentication as the processor's own role, never as the master.
                Sid="ConnectAsProcessorRole", Effect=Allow, Action=[rds_db.connect],
                Resource=[database_user_arn()],
            )),
            blocks.inline_policy("ConnectToCache", Statement(
                # IAM authentication to Redis as the processor's ElastiCache user, on this replication group only.
                Sid="ConnectAsProcessorUser", Effect=Allow, Action=[elasticache.Connect],
                Resource=[blocks.arn("elasticache", f"replicationgroup:${{{CACHE_GROUP}}}"),
                          blocks.arn("elasticache", f"user:${{{contracts.CACHE_USER_ID.name}}}")],
            )),
            blocks.inline_policy("UseMediaFileSystem", Statement(
                # Read and write, never root, and only through the media access point.
                Sid="MountMediaThroughAccessPoint", Effect=Allow,
                Action=[elasticfilesystem.ClientMount, elasticfilesystem.ClientWrite],
                Resource=[p[contracts.FILE_SYSTEM_ARN]],
                Condition=Condition(StringEquals("elasticfilesystem:AccessPointArn", p[contracts.ACCESS_POINT_ARN])),
            )),
            blocks.inline_policy("ReadSourcesWriteOutputs", *media_statements(p)),
        ],
        Tags=blocks.tags(cfg),
    ))

    blocks.output(t, contracts.CLUSTER_NAME, Ref(cluster))
    blocks.output(t, contracts.CLUSTER_ARN, GetAtt(cluster, "Arn"))
    blocks.output(t, contracts.TASK_EXECUTION_ROLE_ARN, GetAtt(execution_role, "Arn"))
    blocks.output(t, contracts.TASK_ROLE_ARN, GetAtt(task_role, "Arn"))
    return t


def media_statements(p: dict) -> list[Statement]:
    """The processor reads a source (the version it was admitted for: GetObjectVersion), writes under outputs/ and
    reads back and lists what it wrote there (a re-run uploads only what is missing or differs); nothing else in the
    media bucket (no delete, no other prefix). SSE-KMS objects need the media key, through S3 only: Decrypt to read,
    GenerateDataKey to write (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html).
    ListBucket is a bucket action, narrowed to the outputs prefix by `s3:prefix`
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html)."""
    bucket = p[contracts.MEDIA_BUCKET_ARN]
    return [
        Statement(Sid="ReadSources", Effect=Allow, Action=[s3.GetObject, s3.GetObjectVersion],
                  Resource=[Sub(f"${{Bucket}}/{contract.SOURCES_PREFIX}*", Bucket=bucket)]),
        Statement(Sid="WriteOutputs", Effect=Allow, Action=[s3.GetObject, s3.PutObject],
                  Resource=[Sub(f"${{Bucket}}/{contract.OUTPUTS_PREFIX}*", Bucket=bucket)]),
        Statement(Sid="ListOutputs", Effect=Allow, Action=[s3.ListBucket], Resource=[bucket],
                  Condition=Condition(StringLike("s3:prefix", f"{contract.OUTPUTS_PREFIX}*"))),
        Statement(Sid="UseMediaKeyThroughS3", Effect=Allow, Action=[kms.Decrypt, kms.GenerateDataKey],
                  Resource=[p[contracts.MEDIA_KEY_ARN]],
                  Condition=Condition(StringEquals("kms:ViaService", Sub(f"s3.${{{AWS_REGION}}}.amazonaws.com")))),
    ]


def database_user_arn() -> Sub:
    """The processor's database user, as IAM database authentication names it."""
    return blocks.arn("rds-db", f"dbuser:${{{contracts.DATABASE_RESOURCE_ID.name}}}/"
                                f"${{{contracts.DATABASE_APP_USERNAME.name}}}")


def processor_repository_arn(image: Ref) -> Sub:
    """The ECR repository of this account and region that the processor image names, and no other.

    `<account>.dkr.ecr.<region>.amazonaws.com/<repository>(:<tag>|@<digest>)` gives `<repository>`. An image from
    elsewhere (the public placeholder) needs no grant: appending the registry suffix makes its repository empty,
    an ARN that matches nothing, rather than a failed deploy.
    """
    after_registry = Select(1, Split(".amazonaws.com/", Join("", [image, ".amazonaws.com/"])))
    repository = Select(0, Split(":", Select(0, Split("@", after_registry))))
    return Sub("arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/${Repository}",
               Repository=repository)
