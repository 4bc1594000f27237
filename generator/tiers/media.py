"""media: the media bucket (clients' sources under sources/, the processor's outputs under outputs/) and its key.

A tier of its own rather than part of storage: it consumes nothing (no VPC, no database), so it deploys in parallel
with network; its key is used through S3 only, while the data key serves RDS, EFS and Secrets Manager; and a
change to the bucket never touches the stack that holds the database.

One bucket with two prefixes rather than two buckets: one key, one policy and one set of alarms, and the grants
that keep them apart (API: sources/ only; task: read sources/, write outputs/) are per prefix anyway.
"""

from __future__ import annotations

from awacs import s3 as s3_actions
from awacs.aws import (
    Condition,
    Deny,
    Null,
    PolicyDocument,
    Principal,
    Statement,
    StringNotEquals,
)
from troposphere import AWS_ACCOUNT_ID, GetAtt, Ref, Sub, Template
from troposphere.s3 import (
    AbortIncompleteMultipartUpload,
    Bucket,
    BucketEncryption,
    BucketPolicy,
    EventBridgeConfiguration,
    LifecycleConfiguration,
    LifecycleRule,
    MetricsConfiguration,
    NoncurrentVersionExpiration,
    NotificationConfiguration,
    OwnershipControls,
    OwnershipControlsRule,
    PublicAccessBlockConfiguration,
    ServerSideEncryptionByDefault,
    ServerSideEncryptionRule,
    VersioningConfiguration,
)

from generator import blocks, contracts, names
from generator.alarms import GIB, GT, AlarmSpec
from generator.config import EnvConfig
from generator.functions.video_jobs import contract

CONSUMES: tuple[contracts.Contract, ...] = ()
PRODUCES = (contracts.MEDIA_BUCKET_NAME, contracts.MEDIA_BUCKET_ARN, contracts.MEDIA_KEY_ARN)

# S3 request metrics per prefix (the filter's id is the metrics' FilterId dimension): what clients upload
# (sources/) and what the processor writes and clients fetch (outputs/). Request metrics exist only for a filter.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/metrics-configurations.html
SOURCES_METRICS_ID = "sources"
OUTPUTS_METRICS_ID = "outputs"
# An incomplete multipart upload's parts are billed until it is aborted; a client resumes within a day. In the
# function contract: the scheduler counts open uploads within the same window (OpenUploads).
ABORT_INCOMPLETE_UPLOADS_DAYS = contract.ABORT_INCOMPLETE_UPLOADS_DAYS

BUCKET_DIMENSIONS = (("BucketName", contracts.MEDIA_BUCKET_NAME),)
# Failure modes (generator/alarms.py): the operations tier builds them, the runbook shows them.
ALARMS = (
    AlarmSpec(
        "MediaBucketSizeAlarm", "media-bucket-size", "AWS/S3", "BucketSizeBytes", BUCKET_DIMENSIONS, "Maximum", GT,
        "media_bucket_budget_gib", "ignore",
        "The media bucket's standard storage grew beyond media_bucket_budget_gib (S3 reports it once a day)",
        "Which prefix grew (S3 Storage Lens or an inventory): sources piling up, outputs of retried attempts, "
        "noncurrent versions",
        "Expire sources sooner (media_source_expiry_days), delete old attempts' outputs, or raise the budget",
        scale=GIB, fixed_dimensions=(("StorageType", "StandardStorage"),), period=86400),
    AlarmSpec(
        "MediaOutputsServerErrorsAlarm", "media-outputs-5xx", "AWS/S3", "5xxErrors", BUCKET_DIMENSIONS, "Sum", GT, 0,
        "notBreaching",
        "S3 answered a request on outputs/ (the processor's writes, the API's reads) with a server error",
        "The processor's log group for the failed call; the AWS Health dashboard for S3 in the region",
        "The processor retries with the SDK's back-off; a failed attempt can be submitted again (attempt n+1)",
        fixed_dimensions=(("FilterId", OUTPUTS_METRICS_ID),)),
    AlarmSpec(
        "MediaOutputsClientErrorsAlarm", "media-outputs-4xx", "AWS/S3", "4xxErrors", BUCKET_DIMENSIONS, "Sum", GT, 0,
        "notBreaching",
        "S3 refused a request on outputs/ (access denied, wrong encryption, missing key): a grant or the bucket "
        "policy disagrees with what the processor does",
        "The processor's log group (error code and key); the task role's policy and the bucket policy",
        "Fix the grant (compute tier) or the processor's key layout (contract.outputs_prefix), then resubmit",
        fixed_dimensions=(("FilterId", OUTPUTS_METRICS_ID),)),
)


def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing media: the media bucket (sources and outputs) and its key")
    key = blocks.kms_key(t, cfg, "MediaKey", "Encrypts the media bucket's objects",
                         names.env_prefixed(cfg.name, "media"), [blocks.via_services_statement(["s3"])])
    key_arn = GetAtt(key, "Arn")
    bucket = t.add_resource(Bucket(
        "MediaBucket",
        # No BucketName: a retained bucket with a fixed name would block re-creating the stack (names are global).
        BucketEncryption=BucketEncryption(ServerSideEncryptionConfiguration=[ServerSideEncryptionRule(
            ServerSideEncryptionByDefault=ServerSideEncryptionByDefault(SSEAlgorithm="aws:kms",
                                                                        KMSMasterKeyID=key_arn),
            # One data key per bucket instead of one KMS request per object.
            # https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-key.html
            BucketKeyEnabled=True)]),
        PublicAccessBlockConfiguration=PublicAccessBlockConfiguration(
            BlockPublicAcls=True, BlockPublicPolicy=True, IgnorePublicAcls=True, RestrictPublicBuckets=True),
        OwnershipControls=OwnershipControls(Rules=[OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]),
        # Everywhere, not only in prod: the object version is the key of admission (one job per version).
        VersioningConfiguration=VersioningConfiguration(Status="Enabled"),
        LifecycleConfiguration=LifecycleConfiguration(Rules=lifecycle_rules(cfg)),
        # Object Created events go to EventBridge (the jobs tier's rule admits a job per source version).
        NotificationConfiguration=NotificationConfiguration(
            EventBridgeConfiguration=EventBridgeConfiguration(EventBridgeEnabled=True)),
        MetricsConfigurations=[MetricsConfiguration(Id=SOURCES_METRICS_ID, Prefix=contract.SOURCES_PREFIX),
                               MetricsConfiguration(Id=OUTPUTS_METRICS_ID, Prefix=contract.OUTPUTS_PREFIX)],
        Tags=blocks.tags(cfg, Name=names.env_prefixed(cfg.name, "media")),
        Metadata=blocks.checkov_skip(
            ("CKV_AWS_18", "requests are recorded by CloudTrail data events of the account's trail, not by S3 "
                           "server access logs to a second bucket"),
            ("CKV_AWS_144", "sources can be uploaded again and outputs made again; no second region by design"),
        ),
        **blocks.retention_policies(cfg),
    ))
    t.add_resource(BucketPolicy("MediaBucketPolicy", Bucket=Ref(bucket),
                                PolicyDocument=bucket_policy(GetAtt(bucket, "Arn"), key_arn)))
    blocks.output(t, contracts.MEDIA_BUCKET_NAME, Ref(bucket))
    blocks.output(t, contracts.MEDIA_BUCKET_ARN, GetAtt(bucket, "Arn"))
    blocks.output(t, contracts.MEDIA_KEY_ARN, key_arn)
    return t


def lifecycle_rules(cfg: EnvConfig) -> list[LifecycleRule]:
    """Incomplete multipart uploads aborted after a day, everywhere; where the environment says so, sources
    expire that many days after their upload, their older versions a day after they stopped being current."""
    rules = [LifecycleRule(Id="AbortIncompleteUploads", Status="Enabled", Prefix="",
                           AbortIncompleteMultipartUpload=AbortIncompleteMultipartUpload(
                               DaysAfterInitiation=ABORT_INCOMPLETE_UPLOADS_DAYS))]
    if cfg.media_source_expiry_days:
        rules.append(LifecycleRule(Id="ExpireSources", Status="Enabled", Prefix=contract.SOURCES_PREFIX,
                                   ExpirationInDays=cfg.media_source_expiry_days,
                                   NoncurrentVersionExpiration=NoncurrentVersionExpiration(NoncurrentDays=1)))
    return rules


def bucket_policy(bucket_arn, key_arn) -> PolicyDocument:
    """TLS only; principals of this account only; no upload asking for another encryption than the bucket's key.

    An upload that names no encryption gets the bucket's default (the media key): presigned PUTs need not sign a
    header. One that names SSE-S3, another key or a customer-provided key (SSE-C) is refused.
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/specifying-kms-encryption.html
    """
    everything = [bucket_arn, Sub("${Bucket}/*", Bucket=bucket_arn)]
    objects = [Sub("${Bucket}/*", Bucket=bucket_arn)]
    return PolicyDocument(Version="2012-10-17", Statement=[
        blocks.deny_insecure_transport([s3_actions.Action("*")], everything),
        Statement(Sid="DenyOtherAccounts", Effect=Deny, Principal=Principal("*"), Action=[s3_actions.Action("*")],
                  Resource=everything,
                  Condition=Condition(StringNotEquals("aws:PrincipalAccount", Ref(AWS_ACCOUNT_ID)))),
        # Deny a request that names another encryption or key; one that names none gets the bucket's default (this
        # key), so a client need not send the headers. Not ...IfExists: a missing key makes those true, which would
        # deny every upload without the headers, UploadPart included (IAM User Guide, "...IfExists condition
        # operators": https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IfExists).
        Statement(Sid="DenyOtherEncryption", Effect=Deny, Principal=Principal("*"), Action=[s3_actions.PutObject],
                  Resource=objects,
                  Condition=Condition([Null("s3:x-amz-server-side-encryption", "false"),
                                       StringNotEquals("s3:x-amz-server-side-encryption", "aws:kms")])),
        Statement(Sid="DenyOtherKeys", Effect=Deny, Principal=Principal("*"), Action=[s3_actions.PutObject],
                  Resource=objects,
                  Condition=Condition([Null("s3:x-amz-server-side-encryption-aws-kms-key-id", "false"),
                                       StringNotEquals("s3:x-amz-server-side-encryption-aws-kms-key-id", key_arn)])),
        Statement(Sid="DenyCustomerProvidedKeys", Effect=Deny, Principal=Principal("*"),
                  Action=[s3_actions.PutObject], Resource=objects,
                  Condition=Condition(Null("s3:x-amz-server-side-encryption-customer-algorithm", "false"))),
    ])
