"""compute: the Fargate cluster and the two task roles."""

from __future__ import annotations

import pytest

from conftest import one_resource, statements


@pytest.mark.parametrize("env, default_provider", [("dev", "FARGATE_SPOT"), ("staging", "FARGATE"),
                                                   ("prod", "FARGATE")])
def test_cluster_has_container_insights_and_spot_only_by_default_in_dev(templates, env, default_provider):
    cluster = one_resource(templates[env]["compute"], "AWS::ECS::Cluster")["Properties"]
    assert cluster["ClusterSettings"] == [{"Name": "containerInsights", "Value": "enabled"}]
    assert cluster["CapacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert cluster["DefaultCapacityProviderStrategy"] == [{"CapacityProvider": default_provider, "Weight": 1}]


def role(templates, title):
    return templates["dev"]["compute"]["Resources"][title]["Properties"]


@pytest.mark.parametrize("title", ["TaskExecutionRole", "TaskRole"])
def test_roles_are_assumable_only_by_ecs_tasks_of_this_account(templates, title):
    trust = statements(role(templates, title)["AssumeRolePolicyDocument"])
    assert trust == [{
        "Action": ["sts:AssumeRole"], "Effect": "Allow",
        "Principal": {"Service": ["ecs-tasks.amazonaws.com"]},
        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
    }]


def policies(templates, title) -> dict[str, list[dict]]:
    """Policy name -> statements of a role's inline policies."""
    return {p["PolicyName"]: statements(p["PolicyDocument"]) for p in role(templates, title)["Policies"]}


def test_task_role_carries_the_sketchs_step_functions_callbacks(templates):
    assert [s["Action"] for s in policies(templates, "TaskRole")["ReportTaskOutcome"]] == [
        ["states:SendTaskFailure", "states:SendTaskHeartbeat", "states:SendTaskSuccess"]]


def test_task_role_mounts_and_writes_the_file_system_only_through_the_media_access_point(templates):
    assert sorted(policies(templates, "TaskRole")) == ["ReportTaskOutcome", "UseMediaFileSystem"]
    assert policies(templates, "TaskRole")["UseMediaFileSystem"] == [{
        "Sid": "MountMediaThroughAccessPoint", "Effect": "Allow",
        "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],  # never ClientRootAccess
        "Resource": [{"Ref": "FileSystemArn"}],
        "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": {"Ref": "AccessPointArn"}}},
    }]


def test_execution_role_reads_exactly_the_container_secrets_and_decrypts_only_through_secrets_manager(templates):
    assert sorted(policies(templates, "TaskExecutionRole")) == ["InjectContainerSecrets", "PullImageAndWriteLogs"]
    assert policies(templates, "TaskExecutionRole")["InjectContainerSecrets"] == [
        {"Sid": "ReadContainerSecrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
         "Resource": [{"Ref": "CacheAuthSecretArn"}, {"Ref": "DatabaseSecretArn"}]},
        {"Sid": "DecryptContainerSecrets", "Effect": "Allow", "Action": ["kms:Decrypt"],
         "Resource": [{"Ref": "CacheKeyArn"}, {"Ref": "DataKeyArn"}],
         "Condition": {"StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}}},
    ]


def test_grants_are_fed_by_the_storage_and_cache_outputs(templates):
    wiring = templates["dev"]["main"]["Resources"]["ComputeStack"]["Properties"]["Parameters"]
    assert wiring == {
        "AccessPointArn": {"Fn::GetAtt": ["StorageStack", "Outputs.AccessPointArn"]},
        "CacheAuthSecretArn": {"Fn::GetAtt": ["CacheStack", "Outputs.CacheAuthSecretArn"]},
        "CacheKeyArn": {"Fn::GetAtt": ["CacheStack", "Outputs.CacheKeyArn"]},
        "DataKeyArn": {"Fn::GetAtt": ["StorageStack", "Outputs.DataKeyArn"]},
        "DatabaseSecretArn": {"Fn::GetAtt": ["StorageStack", "Outputs.DatabaseSecretArn"]},
        "FileSystemArn": {"Fn::GetAtt": ["StorageStack", "Outputs.FileSystemArn"]},
    }


def test_execution_role_pulls_images_and_writes_only_the_processor_log_group(templates):
    by_sid = {s["Sid"]: s for s in policies(templates, "TaskExecutionRole")["PullImageAndWriteLogs"]}
    assert by_sid["RegistryLogin"]["Action"] == ["ecr:GetAuthorizationToken"]
    assert by_sid["WriteProcessorLogs"]["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert "/video-processing/dev/processor" in str(by_sid["WriteProcessorLogs"]["Resource"])
    assert by_sid["PullFromPrivateRepositoriesOfThisAccount"]["Resource"] != ["*"]


def test_outputs_name_cluster_and_roles(templates):
    assert set(templates["dev"]["compute"]["Outputs"]) == {"ClusterName", "ClusterArn", "TaskExecutionRoleArn",
                                                           "TaskRoleArn"}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_container_insights_logs_to_an_encrypted_group_created_before_the_cluster(templates, env):
    r = templates[env]["compute"]["Resources"]
    cluster = r["Cluster"]
    assert cluster["Properties"]["ClusterName"] == f"video-processing-cluster-{env}"
    group = r["ContainerInsightsLogGroup"]["Properties"]
    # The name ECS writes Container Insights to: the group must exist before ECS creates its own.
    assert group["LogGroupName"] == f"/aws/ecs/containerinsights/video-processing-cluster-{env}/performance"
    assert cluster["DependsOn"] == ["ContainerInsightsLogGroup"]
    assert group["KmsKeyId"] == {"Fn::GetAtt": ["ComputeLogsKey", "Arn"]} and group["RetentionInDays"]
