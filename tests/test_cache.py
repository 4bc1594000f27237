"""cache: Redis encrypted at rest and in transit, AUTH token generated, one node in dev, two with failover in prod."""

from __future__ import annotations

import json

import pytest

from generator import config

from conftest import one_resource, statements

ENVS = ("dev", "staging", "prod")
CACHE_KEY_ARN = {"Fn::GetAtt": ["CacheKey", "Arn"]}


def group(templates, env="dev") -> dict:
    return one_resource(templates[env]["cache"], "AWS::ElastiCache::ReplicationGroup")


@pytest.mark.parametrize("env, nodes, failover", [("dev", 1, False), ("staging", 1, False), ("prod", 2, True)])
def test_node_count_failover_and_multi_az_per_environment(templates, env, nodes, failover):
    props = group(templates, env)["Properties"]
    assert props["NumCacheClusters"] == nodes
    assert props["AutomaticFailoverEnabled"] is failover and props["MultiAZEnabled"] is failover
    assert props["CacheNodeType"] == config.get(env).cache_node_type


@pytest.mark.parametrize("env", ENVS)
def test_pinned_redis_encrypted_at_rest_with_the_cache_key_and_in_transit(templates, env):
    props = group(templates, env)["Properties"]
    assert (props["Engine"], props["EngineVersion"]) == ("redis", "7.1")
    assert props["AtRestEncryptionEnabled"] is True and props["KmsKeyId"] == CACHE_KEY_ARN
    assert props["TransitEncryptionEnabled"] is True and props["TransitEncryptionMode"] == "required"


def test_auth_token_is_generated_in_secrets_manager_and_only_referenced(templates):
    t = templates["dev"]["cache"]
    secret = t["Resources"]["CacheAuthSecret"]["Properties"]
    generate = secret["GenerateSecretString"]
    assert 32 <= generate["PasswordLength"] <= 64 and generate["ExcludePunctuation"] is True
    assert "SecretStringTemplate" not in generate  # the whole secret string is the token
    assert secret["KmsKeyId"] == CACHE_KEY_ARN
    assert group(templates)["Properties"]["AuthToken"] == {
        "Fn::Sub": "{{resolve:secretsmanager:${CacheAuthSecret}:SecretString}}"}
    assert not any("token" in name.lower() for name in t.get("Parameters", {}))


def test_lives_in_the_data_subnets_behind_the_cache_security_group(templates):
    t = templates["dev"]["cache"]
    subnets = one_resource(t, "AWS::ElastiCache::SubnetGroup")["Properties"]
    assert subnets["SubnetIds"] == {"Ref": "DataSubnetIds"}
    props = group(templates)["Properties"]
    assert props["CacheSubnetGroupName"] == {"Ref": "CacheSubnetGroup"}
    assert props["SecurityGroupIds"] == [{"Ref": "CacheSecurityGroupId"}]


@pytest.mark.parametrize("env, retention", [("dev", 0), ("staging", 0), ("prod", 7)])
def test_snapshots_retained_in_prod_and_a_final_snapshot_everywhere(templates, env, retention):
    g = group(templates, env)
    assert g["Properties"]["SnapshotRetentionLimit"] == retention
    assert ("SnapshotWindow" in g["Properties"]) is bool(retention)
    assert (g["DeletionPolicy"], g["UpdateReplacePolicy"]) == ("Snapshot", "Snapshot")


@pytest.mark.parametrize("env", ENVS)
def test_slow_log_goes_to_an_encrypted_vended_log_group(templates, env):
    t = templates[env]["cache"]
    log = t["Resources"]["CacheSlowLogGroup"]["Properties"]
    assert log["LogGroupName"] == f"/aws/vendedlogs/elasticache/video-processing-{env}/slow-log"
    assert log["KmsKeyId"] == CACHE_KEY_ARN
    assert log["RetentionInDays"] == config.get(env).log_retention_days
    assert group(templates, env)["Properties"]["LogDeliveryConfigurations"] == [{
        "LogType": "slow-log", "LogFormat": "json", "DestinationType": "cloudwatch-logs",
        "DestinationDetails": {"CloudWatchLogsDetails": {"LogGroup": {"Ref": "CacheSlowLogGroup"}}}}]


def test_cache_key_rotates_and_admits_the_account_through_elasticache_secrets_manager_and_logs(templates):
    key = templates["dev"]["cache"]["Resources"]["CacheKey"]
    assert key["Properties"]["EnableKeyRotation"] is True
    by_sid = {s["Sid"]: s for s in statements(key["Properties"]["KeyPolicy"])}
    assert sorted(by_sid) == ["AccountAdministers", "AccountPrincipalsThroughServices",
                              "CloudWatchLogsEncryptsTheseLogGroups"]
    assert by_sid["AccountPrincipalsThroughServices"]["Condition"]["StringEquals"]["kms:ViaService"] == [
        {"Fn::Sub": f"{s}.${{AWS::Region}}.amazonaws.com"} for s in ("elasticache", "secretsmanager")]
    assert json.dumps(by_sid["CloudWatchLogsEncryptsTheseLogGroups"]["Condition"]).count("log-group:") == 1
    assert "/aws/vendedlogs/elasticache/video-processing-dev/slow-log" in json.dumps(by_sid)
    # Final snapshots outlive the stack, and only this key decrypts them.
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_consumes_only_network_so_it_deploys_in_parallel_with_storage(templates):
    assert sorted(templates["dev"]["cache"]["Parameters"]) == ["CacheSecurityGroupId", "DataSubnetIds"]


def test_outputs_primary_endpoint_and_auth_secret(templates):
    outputs = templates["dev"]["cache"]["Outputs"]
    assert {k: v["Value"] for k, v in outputs.items()} == {
        "CacheEndpointAddress": {"Fn::GetAtt": ["CacheReplicationGroup", "PrimaryEndPoint.Address"]},
        "CacheEndpointPort": {"Fn::GetAtt": ["CacheReplicationGroup", "PrimaryEndPoint.Port"]},
        "CacheAuthSecretArn": {"Ref": "CacheAuthSecret"},
        "CacheKeyArn": CACHE_KEY_ARN,
    }
    assert all(o["Description"] for o in outputs.values())
