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


def test_task_role_carries_the_sketchs_step_functions_callbacks(templates):
    [policy] = role(templates, "TaskRole")["Policies"]
    assert [s["Action"] for s in statements(policy["PolicyDocument"])] == [
        ["states:SendTaskFailure", "states:SendTaskHeartbeat", "states:SendTaskSuccess"]]


def test_execution_role_pulls_images_and_writes_only_the_processor_log_group(templates):
    [policy] = role(templates, "TaskExecutionRole")["Policies"]
    by_sid = {s["Sid"]: s for s in statements(policy["PolicyDocument"])}
    assert by_sid["RegistryLogin"]["Action"] == ["ecr:GetAuthorizationToken"]
    assert by_sid["WriteProcessorLogs"]["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert "/video-processing/dev/processor" in str(by_sid["WriteProcessorLogs"]["Resource"])
    assert by_sid["PullFromPrivateRepositoriesOfThisAccount"]["Resource"] != ["*"]


def test_outputs_name_cluster_and_roles(templates):
    assert set(templates["dev"]["compute"]["Outputs"]) == {"ClusterName", "ClusterArn", "TaskExecutionRoleArn",
                                                           "TaskRoleArn"}
