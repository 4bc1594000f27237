"""cache: Redis encrypted at rest and in transit, users signing in with IAM (the processor's and the API's, each
allowed one command on progress keys), one node in dev, two with failover in prod."""

from __future__ import annotations

import json

import pytest

from generator import config

from conftest import one_resource, resources_of_type, sources, statements, subnets_of_kind

ENVS = ("dev", "staging", "prod")


def built_from(templates, env, value) -> set[tuple[str, str]]:
    return sources(templates, env, "cache", value)


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
    assert props["AtRestEncryptionEnabled"] is True
    assert built_from(templates, env, props["KmsKeyId"]) == {("cache", "CacheKey")}, "the tier's own key"
    assert props["TransitEncryptionEnabled"] is True and props["TransitEncryptionMode"] == "required"


@pytest.mark.parametrize("env", ENVS)
def test_only_the_user_group_signs_in_the_processor_and_the_api_with_iam_each_with_one_command(templates, env):
    """No shared token: the group admits the users of its user group; the processor's user and the API's sign in
    with IAM, may touch only progress keys (the processor SETs them, the API GETs them) and no dangerous command;
    the mandatory `default` user is switched off (issue #13, item 4). tests/test_progress.py runs these exact
    access strings on a real redis-server."""
    t = templates[env]["cache"]
    props = group(templates, env)["Properties"]
    assert "AuthToken" not in props
    assert not resources_of_type(t, "AWS::SecretsManager::Secret")
    [(_, user_group)] = [built_from(templates, env, ref).pop() for ref in props["UserGroupIds"]]
    users = {t["Resources"][i]["Properties"]["UserName"]: t["Resources"][i]["Properties"]
             for ref in t["Resources"][user_group]["Properties"]["UserIds"] for _, i in built_from(templates, env, ref)}
    reader, processor = f"video-processing-{env}-api-reader", f"video-processing-{env}-processor"
    assert set(users) == {"default", processor, reader}
    assert users["default"]["AccessString"].startswith("off ")
    for name, command in ((processor, "+set"), (reader, "+get")):
        user = users[name]
        assert user["AuthenticationMode"] == {"Type": "iam"} and user["UserId"] == user["UserName"] == name.lower()
        assert user["AccessString"] == f"on ~progress:* -@all {command} -@dangerous", name


@pytest.mark.parametrize("env", ENVS)
def test_lives_in_every_data_subnet_behind_only_the_cache_security_group(templates, env):
    """Data subnets have no internet route; the cache group admits only the task group on 6379 (network tests)."""
    t = templates[env]["cache"]
    props = group(templates, env)["Properties"]
    [(_, subnet_group)] = built_from(templates, env, props["CacheSubnetGroupName"])
    assert t["Resources"][subnet_group]["Type"] == "AWS::ElastiCache::SubnetGroup"
    assert built_from(templates, env, t["Resources"][subnet_group]["Properties"]["SubnetIds"]) == subnets_of_kind(
        templates, env, "Data")
    assert built_from(templates, env, props["SecurityGroupIds"]) == {("network", "CacheSecurityGroup")}


@pytest.mark.parametrize("env, retention", [("dev", 0), ("staging", 0), ("prod", 7)])
def test_snapshots_retained_in_prod_and_a_final_snapshot_on_delete_only_there(templates, env, retention):
    g = group(templates, env)
    assert g["Properties"]["SnapshotRetentionLimit"] == retention
    assert ("SnapshotWindow" in g["Properties"]) is bool(retention)
    on_delete = "Snapshot" if env == "prod" else "Delete"
    assert (g["DeletionPolicy"], g["UpdateReplacePolicy"]) == (on_delete, "Snapshot")


@pytest.mark.parametrize("env", ENVS)
def test_slow_log_goes_to_an_encrypted_vended_log_group(templates, env):
    t = templates[env]["cache"]
    log = t["Resources"]["CacheSlowLogGroup"]["Properties"]
    assert log["LogGroupName"] == f"/aws/vendedlogs/elasticache/video-processing-{env}/slow-log"
    assert built_from(templates, env, log["KmsKeyId"]) == {("cache", "CacheKey")}
    assert log["RetentionInDays"] == config.get(env).log_retention_days
    [delivery] = group(templates, env)["Properties"]["LogDeliveryConfigurations"]
    assert (delivery["LogType"], delivery["DestinationType"]) == ("slow-log", "cloudwatch-logs")
    assert built_from(templates, env, delivery["DestinationDetails"]) == {("cache", "CacheSlowLogGroup")}


def test_cache_key_rotates_and_admits_the_account_through_elasticache_and_logs(templates):
    key = templates["dev"]["cache"]["Resources"]["CacheKey"]
    assert key["Properties"]["EnableKeyRotation"] is True
    by_sid = {s["Sid"]: s for s in statements(key["Properties"]["KeyPolicy"])}
    assert sorted(by_sid) == ["AccountAdministers", "AccountPrincipalsThroughServices",
                              "CloudWatchLogsEncryptsTheseLogGroups"]
    assert by_sid["AccountPrincipalsThroughServices"]["Condition"]["StringEquals"]["kms:ViaService"] == [
        {"Fn::Sub": f"{s}.${{AWS::Region}}.amazonaws.com"} for s in ("elasticache",)]
    assert json.dumps(by_sid["CloudWatchLogsEncryptsTheseLogGroups"]["Condition"]).count("log-group:") == 1
    assert "/aws/vendedlogs/elasticache/video-processing-dev/slow-log" in json.dumps(by_sid)
    # Final snapshots outlive the stack, and only this key decrypts them.
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_consumes_only_network_so_it_deploys_in_parallel_with_storage(templates):
    assert sorted(templates["dev"]["cache"]["Parameters"]) == ["CacheSecurityGroupId", "DataSubnetIds"]


@pytest.mark.parametrize("env", ENVS)
def test_outputs_the_primary_endpoint_the_processor_user_and_the_key(templates, env):
    """Consumers connect to the primary (writable) endpoint as the processor's user (IAM authentication)."""
    outputs = templates[env]["cache"]["Outputs"]
    assert {name: built_from(templates, env, o["Value"]) for name, o in outputs.items()} == {
        "CacheEndpointAddress": {("cache", "CacheReplicationGroup")},
        "CacheEndpointPort": {("cache", "CacheReplicationGroup")},
        "CacheUserId": {("cache", "ProcessorCacheUser")},
        "CacheKeyArn": {("cache", "CacheKey")},
        "CacheReplicationGroupId": {("cache", "CacheReplicationGroup")},  # its nodes' metrics (operations)
        "CacheReaderUserId": {("cache", "ApiCacheUser")},  # the API function reads progress as this user
    }
    for name in ("CacheEndpointAddress", "CacheEndpointPort"):
        assert outputs[name]["Value"]["Fn::GetAtt"][1].startswith("PrimaryEndPoint."), name
    assert "resolve:secretsmanager" not in json.dumps(outputs)
    assert all(o["Description"] for o in outputs.values())
