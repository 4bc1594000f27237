"""RDS log groups: a CloudFormation custom resource (Custom::AdoptedLogGroup) that owns one log group RDS exports a
database log to, under the stack's KMS key and retention.

RDS publishes each exported log to `/aws/rds/instance/<DBInstanceIdentifier>/<log type>` and creates that group
itself if it does not exist, with CloudWatch Logs' own encryption and no expiry ("Publishing database logs to
Amazon CloudWatch Logs", https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_LogAccess.Procedural.UploadtoCloudWatch.html).
The database has no fixed identifier (a custom name would forbid its replacement), so the template cannot declare
the group as an AWS::Logs::LogGroup before RDS creates it: this function creates it, or adopts it when RDS was
first (AssociateKmsKey: only events ingested afterwards are under the key), and sets the retention.

Properties, named like AWS::Logs::LogGroup's so that the review diff reads the resource as a log group:
LogGroupName, KmsKeyId, RetentionInDays, DeletionProtectionEnabled ("true" or absent). The physical id is the
group's name: a new name (a replaced database) is a new group, and CloudFormation then deletes the old resource
unless its UpdateReplacePolicy keeps it. Delete removes the group; CloudFormation only asks where the
DeletionPolicy is Delete (environments that keep no data). Every outcome goes to the request's pre-signed
ResponseURL (the cfn-response protocol). Standard library and the runtime's boto3 only.
"""

from __future__ import annotations

import json
import urllib.request

REASON_LIMIT = 3000  # CloudFormation shows the reason; keep it short of its 4 KiB response limit


def logs_client():
    import boto3  # in the Lambda runtime; imported here so that tests can pass their own client

    return boto3.client("logs")


def own(logs, props: dict) -> str:
    """Create the group under the key, or adopt it (associate the key); set its retention. Returns what it did."""
    name, key = props["LogGroupName"], props["KmsKeyId"]
    try:
        logs.create_log_group(logGroupName=name, kmsKeyId=key)
        done = "created"
    except logs.exceptions.ResourceAlreadyExistsException:
        logs.associate_kms_key(logGroupName=name, kmsKeyId=key)
        done = "adopted"
    logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
    if str(props.get("DeletionProtectionEnabled", "")).lower() == "true":
        logs.put_log_group_deletion_protection(logGroupIdentifier=name, deletionProtectionEnabled=True)
    return f"{done} {name}: key {key}, retention {props['RetentionInDays']} days"


def remove(logs, name: str) -> str:
    try:
        logs.delete_log_group(logGroupName=name)
    except logs.exceptions.ResourceNotFoundException:
        return f"{name} was already gone"
    return f"deleted {name}"


def respond(event: dict, status: str, reason: str, physical: str) -> None:
    body = json.dumps({
        "Status": status, "Reason": reason[:REASON_LIMIT], "PhysicalResourceId": physical,
        "StackId": event["StackId"], "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"], "Data": {},
    }).encode("utf-8")
    # The pre-signed URL is signed for an empty content type.
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT",
                                     headers={"Content-Type": "", "Content-Length": str(len(body))})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def handler(event: dict, context, logs=None) -> None:
    props = event.get("ResourceProperties", {})
    # A failed Create has no group to delete: its physical id is not a group name.
    physical = event.get("PhysicalResourceId") or f"failed-{event.get('RequestId', 'create')}"
    try:
        client = logs or logs_client()
        if event["RequestType"] == "Delete":
            reason = remove(client, physical) if physical.startswith("/") else "nothing was created"
        else:
            reason = own(client, props)
            physical = props["LogGroupName"]
        status = "SUCCESS"
    except Exception as error:  # every failure must reach CloudFormation, or the stack waits for an hour
        status = "FAILED"
        where = f" (log stream {context.log_stream_name})" if getattr(context, "log_stream_name", None) else ""
        reason = f"{type(error).__name__}: {error}{where}"
    print(json.dumps({"RequestType": event.get("RequestType"), "Status": status, "Reason": reason}))
    respond(event, status, reason, physical)
