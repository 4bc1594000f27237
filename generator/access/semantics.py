"""What AWS documents about the calls the access proof evaluates: names, services and contexts, each with its page.

The principal semantics of endpoint and key policies live in generator.access.policy, where they are applied.
"""

from __future__ import annotations

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
# With SSE-KMS, writing an object needs kms:GenerateDataKey, reading it kms:Decrypt, and a multipart upload both;
# S3's context is the object's ARN, or the bucket's with an S3 Bucket Key.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#encryption-context
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html#mpuAndPermissions
S3_KMS = {"PutObject": ("kms:GenerateDataKey",), "CreateMultipartUpload": ("kms:GenerateDataKey", "kms:Decrypt"),
          "UploadPart": ("kms:GenerateDataKey", "kms:Decrypt"),
          "CompleteMultipartUpload": ("kms:GenerateDataKey", "kms:Decrypt"),
          "GetObject": ("kms:Decrypt",), "HeadObject": ("kms:Decrypt",)}
S3_CONTEXT = "aws:s3:arn"
# Request headers S3 exposes as condition keys (absent when the request does not send them: a bucket's default
# encryption applies after the policy is evaluated).
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html
S3_HEADER_KEYS = {"ServerSideEncryption": "s3:x-amz-server-side-encryption",
                  "SSEKMSKeyId": "s3:x-amz-server-side-encryption-aws-kms-key-id"}

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
