"""storage: a rotating data key, TLS-only PostgreSQL with generated credentials, and an encrypted EFS."""

from __future__ import annotations

import json

import pytest

from generator import config

from conftest import one_resource, resources_of_type, statements

ENVS = ("dev", "staging", "prod")
DATA_KEY_ARN = {"Fn::GetAtt": ["DataKey", "Arn"]}


def storage(templates, env="dev") -> dict:
    return templates[env]["storage"]


def database(templates, env="dev") -> dict:
    return one_resource(storage(templates, env), "AWS::RDS::DBInstance")


def file_system(templates, env="dev") -> dict:
    return one_resource(storage(templates, env), "AWS::EFS::FileSystem")


# --- data key -------------------------------------------------------------------------------------------------

def test_data_key_rotates_and_admits_the_account_through_data_services_and_logs_for_the_database_groups(templates):
    key = storage(templates)["Resources"]["DataKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    by_sid = {s["Sid"]: s for s in statements(key["KeyPolicy"])}
    assert sorted(by_sid) == ["AccountAdministers", "AccountPrincipalsThroughServices",
                              "CloudWatchLogsEncryptsTheseLogGroups"]
    services = by_sid["AccountPrincipalsThroughServices"]
    assert services["Principal"] == {"AWS": [{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}]}
    assert services["Condition"] == {"StringEquals": {
        "kms:CallerAccount": {"Ref": "AWS::AccountId"},
        "kms:ViaService": [{"Fn::Sub": f"{s}.${{AWS::Region}}.amazonaws.com"}
                           for s in ("elasticfilesystem", "rds", "secretsmanager")],
    }}
    assert "kms:*" not in services["Action"]
    groups = json.dumps(by_sid["CloudWatchLogsEncryptsTheseLogGroups"]["Condition"])
    assert "/aws/rds/instance/video-processing-database-dev/postgresql" in groups
    assert "/aws/rds/instance/video-processing-database-dev/upgrade" in groups and groups.count("log-group:") == 2


@pytest.mark.parametrize("env", ENVS)
def test_data_key_is_retained_everywhere_because_final_snapshots_outlive_the_stack(templates, env):
    key = storage(templates, env)["Resources"]["DataKey"]
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")


# --- database -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_database_is_postgres_17_sized_per_environment_encrypted_and_private(templates, env):
    cfg = config.get(env)
    db = database(templates, env)["Properties"]
    assert db["Engine"] == "postgres" and db["EngineVersion"].startswith("17.")
    assert db["AllowMajorVersionUpgrade"] is False and db["AutoMinorVersionUpgrade"] is True
    assert db["DBInstanceClass"] == cfg.db_instance_class
    assert (db["StorageType"], db["AllocatedStorage"], db["MaxAllocatedStorage"]) == (
        "gp3", str(cfg.db_storage_gib), cfg.db_max_storage_gib)
    assert db["StorageEncrypted"] is True and db["KmsKeyId"] == DATA_KEY_ARN
    assert db["PubliclyAccessible"] is False
    assert db["VPCSecurityGroups"] == [{"Ref": "DatabaseSecurityGroupId"}]
    assert db["EnableIAMDatabaseAuthentication"] is True
    assert db["DBName"] == "videoprocessing"


@pytest.mark.parametrize("env, multi_az, protected, backup_days", [
    ("dev", False, False, 1), ("staging", False, False, 7), ("prod", True, True, 30)])
def test_multi_az_deletion_protection_and_backups_per_environment(templates, env, multi_az, protected, backup_days):
    db = database(templates, env)
    assert db["Properties"]["MultiAZ"] is multi_az
    assert db["Properties"]["DeletionProtection"] is protected
    assert db["Properties"]["BackupRetentionPeriod"] == backup_days
    assert (db["DeletionPolicy"], db["UpdateReplacePolicy"]) == ("Snapshot", "Snapshot")


def test_database_lives_in_the_data_subnets(templates):
    t = storage(templates)
    group = one_resource(t, "AWS::RDS::DBSubnetGroup")["Properties"]
    assert group["SubnetIds"] == {"Ref": "DataSubnetIds"}
    assert database(templates)["Properties"]["DBSubnetGroupName"] == {"Ref": "DatabaseSubnetGroup"}


def test_parameter_group_forces_tls_for_the_pinned_major_version(templates):
    group = one_resource(storage(templates), "AWS::RDS::DBParameterGroup")["Properties"]
    assert group["Family"] == "postgres17"
    assert group["Parameters"] == {"rds.force_ssl": "1"}
    assert database(templates)["Properties"]["DBParameterGroupName"] == {"Ref": "DatabaseParameterGroup"}


def test_master_credentials_are_generated_in_secrets_manager_and_only_referenced(templates):
    t = storage(templates)
    secret = t["Resources"]["DatabaseSecret"]["Properties"]
    generate = secret["GenerateSecretString"]
    assert json.loads(generate["SecretStringTemplate"]) == {"username": "videoprocessing"}
    assert generate["GenerateStringKey"] == "password" and generate["PasswordLength"] >= 32
    assert set('"/@ ') <= set(generate["ExcludeCharacters"])  # characters RDS refuses
    assert secret["KmsKeyId"] == DATA_KEY_ARN
    db = database(templates)["Properties"]
    assert db["MasterUsername"] == {"Fn::Sub": "{{resolve:secretsmanager:${DatabaseSecret}:SecretString:username}}"}
    assert db["MasterUserPassword"] == {
        "Fn::Sub": "{{resolve:secretsmanager:${DatabaseSecret}:SecretString:password}}"}
    assert "ManageMasterUserPassword" not in db
    attachment = one_resource(t, "AWS::SecretsManager::SecretTargetAttachment")["Properties"]
    assert attachment == {"SecretId": {"Ref": "DatabaseSecret"}, "TargetId": {"Ref": "Database"},
                          "TargetType": "AWS::RDS::DBInstance"}


def test_no_password_in_parameters_or_outputs(templates):
    for env in ENVS:
        t = storage(templates, env)
        assert not any("password" in name.lower() for name in [*t.get("Parameters", {}), *t["Outputs"]])
        assert "password" not in json.dumps(t["Outputs"]).lower()


def test_performance_insights_and_postgres_logs_go_to_encrypted_log_groups_created_first(templates):
    t = storage(templates)
    db = database(templates)
    props = db["Properties"]
    assert props["EnablePerformanceInsights"] is True and props["PerformanceInsightsKMSKeyId"] == DATA_KEY_ARN
    assert props["EnableCloudwatchLogsExports"] == ["postgresql", "upgrade"]
    for log, title in (("postgresql", "DatabasePostgresqlLogGroup"), ("upgrade", "DatabaseUpgradeLogGroup")):
        group = t["Resources"][title]["Properties"]
        assert group["LogGroupName"] == f"/aws/rds/instance/{props['DBInstanceIdentifier']}/{log}"
        assert group["KmsKeyId"] == DATA_KEY_ARN and group["RetentionInDays"] == 7
        assert title in db["DependsOn"]


# --- file system ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("env, backups, kept", [("dev", "DISABLED", "Delete"), ("staging", "DISABLED", "Delete"),
                                                ("prod", "ENABLED", "Retain")])
def test_file_system_is_encrypted_elastic_tiered_with_backups_and_retention_in_prod(templates, env, backups, kept):
    fs = file_system(templates, env)
    props = fs["Properties"]
    assert props["Encrypted"] is True and props["KmsKeyId"] == DATA_KEY_ARN
    assert props["ThroughputMode"] == "elastic"
    assert {"TransitionToIA": "AFTER_30_DAYS"} in props["LifecyclePolicies"]
    assert props["BackupPolicy"] == {"Status": backups}
    assert (fs["DeletionPolicy"], fs["UpdateReplacePolicy"]) == (kept, kept)


@pytest.mark.parametrize("env", ENVS)
def test_one_mount_target_per_private_subnet_with_the_file_system_group(templates, env):
    targets = resources_of_type(storage(templates, env), "AWS::EFS::MountTarget")
    assert len(targets) == config.get(env).az_count
    for i in range(config.get(env).az_count):
        props = targets[f"MountTarget{i + 1}"]["Properties"]
        assert props["SubnetId"] == {"Fn::Select": [i, {"Ref": "PrivateSubnetIds"}]}
        assert props["SecurityGroups"] == [{"Ref": "FileSystemSecurityGroupId"}]
        assert props["FileSystemId"] == {"Ref": "FileSystem"}


def test_access_point_roots_clients_in_the_media_directory_as_a_fixed_posix_user(templates):
    ap = one_resource(storage(templates), "AWS::EFS::AccessPoint")["Properties"]
    assert ap["PosixUser"] == {"Uid": "1000", "Gid": "1000"}
    assert ap["RootDirectory"] == {"Path": "/media", "CreationInfo": {
        "OwnerUid": "1000", "OwnerGid": "1000", "Permissions": "750"}}


def test_file_system_policy_denies_non_tls_and_admits_no_anonymous_client_nor_root(templates):
    policy = file_system(templates)["Properties"]["FileSystemPolicy"]
    deny = [s for s in statements(policy) if s["Effect"] == "Deny"]
    assert deny == [{"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
                     "Action": ["elasticfilesystem:*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]
    allows = [s for s in statements(policy) if s["Effect"] == "Allow"]
    for s in allows:
        assert s["Principal"] not in ("*", {"AWS": "*"}, {"AWS": ["*"]})  # anonymous clients match nothing
        assert "elasticfilesystem:ClientRootAccess" not in s["Action"]
        assert s["Condition"]["Bool"] == {"elasticfilesystem:AccessedViaMountTarget": "true"}
        assert "access-point/*" in json.dumps(s["Condition"]["ArnLike"])


# --- outputs --------------------------------------------------------------------------------------------------

def test_outputs_endpoint_secret_file_system_and_access_point(templates):
    outputs = storage(templates)["Outputs"]
    assert set(outputs) == {"DataKeyArn", "DatabaseEndpointAddress", "DatabaseEndpointPort", "DatabaseSecretArn",
                            "FileSystemId", "FileSystemArn", "AccessPointId", "AccessPointArn"}
    assert outputs["DatabaseEndpointAddress"]["Value"] == {"Fn::GetAtt": ["Database", "Endpoint.Address"]}
    assert outputs["DatabaseEndpointPort"]["Value"] == {"Fn::GetAtt": ["Database", "Endpoint.Port"]}
    assert outputs["DatabaseSecretArn"]["Value"] == {"Ref": "DatabaseSecret"}
    assert outputs["AccessPointArn"]["Value"] == {"Fn::GetAtt": ["MediaAccessPoint", "Arn"]}
    assert all(o["Description"] for o in outputs.values())
