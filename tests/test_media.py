"""The media bucket: what protects the media (encryption, TLS, no public or foreign access), what makes one job per
object version possible (versioning), what keeps costs bounded (lifecycle) and what survives a stack deletion."""

from __future__ import annotations

import json

import pytest

from generator import config
from generator.access.policy import condition_holds
from generator.config import ConfigError
from generator.functions.video_jobs import contract
from generator.tiers import media

ENVS = list(config.ENVIRONMENTS)


def bucket_of(templates, env):
    [(title, bucket)] = [(k, r) for k, r in templates[env]["media"]["Resources"].items()
                         if r["Type"] == "AWS::S3::Bucket"]
    return title, bucket


def policy_statements(templates, env):
    [policy] = [r for r in templates[env]["media"]["Resources"].values() if r["Type"] == "AWS::S3::BucketPolicy"]
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


@pytest.mark.parametrize("env", ENVS)
def test_the_bucket_is_private_owner_enforced_and_encrypted_with_the_media_key(templates, env):
    _, bucket = bucket_of(templates, env)
    p = bucket["Properties"]
    assert "BucketName" not in p, "a fixed name would block re-creating a retained bucket"
    assert all(p["PublicAccessBlockConfiguration"].values()) and len(p["PublicAccessBlockConfiguration"]) == 4
    assert p["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    [rule] = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms",
                                                     "KMSMasterKeyID": {"Fn::GetAtt": ["MediaKey", "Arn"]}}
    assert p["NotificationConfiguration"]["EventBridgeConfiguration"] == {"EventBridgeEnabled": True}


@pytest.mark.parametrize("env", ENVS)
def test_versioning_is_on_in_every_environment_because_the_version_keys_admission(templates, env):
    assert bucket_of(templates, env)[1]["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}


@pytest.mark.parametrize("env", ENVS)
def test_the_bucket_and_its_key_are_retained_exactly_where_data_is(templates, env):
    expected = "Retain" if config.get(env).retain_data else "Delete"
    resources = templates[env]["media"]["Resources"]
    for title in ("MediaBucket", "MediaKey"):
        assert resources[title]["DeletionPolicy"] == resources[title]["UpdateReplacePolicy"] == expected, title


@pytest.mark.parametrize("env", ENVS)
def test_incomplete_uploads_are_aborted_after_a_day_and_sources_expire_only_where_configured(templates, env):
    rules = {r["Id"]: r for r in bucket_of(templates, env)[1]["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["AbortIncompleteUploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rules["AbortIncompleteUploads"]["Prefix"] == ""  # the whole bucket
    days = config.get(env).media_source_expiry_days
    if days:
        assert rules["ExpireSources"]["ExpirationInDays"] == days
        assert rules["ExpireSources"]["Prefix"] == contract.SOURCES_PREFIX, "outputs must never expire with sources"
        assert rules["ExpireSources"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    else:
        assert "ExpireSources" not in rules
    assert config.get("prod").media_source_expiry_days == 0, "prod keeps its sources"


@pytest.mark.parametrize("env", ENVS)
def test_the_bucket_policy_refuses_plain_http_other_accounts_and_other_encryption(templates, env):
    statements = policy_statements(templates, env)
    assert all(s["Effect"] == "Deny" for s in statements.values()), "the policy grants nothing: IAM does"
    tls = statements["DenyInsecureTransport"]
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and tls["Action"] == ["s3:*"]
    assert len(tls["Resource"]) == 2, "both the bucket and its objects"
    assert statements["DenyOtherAccounts"]["Condition"] == {
        "StringNotEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}
    # Evaluated as IAM does (generator.access.policy): an upload naming no encryption gets the bucket's default
    # key and passes (UploadPart names none either); one naming another algorithm or key is denied.
    key = json.dumps({"Fn::GetAtt": ["MediaKey", "Arn"]})
    conditions = {sid: json.loads(json.dumps(statements[sid]["Condition"]).replace(key, '"media-key"'))
                  for sid in ("DenyOtherEncryption", "DenyOtherKeys")}
    sse, key_id = "s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id"
    requests = {"no header": {}, "the media key": {sse: "aws:kms", key_id: "media-key"}, "AES256": {sse: "AES256"},
                "another key": {sse: "aws:kms", key_id: "other"}}
    denied = {name: sorted(sid for sid, c in conditions.items() if condition_holds(c, request))
              for name, request in requests.items()}
    assert denied == {"no header": [], "the media key": [], "AES256": ["DenyOtherEncryption"],
                      "another key": ["DenyOtherKeys"]}
    assert statements["DenyCustomerProvidedKeys"]["Condition"] == {
        "Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}}


@pytest.mark.parametrize("env", ENVS)
def test_the_media_key_is_used_through_s3_only(templates, env):
    policy = templates[env]["media"]["Resources"]["MediaKey"]["Properties"]["KeyPolicy"]
    users = [s for s in policy["Statement"] if any(a in ("kms:Decrypt", "kms:Encrypt") for a in s["Action"])]
    assert len(users) == 1
    assert json.dumps(users[0]["Condition"]["StringEquals"]["kms:ViaService"]) == json.dumps(
        [{"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}])


def test_the_media_tier_consumes_nothing_so_it_deploys_beside_network(templates):
    assert media.CONSUMES == ()
    assert "DependsOn" not in templates["dev"]["main"]["Resources"]["MediaStack"]


@pytest.mark.parametrize("changes, message", [
    ({"media_source_expiry_days": -1}, "media_source_expiry_days -1"),
    ({"media_source_expiry_days": 4000}, "media_source_expiry_days 4000"),
    ({"media_bucket_budget_gib": 0}, "media_bucket_budget_gib 0"),
])
def test_media_settings_are_validated(changes, message):
    with pytest.raises(ConfigError, match=message):
        config.override(config.get("dev"), **changes)


def test_the_bucket_size_alarm_reads_the_daily_metric_of_standard_storage(templates):
    alarm = templates["prod"]["operations"]["Resources"]["MediaBucketSizeAlarm"]["Properties"]
    assert alarm["Period"] == 86400, "S3 reports storage once a day: a 5-minute period would never see a point"
    assert {"Name": "StorageType", "Value": "StandardStorage"} in alarm["Dimensions"]
    assert alarm["Threshold"] == config.get("prod").media_bucket_budget_gib * 2 ** 30
