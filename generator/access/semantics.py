"""What AWS documents about the calls the access proof evaluates: names, services and contexts, each with its page.

The principal semantics of endpoint and key policies live in generator.access.policy, where they are applied.
"""

from __future__ import annotations

import re

from generator import contracts

# A custom resource's ResponseURL is an S3 URL CloudFormation pre-signs in a bucket of its own, named
# `cloudformation-custom-resource-response-<region without dashes>` (`...-uswest2`, `...-apnortheast1`): an
# endpoint policy on the route to S3 must let that PUT through.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/vpc-interface-endpoints.html (custom resources)
RESPONSE_URL = "ResponseURL"  # the recorded parameter's symbol: the request's pre-signed ResponseURL
RESPONSE_URL_PARAMETER = "URL"
SAMPLE_RESPONSE_KEY = "arn%3Aaws%3Acloudformation/stack/0/request-id"


def custom_resource_response_bucket(region: str) -> str:
    return f"cloudformation-custom-resource-response-{region.replace('-', '')}"


# ECR keeps image layers in an AWS-owned bucket per region, fetched from the task's subnets with a URL ECR pre-signs.
# https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html#ecr-setting-up-s3-gateway
def ecr_layer_bucket(region: str) -> str:
    return f"prod-{region}-starport-layer-bucket"


ECR_PULL = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")

# kms:ViaService is `<service>.<region>.amazonaws.com` for a request a service makes with the caller's credentials.
# https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-via-service
def via_service(service: str, region: str) -> str:
    return f"{service}.{region}.amazonaws.com"


# CloudWatch Logs uses a log group's key as its regional service principal, with the group's ARN (no `:*`) as the
# encryption context `aws:logs:arn`; it generates data keys and decrypts.
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html
def logs_principal(region: str) -> str:
    return f"logs.{region}.amazonaws.com"


LOGS_CONTEXT = "aws:logs:arn"
LOGS_KMS = ("kms:GenerateDataKey", "kms:Decrypt")

# A publisher to an encrypted topic needs kms:GenerateDataKey* and kms:Decrypt on its key; SNS's context is the
# topic ARN. https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#sns-what-permissions-for-sse
SNS_PUBLISH_KMS = ("kms:GenerateDataKey", "kms:Decrypt")
SNS_CONTEXT = "aws:sns:topicArn"

# A producer to an encrypted queue likewise; SQS's context is the queue ARN.
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html
SQS_SEND_KMS = ("kms:GenerateDataKey", "kms:Decrypt")
SQS_CONTEXT = "aws:sqs:arn"

# Secrets Manager decrypts a secret's value with the caller's kms:Decrypt, the secret's ARN as context `SecretARN`.
# https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html
SECRETS_CONTEXT = "SecretARN"

# A transaction is authorized per item, as the item action it performs.
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html
DYNAMODB_TRANSACTIONS = ("TransactWriteItems", "TransactGetItems")
DYNAMODB_TRANSACTION_ITEM = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem",
                             "Delete": "dynamodb:DeleteItem", "ConditionCheck": "dynamodb:ConditionCheckItem",
                             "Get": "dynamodb:GetItem"}

# The action S3 authorizes each operation as; object operations on `arn:aws:s3:::<bucket>/<key>`, bucket ones on the
# bucket. https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html
S3_ACTIONS = {"PutObject": "s3:PutObject", "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
              "CompleteMultipartUpload": "s3:PutObject", "GetObject": "s3:GetObject", "HeadObject": "s3:GetObject",
              "AbortMultipartUpload": "s3:AbortMultipartUpload", "ListParts": "s3:ListMultipartUploadParts",
              "DeleteObject": "s3:DeleteObject", "ListObjectsV2": "s3:ListBucket", "HeadBucket": "s3:ListBucket",
              "ListMultipartUploads": "s3:ListBucketMultipartUploads"}
S3_BUCKET_OPERATIONS = ("ListObjectsV2", "HeadBucket", "ListMultipartUploads")
# Reading a version by its VersionId is s3:GetObjectVersion, not s3:GetObject (GetObject's and HeadObject's
# "Permissions": https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html,
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html).
S3_VERSION_ACTIONS = {"GetObject": "s3:GetObjectVersion", "HeadObject": "s3:GetObjectVersion"}
# A listing's Prefix is the condition key s3:prefix of its s3:ListBucket (absent when the request sends none).
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html#condition-key-bucket-ops-2
S3_PREFIX_KEY = "s3:prefix"
# A read of a key that is not there answers 404 only to a caller that may also s3:ListBucket the bucket, 403 to
# anyone else (GetObject's and HeadObject's "Permissions", above): a caller that handles "no such key" needs that
# listing. AWS does not document which s3:prefix that check carries; the proof takes the key itself, as Ceph's S3
# emulation does to match AWS (https://github.com/ceph/ceph/pull/68577), and docs/known-gaps.md says so.
S3_MISSING_KEY_ACTION = "s3:ListBucket"
# With SSE-KMS, writing an object needs kms:GenerateDataKey, reading it kms:Decrypt, and a multipart upload both;
# S3's context is the object's ARN, or the bucket's with an S3 Bucket Key. A HEAD returns metadata and decrypts no
# data: no KMS use (the scheduler's ReadSourceMetadata relies on it; docs/known-gaps.md: unobserved).
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#encryption-context
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html#mpuAndPermissions
S3_KMS = {"PutObject": ("kms:GenerateDataKey",), "CreateMultipartUpload": ("kms:GenerateDataKey", "kms:Decrypt"),
          "UploadPart": ("kms:GenerateDataKey", "kms:Decrypt"),
          "CompleteMultipartUpload": ("kms:GenerateDataKey", "kms:Decrypt"),
          "GetObject": ("kms:Decrypt",)}
S3_CONTEXT = "aws:s3:arn"
# Request headers S3 exposes as condition keys (absent when the request does not send them: a bucket's default
# encryption applies after the policy is evaluated).
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html
S3_HEADER_KEYS = {"ServerSideEncryption": "s3:x-amz-server-side-encryption",
                  "SSEKMSKeyId": "s3:x-amz-server-side-encryption-aws-kms-key-id"}

# CloudWatch Logs authorizes group operations on the group's ARN `arn:...:log-group:<name>` and, when the request
# names a key (CreateLogGroup, AssociateKmsKey), uses it as its service principal, bound to the group by the context
# aws:logs:arn (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatchlogs.html,
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html).
LOGS_KEY_OPERATIONS = ("CreateLogGroup", "AssociateKmsKey")

# The rule Step Functions manages for .sync ECS tasks.
# https://docs.aws.amazon.com/step-functions/latest/dg/ecs-iam.html
ECS_SYNC_RULE = "StepFunctionsGetEventsForECSTaskRule"

# boto3 client name -> the service name of its VPC endpoint (com.amazonaws.<region>.<name>).
# https://docs.aws.amazon.com/vpc/latest/privatelink/aws-services-privatelink-support.html
ENDPOINT_SERVICE = {"stepfunctions": "states"}


def execution_arn(state_machine_arn: str, name: str = "video-1-1") -> str:
    """An execution of a state machine: `arn:...:execution:<state machine name>:<execution name>`.
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html#awsstepfunctions-resources-for-iam-policies"""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


# The processor's calls are recorded under this package name; its per-execution variables come from the state
# machine's ContainerOverrides, each read from an execution input of the shape job control starts executions with
# (generator/functions/video_jobs/jobs/lifecycle.py execution_input): the bucket the state machine's MediaBucketName
# substitution names (LocateSource's, and job control's MEDIA_BUCKET by the tier contract).
PROCESSOR_PACKAGE = "processor"
EXECUTION_BUCKET = contracts.MEDIA_BUCKET_NAME.name  # the state machine's substitution of the bucket
SAMPLE_VIDEO, SAMPLE_ATTEMPT, SAMPLE_VERSION = "sample-video", 1, "sample-version"


def sample_execution_input(bucket: str) -> dict:
    from generator.functions.video_jobs import contract as jobs

    return {"videoId": SAMPLE_VIDEO, "attempt": SAMPLE_ATTEMPT,
            "source": {"bucket": bucket, "key": jobs.source_key(SAMPLE_VIDEO), "versionId": SAMPLE_VERSION,
                       "sha256": ""},
            "outputs": {"bucket": bucket, "prefix": jobs.outputs_prefix(SAMPLE_VIDEO, SAMPLE_ATTEMPT)}}


def read_input(path: str, document: dict) -> str | None:
    """A `Value.$` of the forms the state machine uses: `$.a.b`, or `States.Format('...{}...', $.a.b)`; None for
    anything else (the variable is then not given, and a call that needs it is a finding)."""
    formatted = re.fullmatch(r"States\.Format\('([^']*)',\s*(\$[\w.]*)\)", path.strip())
    if formatted:
        value = read_input(formatted.group(2), document)
        return None if value is None else formatted.group(1).replace("{}", value, 1)
    if not path.startswith("$."):
        return None
    found: object = document
    for part in path[2:].split("."):
        if not isinstance(found, dict) or part not in found:
            return None
        found = found[part]
    return None if isinstance(found, dict | list) else str(found)
