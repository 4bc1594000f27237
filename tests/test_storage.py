"""storage: a rotating data key, TLS-only PostgreSQL with generated credentials, and an encrypted EFS."""

from __future__ import annotations

import json

import pytest

from generator import config

from conftest import one_resource, resources_of_type, sources, statements, subnets_of_kind

ENVS = ("dev", "staging", "prod")


def built_from(templates, value, env="dev") -> set[tuple[str, str]]:
    return sources(templates, env, "storage", value)


def storage(templates, env="dev") -> dict:
    return templates[env]["storage"]


def database(templates, env="dev") -> dict:
    return one_resource(storage(templates, env), "AWS::RDS::DBInstance")


def file_system(templates, env="dev") -> dict:
    return one_resource(storage(templates, env), "AWS::EFS::FileSystem")


# --- data key -------------------------------------------------------------------------------------------------

# The service that encrypts with a key named in a resource's property: by where the property is, else by the type.
SERVICE_OF_KEY_PROPERTY = {"MasterUserSecret": "secretsmanager"}
SERVICE_OF_TYPE = {"AWS::RDS": "rds", "AWS::EFS": "elasticfilesystem", "AWS::SecretsManager": "secretsmanager",
                   "AWS::S3": "s3", "AWS::DynamoDB": "dynamodb", "AWS::Logs": "logs",
                   "Custom::AdoptedLogGroup": "logs"}


def services_encrypting_with(templates, env: str, key: tuple[str, str]) -> set[str]:
    """The services whose resources (in any tier) name `key` in a KMS property (KmsKeyId, KMSMasterKeyID, ...)."""
    found = set()

    def walk(value, path: tuple[str, ...], tier: str, rtype: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if "kms" in k.lower() and key in sources(templates, env, tier, v):
                    where = next((SERVICE_OF_KEY_PROPERTY[p] for p in path if p in SERVICE_OF_KEY_PROPERTY), None)
                    service = where or SERVICE_OF_TYPE.get("::".join(rtype.split("::")[:2]))
                    assert service, f"{tier} {rtype} uses {key}: name its service in SERVICE_OF_TYPE"
                    found.add(service)
                else:
                    walk(v, (*path, k), tier, rtype)
        elif isinstance(value, list):
            for v in value:
                walk(v, path, tier, rtype)

    for tier, body in templates[env].items():
        for r in body.get("Resources", {}).values():
            if r["Type"] != "AWS::IAM::Role":  # a grant to use the key is not a resource encrypted with it
                walk(r.get("Properties", {}), (), tier, r["Type"])
    return found


@pytest.mark.parametrize("env", ENVS)
def test_data_key_rotates_and_admits_the_account_only_through_the_services_that_store_data_with_it(templates, env):
    key = storage(templates, env)["Resources"]["DataKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    policy = statements(key["KeyPolicy"])
    account = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
    # CloudWatch Logs encrypts the database's log groups as itself (below); everything else is the account's.
    by_account = [s for s in policy if s["Principal"] == {"AWS": [account]}]
    [logs] = [s for s in policy if s not in by_account]
    assert logs["Principal"] == {"Service": [{"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}]}
    assert all(s["Effect"] == "Allow" for s in policy)
    users = [s for s in by_account if "Condition" in s]
    administers = [s for s in by_account if "Condition" not in s]
    assert administers and not any(a.startswith(("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncrypt"))
                                   or a == "kms:*" for s in administers for a in s["Action"]), "no unconditioned use"
    assert users, "someone may use the key"
    for s in users:
        [(operator, condition)] = s["Condition"].items()
        assert operator == "StringEquals" and condition["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}
        via = {v["Fn::Sub"].split(".")[0] for v in condition["kms:ViaService"]}
        assert via == services_encrypting_with(templates, env, ("storage", "DataKey")) - {"logs"}, (
            "through exactly the services that store data with it")
        assert "kms:*" not in s["Action"]


@pytest.mark.parametrize("env", ENVS)
def test_cloudwatch_logs_may_use_the_data_key_only_for_the_database_log_groups_and_their_function(templates, env):
    """The database's identifier is generated (and the database uses the key: naming it here is a cycle), so the
    context admits `/aws/rds/instance/*` groups of this account and region, and the function's own group."""
    policy = statements(storage(templates, env)["Resources"]["DataKey"]["Properties"]["KeyPolicy"])
    [logs] = [s for s in policy if "Service" in s["Principal"]]
    [(operator, condition)] = logs["Condition"].items()
    assert operator == "ArnLike"
    arns = sorted(a["Fn::Sub"] for a in condition["kms:EncryptionContext:aws:logs:arn"])
    prefix = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
    assert arns == [f"{prefix}/aws/lambda/video-processing-rds-log-groups-{env}", f"{prefix}/aws/rds/instance/*/*"]
    assert not any(a.startswith("kms:Create") or a == "kms:*" for a in logs["Action"])


def test_the_services_of_the_data_key_are_found_where_its_users_are():
    """services_encrypting_with follows a key through the parent's wiring into any resource's KMS property."""
    fake = {"dev": {
        "main": {"Resources": {"StorageStack": {"Type": "AWS::CloudFormation::Stack",
                                                "Properties": {"TemplateURL": "storage.json"}},
                               "OtherStack": {"Type": "AWS::CloudFormation::Stack", "Properties": {
                                   "TemplateURL": "other.json", "Parameters": {"DataKeyArn": {
                                       "Fn::GetAtt": ["StorageStack", "Outputs.DataKeyArn"]}}}}}},
        "storage": {"Resources": {"DataKey": {"Type": "AWS::KMS::Key"},
                                  "Db": {"Type": "AWS::RDS::DBInstance", "Properties": {
                                      "KmsKeyId": {"Ref": "DataKey"},
                                      "MasterUserSecret": {"KmsKeyId": {"Ref": "DataKey"}}}}},
                    "Outputs": {"DataKeyArn": {"Value": {"Fn::GetAtt": ["DataKey", "Arn"]}}}},
        "other": {"Parameters": {"DataKeyArn": {"Type": "String"}},
                  "Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketEncryption": {
                      "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {
                          "KMSMasterKeyID": {"Ref": "DataKeyArn"}}}]}}}}},
    }}
    assert services_encrypting_with(fake, "dev", ("storage", "DataKey")) == {"rds", "secretsmanager", "s3"}


@pytest.mark.parametrize("env", ENVS)
def test_data_key_is_retained_everywhere_because_final_snapshots_outlive_the_stack(templates, env):
    key = storage(templates, env)["Resources"]["DataKey"]
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")


# --- database -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_database_is_postgres_17_sized_per_environment_encrypted_and_private(templates, env):
    cfg = config.get(env)
    db = database(templates, env)["Properties"]
    assert db["Engine"] == "postgres" and db["EngineVersion"] == "17"
    assert db["AllowMajorVersionUpgrade"] is False and db["AutoMinorVersionUpgrade"] is True
    assert db["DBInstanceClass"] == cfg.db_instance_class
    assert (db["StorageType"], db["AllocatedStorage"], db["MaxAllocatedStorage"]) == (
        "gp3", str(cfg.db_storage_gib), cfg.db_max_storage_gib)
    assert db["StorageEncrypted"] is True and built_from(templates, db["KmsKeyId"], env) == {("storage", "DataKey")}
    assert db["PubliclyAccessible"] is False
    assert built_from(templates, db["VPCSecurityGroups"], env) == {("network", "DatabaseSecurityGroup")}
    assert db["EnableIAMDatabaseAuthentication"] is True
    assert db["DBName"] == "videoprocessing"


@pytest.mark.parametrize("env, multi_az, protected, backup_days", [
    ("dev", False, False, 1), ("staging", False, False, 7), ("prod", True, True, 30)])
def test_multi_az_deletion_protection_and_backups_per_environment(templates, env, multi_az, protected, backup_days):
    db = database(templates, env)
    assert db["Properties"]["MultiAZ"] is multi_az
    assert db["Properties"]["DeletionProtection"] is protected
    assert db["Properties"]["BackupRetentionPeriod"] == backup_days
    on_delete = "Snapshot" if env == "prod" else "Delete"
    assert (db["DeletionPolicy"], db["UpdateReplacePolicy"]) == (on_delete, "Snapshot")


@pytest.mark.parametrize("env", ENVS)
def test_database_lives_in_every_data_subnet_and_no_other(templates, env):
    """Data subnets have no route to the internet (network tests); every AZ's, so Multi-AZ can fail over."""
    [(_, group)] = built_from(templates, database(templates, env)["Properties"]["DBSubnetGroupName"], env)
    subnet_group = storage(templates, env)["Resources"][group]
    assert subnet_group["Type"] == "AWS::RDS::DBSubnetGroup"
    subnets = built_from(templates, subnet_group["Properties"]["SubnetIds"], env)
    assert subnets == subnets_of_kind(templates, env, "Data")


@pytest.mark.parametrize("env", ENVS)
def test_database_parameter_group_forces_tls_for_the_pinned_major_version(templates, env):
    db = database(templates, env)["Properties"]
    [(_, title)] = built_from(templates, db["DBParameterGroupName"], env)
    group = storage(templates, env)["Resources"][title]["Properties"]
    assert group["Family"] == "postgres" + db["EngineVersion"].split(".")[0]
    assert group["Parameters"]["rds.force_ssl"] == "1"


def test_master_password_is_managed_by_rds_in_a_secret_under_the_data_key(templates):
    """RDS generates the master password into its own secret, encrypted with the data key, and rotates it; no
    password or secret of ours in the template (issue #13)."""
    t = storage(templates)
    assert not resources_of_type(t, "AWS::SecretsManager::Secret")
    assert not resources_of_type(t, "AWS::SecretsManager::SecretTargetAttachment")
    db = database(templates)["Properties"]
    assert db["MasterUsername"] == "videoprocessing" and "MasterUserPassword" not in db
    assert db["ManageMasterUserPassword"] is True
    assert built_from(templates, db["MasterUserSecret"]["KmsKeyId"]) == {("storage", "DataKey")}


def test_no_password_in_parameters_or_outputs(templates):
    for env in ENVS:
        t = storage(templates, env)
        assert not any("password" in name.lower() for name in [*t.get("Parameters", {}), *t["Outputs"]])
        assert "password" not in json.dumps(t["Outputs"]).lower()


def test_performance_insights_and_postgres_logs_exported(templates):
    """RDS names the exported groups after its generated identifier (no DBInstanceIdentifier): the stack owns them
    through custom resources (tests/test_rds_log_groups.py), not as AWS::Logs::LogGroup."""
    props = database(templates)["Properties"]
    assert "DBInstanceIdentifier" not in props
    assert props["EnablePerformanceInsights"] is True
    assert built_from(templates, props["PerformanceInsightsKMSKeyId"]) == {("storage", "DataKey")}
    assert props["EnableCloudwatchLogsExports"] == ["postgresql", "upgrade"]
    assert list(resources_of_type(storage(templates), "AWS::Logs::LogGroup")) == [
        "DatabaseLogGroupsFunctionLogGroup"], "the only group of its own: the log groups function's"


# --- file system ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("env, backups, kept", [("dev", "DISABLED", "Delete"), ("staging", "DISABLED", "Delete"),
                                                ("prod", "ENABLED", "Retain")])
def test_file_system_is_encrypted_elastic_tiered_with_backups_and_retention_in_prod(templates, env, backups, kept):
    fs = file_system(templates, env)
    props = fs["Properties"]
    assert props["Encrypted"] is True and built_from(templates, props["KmsKeyId"], env) == {("storage", "DataKey")}
    assert props["ThroughputMode"] == "elastic"
    assert {"TransitionToIA": "AFTER_30_DAYS"} in props["LifecyclePolicies"]
    assert props["BackupPolicy"]["Status"] == backups
    assert (fs["DeletionPolicy"], fs["UpdateReplacePolicy"]) == (kept, kept)


@pytest.mark.parametrize("env", ENVS)
def test_the_file_system_is_mounted_in_every_private_subnet_once_behind_only_its_group(templates, env):
    """Tasks in any AZ mount it locally; only the file system group (the task group on 2049) admits clients."""
    targets = resources_of_type(storage(templates, env), "AWS::EFS::MountTarget").values()
    private = subnets_of_kind(templates, env, "Private")
    picked = []
    for target in targets:
        props = target["Properties"]
        index, subnet_list = props["SubnetId"]["Fn::Select"]
        assert built_from(templates, subnet_list, env) == private, "a subnet from the list of private subnets"
        picked.append(index)
        assert built_from(templates, props["SecurityGroups"], env) == {("network", "FileSystemSecurityGroup")}
        assert built_from(templates, props["FileSystemId"], env) == {("storage", "FileSystem")}
    assert sorted(picked) == list(range(len(private))), "each private subnet once"


def test_access_point_roots_clients_in_the_media_directory_as_a_fixed_posix_user(templates):
    ap = one_resource(storage(templates), "AWS::EFS::AccessPoint")["Properties"]
    user = (ap["PosixUser"]["Uid"], ap["PosixUser"]["Gid"])
    assert user[0] != "0", "clients never act as root"
    root = ap["RootDirectory"]
    assert root["Path"] == "/media"
    created = root["CreationInfo"]
    assert (created["OwnerUid"], created["OwnerGid"]) == user, "the directory belongs to the user clients act as"
    assert created["Permissions"][-1] == "0", "no access for other users"


def test_file_system_policy_denies_non_tls_and_admits_no_anonymous_client_nor_root(templates):
    policy = file_system(templates)["Properties"]["FileSystemPolicy"]
    [deny] = [s for s in statements(policy) if s["Effect"] == "Deny"]
    assert deny["Principal"] in ("*", {"AWS": "*"}) and deny["Action"] == ["elasticfilesystem:*"], "everyone, always"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and "Resource" not in deny
    allows = [s for s in statements(policy) if s["Effect"] == "Allow"]
    for s in allows:
        assert s["Principal"] not in ("*", {"AWS": "*"}, {"AWS": ["*"]})  # anonymous clients match nothing
        assert "elasticfilesystem:ClientRootAccess" not in s["Action"]
        assert s["Condition"]["Bool"] == {"elasticfilesystem:AccessedViaMountTarget": "true"}
        assert "access-point/*" in json.dumps(s["Condition"]["ArnLike"])


# --- outputs --------------------------------------------------------------------------------------------------

def test_every_output_is_built_from_one_storage_resource_and_the_known_ones_from_the_resource_they_name(templates):
    """Each output names one resource of this tier (which outputs exist is PRODUCES, test_tier_contracts); those
    the other tiers rely on come from the resource whose name they carry. A new output adds nothing here."""
    outputs = storage(templates)["Outputs"]
    built = {name: built_from(templates, o["Value"]) for name, o in outputs.items()}
    assert all(len(refs) == 1 and next(iter(refs))[0] == "storage" for refs in built.values()), built
    named = {"DataKeyArn": "DataKey", "DatabaseEndpointAddress": "Database", "DatabaseEndpointPort": "Database",
             "DatabaseMasterSecretArn": "Database", "DatabaseResourceId": "Database",
             "FileSystemId": "FileSystem", "FileSystemArn": "FileSystem",
             "AccessPointId": "MediaAccessPoint", "AccessPointArn": "MediaAccessPoint",
             "DatabaseIdentifier": "Database"}  # its metrics' dimension (operations)
    assert {name: built[name] for name in named} == {name: {("storage", title)} for name, title in named.items()}
    assert all(o["Description"] for o in outputs.values())
