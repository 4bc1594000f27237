"""Issue #11: defects a real AWS account rejects or mishandles and moto accepts, one regression test each.

Every test reads the generated templates (tests/conftest.py's `templates` fixture); each fails on the
templates as they were before the fix. Defects 1 and 8 also need the account side (deploytools.bootstrap,
deploytools.preflight), tested here through what those modules read from the templates.
"""

from __future__ import annotations

import json

import pytest

from deploytools import bootstrap, preflight
from generator import aws_facts, config

from conftest import resources_of_type, statements

ENVS = ("dev", "staging", "prod")


def every_resource(templates, env):
    for tier, t in templates[env].items():
        for title, r in t.get("Resources", {}).items():
            yield tier, title, r


# --- 1. ECS service-linked role -------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_1_the_ecs_service_linked_role_is_the_bootstraps_and_never_an_environments(templates, env):
    """A cluster with capacity providers needs AWSServiceRoleForECS before it is created: one per account."""
    [cluster] = resources_of_type(templates[env]["compute"], "AWS::ECS::Cluster").values()
    assert cluster["Properties"]["CapacityProviders"], "the cluster that needs the role"
    assert not [t for _, t, r in every_resource(templates, env) if r["Type"] == "AWS::IAM::ServiceLinkedRole"]
    assert aws_facts.ECS_SERVICE_LINKED_ROLE in [name for name, _ in bootstrap.PIECES]


# --- 2. API Gateway account settings --------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_2_the_api_gateway_account_setting_and_its_role_are_not_in_any_environment(templates, env):
    assert not [t for _, t, r in every_resource(templates, env) if r["Type"] == "AWS::ApiGateway::Account"]
    trusted = [t for _, t, r in every_resource(templates, env) if r["Type"] == "AWS::IAM::Role"
               and "apigateway.amazonaws.com" in str(r["Properties"]["AssumeRolePolicyDocument"])]
    assert not trusted, "the CloudWatch role is the bootstrap's"
    assert "api-gateway-account" in [name for name, _ in bootstrap.PIECES]


# --- 3. Reserved concurrency ----------------------------------------------------------------------------------

def test_3_reserved_concurrency_is_a_setting_off_in_dev(templates):
    for env in ENVS:
        [fn] = resources_of_type(templates[env]["api"], "AWS::Lambda::Function").values()
        reserved = config.get(env).api_reserved_concurrency
        assert fn["Properties"].get("ReservedConcurrentExecutions", 0) == reserved
    assert "ReservedConcurrentExecutions" not in next(iter(
        resources_of_type(templates["dev"]["api"], "AWS::Lambda::Function").values()))["Properties"]
    assert preflight.reserved_concurrency(templates["prod"]) == config.get("prod").api_reserved_concurrency
    assert preflight.reserved_concurrency(templates["dev"]) == 0


# --- 4. SNS topic policy --------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_4_one_policy_per_topic_naming_that_topic_with_explicit_actions(templates, env):
    for tier, t in templates[env].items():
        topics = set(resources_of_type(t, "AWS::SNS::Topic"))
        policies = resources_of_type(t, "AWS::SNS::TopicPolicy").values()
        assert sorted(json.dumps(p["Properties"]["Topics"]) for p in policies) == sorted(
            json.dumps([{"Ref": x}]) for x in topics), tier
        for policy in policies:
            [topic] = policy["Properties"]["Topics"]
            for s in statements(policy["Properties"]["PolicyDocument"]):
                assert s["Resource"] == [topic], (tier, s["Sid"])
                actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
                assert not [a for a in actions if "*" in a], (tier, s["Sid"])
                assert {a.split(":")[1] for a in actions} <= set(aws_facts.SNS_TOPIC_POLICY_ACTIONS)


# --- 5. EventBridge and the topic key -------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_5_service_key_statements_carry_no_source_account_but_an_encryption_context(templates, env):
    for tier, t in templates[env].items():
        for title, key in resources_of_type(t, "AWS::KMS::Key").items():
            for s in statements(key["Properties"]["KeyPolicy"]):
                services = s["Principal"].get("Service", []) if isinstance(s["Principal"], dict) else []
                if any(svc in ("events.amazonaws.com", "sns.amazonaws.com", "cloudwatch.amazonaws.com")
                       for svc in services):
                    assert "aws:SourceAccount" not in str(s.get("Condition")), (tier, title, s["Sid"])
                    [(_, context)] = s["Condition"].items()
                    assert set(context) <= {"kms:EncryptionContext:aws:sns:topicArn",
                                            "kms:EncryptionContext:aws:sqs:arn"}, (tier, title, s["Sid"])


@pytest.mark.parametrize("env", ENVS)
def test_5_the_execution_end_rule_has_a_dead_letter_queue_and_a_failed_invocations_alarm(templates, env):
    rule = templates[env]["jobs"]["Resources"]["ExecutionEndedRule"]  # the workflow's rule moved to jobs (issue 12)
    [target] = rule["Properties"]["Targets"]
    assert target["DeadLetterConfig"]["Arn"] == {"Ref": "DeadLetterQueueArn"}
    alarms = resources_of_type(templates[env]["operations"], "AWS::CloudWatch::Alarm").values()
    assert [a for a in alarms if a["Properties"]["MetricName"] == "FailedInvocations"
            and a["Properties"]["Namespace"] == "AWS/Events"
            and a["Properties"]["Dimensions"] == [{"Name": "RuleName", "Value": {"Ref": "ExecutionEndedRuleName"}}]]
    policy = next(iter(resources_of_type(templates[env]["notification"], "AWS::SQS::QueuePolicy").values()))
    assert "events.amazonaws.com" in str(policy["Properties"]["PolicyDocument"]), "EventBridge may dead-letter"


# --- 6. Custom names that forbid replacement ------------------------------------------------------------------

# The physical names an operator or the seed needs; any other custom name would make a replacement fail.
NAMED = {
    "AWS::SNS::Topic": "TopicName", "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::ECS::Cluster": "ClusterName", "AWS::ApiGateway::RestApi": "Name", "AWS::Lambda::Function": "FunctionName",
}


@pytest.mark.parametrize("env", ENVS)
def test_6_only_topics_state_machine_cluster_api_and_function_have_custom_names(templates, env):
    for tier, title, r in every_resource(templates, env):
        props = r.get("Properties", {})
        assert "DBInstanceIdentifier" not in props and "ReplicationGroupId" not in props, (tier, title)
        if r["Type"] in NAMED:
            assert NAMED[r["Type"]] in props, (tier, title)


# --- 7. Engine version ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_7_only_the_major_engine_version_is_pinned(templates, env):
    [db] = resources_of_type(templates[env]["storage"], "AWS::RDS::DBInstance").values()
    assert db["Properties"]["EngineVersion"] == "17"
    assert db["Properties"]["AutoMinorVersionUpgrade"] is True
    assert preflight.engine_versions(templates[env]) == [("postgres", "17")]


# --- 8. Re-creating prod --------------------------------------------------------------------------------------

def test_8_every_retained_fixed_name_is_checked_before_a_create(templates):
    """A retained resource with a fixed name collides with a re-create: the preflight lists every one."""
    expected = sorted(
        r["Properties"]["LogGroupName"] for _, _, r in every_resource(templates, "prod")
        if r["Type"] == "AWS::Logs::LogGroup" and r.get("DeletionPolicy") in aws_facts.RETAINING_POLICIES)
    assert expected, "prod retains named log groups"
    assert preflight.retained_log_group_names(templates["prod"]) == expected
    assert preflight.retained_log_group_names(templates["dev"]) == [], "dev deletes its log groups"
    # Nothing else that is retained (or snapshotted, then deleted) has a fixed physical name.
    physical = {"DBInstanceIdentifier", "ReplicationGroupId", "QueueName", "Name", "TopicName", "BucketName",
                "TableName", "RepositoryName", "FileSystemName"}
    for tier, title, r in every_resource(templates, "prod"):
        if r.get("DeletionPolicy") in aws_facts.RETAINING_POLICIES and r["Type"] != "AWS::Logs::LogGroup":
            assert not physical & set(r.get("Properties", {})), (tier, title)


# --- 9. Snapshots on delete outside prod ----------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_9_a_final_snapshot_on_delete_only_where_the_config_asks(templates, env):
    want = "Snapshot" if config.get(env).snapshot_on_delete else "Delete"
    snapshotting = [r for _, _, r in every_resource(templates, env)
                    if aws_facts.RETAINING_POLICY.get(r["Type"]) == "Snapshot"]
    assert snapshotting
    for r in snapshotting:
        assert (r["DeletionPolicy"], r["UpdateReplacePolicy"]) == (want, "Snapshot")
    assert config.get("prod").snapshot_on_delete and not config.get("dev").snapshot_on_delete
