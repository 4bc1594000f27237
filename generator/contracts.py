"""Names shared by a producing tier's Output and a consuming tier's Parameter.

The parent wires every child Parameter to the one earlier tier whose Output has the same name
(or to a parent deploy-time parameter), so a name defined here cannot drift between the two sides.
Each contract carries the description used on both sides and the CloudFormation parameter type.
A tier lists the contracts it consumes and produces (CONSUMES, PRODUCES); physical names are in names.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Contract:
    name: str
    description: str
    type: str = "String"  # nested-stack parameters are strings: lists travel comma-joined

    @property
    def is_list(self) -> bool:
        return self.type == "CommaDelimitedList"


def _c(name: str, description: str, type: str = "String") -> Contract:
    return Contract(name, description, type)


_LIST = "CommaDelimitedList"

# network
VPC_ID = _c("VpcId", "ID of the pipeline VPC")
VPC_CIDR = _c("VpcCidr", "IPv4 range of the pipeline VPC")
PUBLIC_SUBNET_IDS = _c("PublicSubnetIds", "Public subnets (NAT gateways only), comma-joined, one per AZ", _LIST)
PRIVATE_SUBNET_IDS = _c("PrivateSubnetIds", "Private subnets with egress through NAT, comma-joined, one per AZ",
                        _LIST)
DATA_SUBNET_IDS = _c("DataSubnetIds", "Data subnets without any route to the internet, comma-joined, one per AZ",
                     _LIST)
TASK_SECURITY_GROUP_ID = _c("TaskSecurityGroupId", "Security group of the video processing tasks")
API_FUNCTION_SECURITY_GROUP_ID = _c("ApiFunctionSecurityGroupId", "Security group of the API function")
SCHEDULER_FUNCTION_SECURITY_GROUP_ID = _c("SchedulerFunctionSecurityGroupId",
                                          "Security group of the scheduler function (HTTPS out only)")
DATABASE_SECURITY_GROUP_ID = _c("DatabaseSecurityGroupId", "Security group of the PostgreSQL database")
CACHE_SECURITY_GROUP_ID = _c("CacheSecurityGroupId", "Security group of the Redis cache")
DATABASE_BOOTSTRAP_SECURITY_GROUP_ID = _c("DatabaseBootstrapSecurityGroupId",
                                          "Security group of the database bootstrap function")
FILE_SYSTEM_SECURITY_GROUP_ID = _c("FileSystemSecurityGroupId", "Security group of the EFS mount targets")

# storage
DATA_KEY_ARN = _c("DataKeyArn", "ARN of the KMS key encrypting the database, file system and their secrets")
DATABASE_ENDPOINT_ADDRESS = _c("DatabaseEndpointAddress", "Host name of the PostgreSQL database")
DATABASE_ENDPOINT_PORT = _c("DatabaseEndpointPort", "Port of the PostgreSQL database")
DATABASE_MASTER_SECRET_ARN = _c("DatabaseMasterSecretArn", "ARN of the RDS-managed, rotating secret of the database "
                                "master; only the database bootstrap reads it")
DATABASE_RESOURCE_ID = _c("DatabaseResourceId", "Resource ID of the database instance (IAM database authentication "
                          "ARNs name it)")
FILE_SYSTEM_ID = _c("FileSystemId", "ID of the EFS file system holding the media")
FILE_SYSTEM_ARN = _c("FileSystemArn", "ARN of the EFS file system holding the media")
ACCESS_POINT_ID = _c("AccessPointId", "ID of the EFS access point for the media directory")
ACCESS_POINT_ARN = _c("AccessPointArn", "ARN of the EFS access point for the media directory")
DATABASE_IDENTIFIER = _c("DatabaseIdentifier", "Identifier of the PostgreSQL database instance")
DATABASE_LOG_GROUPS_FUNCTION_NAME = _c("DatabaseLogGroupsFunctionName", "Name of the function owning the log groups "
                                      "the database exports to (custom resource)")

# media
MEDIA_BUCKET_NAME = _c("MediaBucketName", "Name of the media bucket (generated): sources/ uploaded by clients, "
                       "outputs/ written by the processor")
MEDIA_BUCKET_ARN = _c("MediaBucketArn", "ARN of the media bucket")
MEDIA_KEY_ARN = _c("MediaKeyArn", "ARN of the KMS key encrypting the media bucket (used through S3 only)")

# cache
CACHE_ENDPOINT_ADDRESS = _c("CacheEndpointAddress", "Host name of the Redis primary endpoint")
CACHE_ENDPOINT_PORT = _c("CacheEndpointPort", "Port of the Redis primary endpoint")
CACHE_USER_ID = _c("CacheUserId", "ElastiCache user of the processor (IAM authentication; user ID and name are equal)")
CACHE_KEY_ARN = _c("CacheKeyArn", "ARN of the KMS key encrypting the cache and its slow log")
CACHE_READER_USER_ID = _c("CacheReaderUserId", "ElastiCache user of the API function: GETs progress keys only (IAM "
                          "authentication; user ID and name are equal)")
CACHE_REPLICATION_GROUP_ID = _c("CacheReplicationGroupId", "ID of the Redis replication group; its nodes are "
                                "<id>-001, <id>-002")

# schema
DATABASE_APP_USERNAME = _c("DatabaseAppUsername", "Database role of the processor (IAM authentication), created by "
                           "the database bootstrap")
DATABASE_BOOTSTRAP_FUNCTION_NAME = _c("DatabaseBootstrapFunctionName", "Name of the function applying the database "
                                     "migrations (custom resource)")

# compute
CLUSTER_NAME = _c("ClusterName", "Name of the ECS cluster running the processing tasks")
CLUSTER_ARN = _c("ClusterArn", "ARN of the ECS cluster running the processing tasks")
TASK_EXECUTION_ROLE_ARN = _c("TaskExecutionRoleArn", "ARN of the role ECS uses to pull images and write logs")
TASK_ROLE_ARN = _c("TaskRoleArn", "ARN of the role the processing container runs as")

# notification
COMPLETION_TOPIC_ARN = _c("CompletionTopicArn", "SNS topic ARN for video processing completion notifications")
COMPLETION_TOPIC_NAME = _c("CompletionTopicName", "SNS topic name for completion notifications")
ERROR_TOPIC_ARN = _c("ErrorTopicArn", "SNS topic ARN for video processing error notifications")
ERROR_TOPIC_NAME = _c("ErrorTopicName", "SNS topic name for error notifications")
NOTIFICATION_KEY_ARN = _c("NotificationKeyArn", "ARN of the KMS key encrypting the topics and the dead-letter queue")
DEAD_LETTER_QUEUE_ARN = _c("DeadLetterQueueArn", "ARN of the SQS queue holding notifications that failed delivery")
DEAD_LETTER_QUEUE_NAME = _c("DeadLetterQueueName", "Name of the SQS queue holding notifications that failed delivery")

# workflow
STATE_MACHINE_ARN = _c("StateMachineArn", "Step Functions state machine ARN for video processing")
STATE_MACHINE_NAME = _c("StateMachineName", "Step Functions state machine name")
TASK_DEFINITION_ARN = _c("TaskDefinitionArn", "ECS task definition ARN for video processing")

# jobs
JOBS_TABLE_NAME = _c("JobsTableName", "Name of the DynamoDB table of video jobs (admission control)")
JOBS_TABLE_ARN = _c("JobsTableArn", "ARN of the DynamoDB table of video jobs")
JOBS_KEY_ARN = _c("JobsKeyArn", "ARN of the KMS key encrypting the job table (used through DynamoDB only)")
SCHEDULER_FUNCTION_NAME = _c("SchedulerFunctionName", "Name of the function releasing slots and admitting queued "
                             "jobs")
EXECUTION_ENDED_RULE_NAME = _c("ExecutionEndedRuleName", "Name of the EventBridge rule handing every ended "
                               "execution to the scheduler")
RECONCILE_RULE_NAME = _c("ReconcileRuleName", "Name of the EventBridge schedule running the scheduler's "
                         "reconciliation")
SOURCE_ARRIVED_RULE_NAME = _c("SourceArrivedRuleName", "Name of the EventBridge rule handing every source uploaded "
                              "to the media bucket to the scheduler (admission on arrival)")

# api
API_URL = _c("ApiUrl", "Invoke URL of the video API stage")
API_ID = _c("ApiId", "ID of the video REST API")
API_FUNCTION_NAME = _c("ApiFunctionName", "Name of the Lambda function behind the video API")
API_NAME = _c("ApiName", "Name of the video REST API (its metrics' ApiName dimension)")
API_STAGE_NAME = _c("ApiStageName", "Name of the video API's stage")

# operations
OPS_TOPIC_ARN = _c("OpsTopicArn", "SNS topic ARN every alarm of the environment notifies, in ALARM and OK")
DASHBOARD_NAME = _c("DashboardName", "Name of the CloudWatch dashboard showing the pipeline's health")

# Deploy-time parameters of the parent, passed through to the children that need them.
PROCESSOR_IMAGE = _c("ProcessorImage", "Container image of the video processor (pin a tag or digest, never latest)")
NOTIFICATION_EMAIL = _c("NotificationEmail", "E-mail address subscribed to both topics; empty for none")
OPS_EMAIL = _c("OpsEmail", "E-mail address subscribed to the ops topic (every alarm); empty for none")
DEPLOY_TIME = (PROCESSOR_IMAGE, NOTIFICATION_EMAIL, OPS_EMAIL)
# The sketch's placeholder processor, at a pinned tag (never `latest`): a deploy says which image it runs.
DEFAULT_PROCESSOR_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.22.35"


def export_name(contract: Contract, env: str) -> str:
    """The sketch's exports (`<Name>-<env>`), kept as a contract with whatever already imports them."""
    return f"{contract.name}-{env}"


# The application database, created by storage and named to the container by workflow.
DATABASE_NAME = "videoprocessing"
# The processor's own database role and schema, created by the schema tier's bootstrap (migrations in
# generator/functions/db_bootstrap/): read and write in that schema, nothing else; IAM authentication on RDS.
DATABASE_APP_ROLE = "video_processor"
DATABASE_APP_SCHEMA = "video_processing"
# The media directory's owner, created by storage's access point (every client of it becomes this user) and the
# user workflow's processing container runs as: files on the media and scratch volumes belong to one user.
MEDIA_UID = MEDIA_GID = "1000"
