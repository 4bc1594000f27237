"""compute: the ECS cluster (Fargate and Fargate Spot) and the two roles every processing task uses.

The task definition lives in the workflow tier, next to the state machine that runs it; the roles
live here so that their grants are reviewed in one place, scoped to the storage and cache tiers' outputs.
"""

from __future__ import annotations

from awacs import ecr, elasticfilesystem, kms, logs, secretsmanager, states
from awacs.aws import Allow, Condition, Statement, StringEquals
from troposphere import GetAtt, Ref, Sub, Template
from troposphere.ecs import CapacityProviderStrategyItem, Cluster, ClusterSetting
from troposphere.iam import Role

from generator import blocks, contracts, names
from generator.config import EnvConfig

CONSUMES = (contracts.DATA_KEY_ARN, contracts.DATABASE_SECRET_ARN, contracts.CACHE_KEY_ARN,
            contracts.CACHE_AUTH_SECRET_ARN, contracts.FILE_SYSTEM_ARN, contracts.ACCESS_POINT_ARN)
PRODUCES = (contracts.CLUSTER_NAME, contracts.CLUSTER_ARN, contracts.TASK_EXECUTION_ROLE_ARN, contracts.TASK_ROLE_ARN)


def capacity_provider_strategy(cfg: EnvConfig) -> list[dict]:
    """Spot where interruptions are acceptable (dev); on-demand Fargate elsewhere."""
    return [{"CapacityProvider": "FARGATE_SPOT" if cfg.spot_default else "FARGATE", "Weight": 1}]


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
                                         for item in capacity_provider_strategy(cfg)],
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
                Statement(Sid="PullFromPrivateRepositoriesOfThisAccount", Effect=Allow,
                          Action=[ecr.BatchCheckLayerAvailability, ecr.BatchGetImage, ecr.GetDownloadUrlForLayer],
                          Resource=[blocks.arn("ecr", "repository/*")]),
                Statement(Sid="WriteProcessorLogs", Effect=Allow,
                          Action=[logs.CreateLogStream, logs.PutLogEvents],
                          Resource=[Sub("${Group}:log-stream:*", Group=log_group_arn)]),
            ),
            blocks.inline_policy(
                "InjectContainerSecrets",
                # Exactly the secrets the task definition passes to the container as ECS secrets.
                Statement(Sid="ReadContainerSecrets", Effect=Allow, Action=[secretsmanager.GetSecretValue],
                          Resource=[p[contracts.CACHE_AUTH_SECRET_ARN], p[contracts.DATABASE_SECRET_ARN]]),
                Statement(Sid="DecryptContainerSecrets", Effect=Allow, Action=[kms.Decrypt],
                          Resource=[p[contracts.CACHE_KEY_ARN], p[contracts.DATA_KEY_ARN]],
                          Condition=Condition(StringEquals(
                              "kms:ViaService", Sub("secretsmanager.${AWS::Region}.amazonaws.com")))),
            ),
        ],
        Tags=blocks.tags(cfg),
    ))
    task_role = t.add_resource(Role(
        "TaskRole",
        Description=f"The video processing container runs as this role ({cfg.name})",
        AssumeRolePolicyDocument=blocks.service_trust("ecs-tasks"),
        Policies=[
            blocks.inline_policy("ReportTaskOutcome", Statement(
                Sid="ReportToStepFunctions", Effect=Allow,
                Action=[states.SendTaskFailure, states.SendTaskHeartbeat, states.SendTaskSuccess],
                Resource=["*"],  # task-token actions support no resource-level permissions
            )),
            blocks.inline_policy("UseMediaFileSystem", Statement(
                # Read and write, never root, and only through the media access point.
                Sid="MountMediaThroughAccessPoint", Effect=Allow,
                Action=[elasticfilesystem.ClientMount, elasticfilesystem.ClientWrite],
                Resource=[p[contracts.FILE_SYSTEM_ARN]],
                Condition=Condition(StringEquals("elasticfilesystem:AccessPointArn", p[contracts.ACCESS_POINT_ARN])),
            )),
        ],
        Tags=blocks.tags(cfg),
    ))

    blocks.output(t, contracts.CLUSTER_NAME, Ref(cluster))
    blocks.output(t, contracts.CLUSTER_ARN, GetAtt(cluster, "Arn"))
    blocks.output(t, contracts.TASK_EXECUTION_ROLE_ARN, GetAtt(execution_role, "Arn"))
    blocks.output(t, contracts.TASK_ROLE_ARN, GetAtt(task_role, "Arn"))
    return t
