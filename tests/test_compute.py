"""compute: the Fargate cluster and the two task roles."""

from __future__ import annotations

import pytest

from conftest import grants, inline_statements, one_resource, sources, statements, trusted_services

ENVS = ("dev", "staging", "prod")


@pytest.mark.parametrize("env, default_provider", [("dev", "FARGATE_SPOT"), ("staging", "FARGATE"),
                                                   ("prod", "FARGATE")])
def test_tasks_run_on_spot_by_default_only_in_dev_and_container_insights_is_on(templates, env, default_provider):
    """Dev saves money on interruptible capacity; staging and prod do not risk interruption by default."""
    cluster = one_resource(templates[env]["compute"], "AWS::ECS::Cluster")["Properties"]
    settings = {s["Name"]: s["Value"] for s in cluster["ClusterSettings"]}
    assert settings.get("containerInsights") == "enabled"
    assert set(cluster["CapacityProviders"]) == {"FARGATE", "FARGATE_SPOT"}
    strategy = cluster["DefaultCapacityProviderStrategy"]
    assert [s["CapacityProvider"] for s in strategy if s.get("Weight", 0) > 0] == [default_provider]


def compute_role(templates, title, env="dev") -> dict:
    return templates[env]["compute"]["Resources"][title]


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("title", ["TaskExecutionRole", "TaskRole"])
def test_task_roles_can_be_assumed_only_by_ecs_tasks_on_behalf_of_this_account(templates, env, title):
    """No other service, and no ECS task of another account (confused deputy), can assume the roles."""
    role = compute_role(templates, title, env)
    assert trusted_services(role) == {"ecs-tasks.amazonaws.com"}
    for s in statements(role["Properties"]["AssumeRolePolicyDocument"]):
        assert s["Effect"] == "Allow" and s["Action"] in ("sts:AssumeRole", ["sts:AssumeRole"])
        assert set(s["Principal"]) == {"Service"}, "only a service principal"
        assert s["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert "ManagedPolicyArns" not in role["Properties"], "every grant is inline, where these tests see it"


@pytest.mark.parametrize("env", ENVS)
def test_task_role_can_connect_as_its_database_user_and_use_the_media_file_system_and_nothing_else(templates, env):
    """The processor signs in to the database as its own role (IAM authentication) and reads/writes media; no
    Step Functions callbacks (the workflow hands it no task token), no secrets, no other AWS service."""
    allowed = grants(templates, env, "compute", "TaskRole")
    # Redis as the processor's ElastiCache user (IAM authentication), on this replication group only.
    assert allowed.pop("elasticache:Connect") == {("cache", "CacheReplicationGroup"), ("cache", "ProcessorCacheUser")}
    # arn:...:dbuser:<the database's resource id>/<the role the bootstrap created>
    assert allowed.pop("rds-db:connect") == {("storage", "Database"), ("schema", "DatabaseBootstrap")}
    [statement] = [s for s in inline_statements(compute_role(templates, "TaskRole", env))
                   if s["Action"] == ["rds-db:connect"]]
    assert statement["Resource"][0]["Fn::Sub"].endswith(":dbuser:${DatabaseResourceId}/${DatabaseAppUsername}")
    # The media bucket: read sources, write and list outputs (test_task_role_reads_only_sources_and_writes_...).
    for action in ("s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:ListBucket"):
        assert allowed.pop(action) == {("media", "MediaBucket")}, action
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        assert allowed.pop(action) == {("media", "MediaKey")}, action
    assert allowed == {
        "elasticfilesystem:ClientMount": {("storage", "FileSystem")},
        "elasticfilesystem:ClientWrite": {("storage", "FileSystem")},
    }


@pytest.mark.parametrize("env", ENVS)
def test_task_role_reads_only_sources_and_writes_only_outputs_and_uses_the_media_key_through_s3(templates, env):
    """CONTRACT-MEDIA: the task reads the source it was admitted for, writes under outputs/ and reads back and lists
    only that prefix (a re-run uploads what is missing); no delete, no other prefix; the media key only through S3."""
    by_action: dict[str, list] = {}
    for s in inline_statements(compute_role(templates, "TaskRole", env)):
        for action in s["Action"]:
            if action.startswith("s3:"):
                by_action.setdefault(action, []).extend(
                    r["Fn::Sub"][0] if "Fn::Sub" in r else "the bucket" for r in s["Resource"])
                if action == "s3:ListBucket":
                    assert s["Condition"] == {"StringLike": {"s3:prefix": "outputs/*"}}, "listing outputs/ only"
            if action.startswith("kms:"):
                via = s["Condition"]["StringEquals"]["kms:ViaService"]
                assert via == {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}
    assert {a: sorted(r) for a, r in by_action.items()} == {
        "s3:GetObject": ["${Bucket}/outputs/*", "${Bucket}/sources/*"], "s3:GetObjectVersion": ["${Bucket}/sources/*"],
        "s3:PutObject": ["${Bucket}/outputs/*"], "s3:ListBucket": ["the bucket"]}


@pytest.mark.parametrize("env", ENVS)
def test_task_role_mounts_the_file_system_only_through_the_media_access_point(templates, env):
    """Never as root (no ClientRootAccess, see above) and never outside the access point's /media root."""
    for s in inline_statements(compute_role(templates, "TaskRole", env)):
        if any(a.startswith("elasticfilesystem:") for a in s["Action"]):
            [(operator, condition)] = s["Condition"].items()
            assert operator == "StringEquals" and list(condition) == ["elasticfilesystem:AccessPointArn"]
            assert sources(templates, env, "compute", condition["elasticfilesystem:AccessPointArn"]) == {
                ("storage", "MediaAccessPoint")}


@pytest.mark.parametrize("env", ENVS)
def test_execution_role_reads_exactly_the_container_secrets_and_pulls_and_logs_nothing_more(templates, env):
    """ECS reads no secret (database and cache sign the processor in with IAM), pulls the processor image's
    repository and writes the processor's log group; nothing else."""
    allowed = grants(templates, env, "compute", "TaskExecutionRole")
    assert "secretsmanager:GetSecretValue" not in allowed and "kms:Decrypt" not in allowed
    assert allowed.pop("ecr:GetAuthorizationToken") == {"*"}  # registry login cannot be scoped
    for action in ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"):
        # Only the repository the processor image names (the deploy-time parameter), of this account and region.
        assert allowed.pop(action) == {("main", "ProcessorImage")}
    [pull] = [s for s in inline_statements(compute_role(templates, "TaskExecutionRole", env))
              if "ecr:BatchGetImage" in s["Action"]]
    assert pull["Resource"][0]["Fn::Sub"][0].endswith("${AWS::AccountId}:repository/${Repository}")
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        [streams] = allowed.pop(action)
        assert f"log-group:/video-processing/{env}/processor" in streams and streams.count("log-group:") == 1
    assert allowed == {}, f"unexpected grants: {sorted(allowed)}"


def test_every_output_names_a_resource_of_this_tier(templates):
    """Consumers get the cluster and the two roles; each output is built from the resource it names."""
    t = templates["dev"]["compute"]
    expected = {"ClusterName": "Cluster", "ClusterArn": "Cluster", "TaskExecutionRoleArn": "TaskExecutionRole",
                "TaskRoleArn": "TaskRole"}
    assert {name: sources(templates, "dev", "compute", o["Value"]) for name, o in t["Outputs"].items()} == {
        name: {("compute", title)} for name, title in expected.items()}


@pytest.mark.parametrize("env", ENVS)
def test_container_insights_logs_to_an_encrypted_group_created_before_the_cluster(templates, env):
    r = templates[env]["compute"]["Resources"]
    cluster = r["Cluster"]
    group = r["ContainerInsightsLogGroup"]["Properties"]
    # The name ECS writes Container Insights to: the group must exist before ECS creates its own.
    assert group["LogGroupName"] == (
        f"/aws/ecs/containerinsights/{cluster['Properties']['ClusterName']}/performance")
    assert "ContainerInsightsLogGroup" in cluster["DependsOn"]
    [(_tier, key)] = sources(templates, env, "compute", group["KmsKeyId"])
    assert r[key]["Type"] == "AWS::KMS::Key" and group["RetentionInDays"] > 0
