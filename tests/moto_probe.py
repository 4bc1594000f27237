"""Probe moto for each behaviour deploytools.moto_layer.cloudformation corrects; run in a fresh interpreter.

    python tests/moto_probe.py [--patched]   prints {workaround name: True if moto behaves like AWS}

A separate process because the workarounds patch moto for the whole interpreter.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import boto3
from moto import mock_aws

REGION = "ap-northeast-1"
BUCKET = "probe-templates"


def _template(resources: dict[str, Any], outputs: dict[str, Any] | None = None,
              parameters: dict[str, Any] | None = None) -> str:
    return json.dumps({"Resources": resources, "Outputs": outputs or {}, "Parameters": parameters or {}})


def _ok(call: Callable[[], Any]) -> bool:
    try:
        return bool(call())
    except Exception:
        return False


def _via_change_set(cfn: Any, name: str, body: str) -> dict[str, Any]:
    cs = cfn.create_change_set(StackName=name, ChangeSetName="probe", TemplateBody=body, ChangeSetType="CREATE")
    cfn.execute_change_set(ChangeSetName=cs["Id"])
    return cfn.describe_stacks(StackName=name)["Stacks"][0]


def _nested_parent(s3: Any) -> str:
    child = _template({"Topic": {"Type": "AWS::SNS::Topic"}},
                      {"TopicArn": {"Value": {"Ref": "Topic"}}})
    s3.put_object(Bucket=BUCKET, Key="child.json", Body=child)
    return _template(
        {"Child": {"Type": "AWS::CloudFormation::Stack",
                   "Properties": {"TemplateURL": f"https://s3.amazonaws.com/{BUCKET}/child.json"}}},
        {"TopicArn": {"Value": {"Fn::GetAtt": ["Child", "Outputs.TopicArn"]}}})


def _state_machine(cfn: Any, stack: str, topic: str = "arn:aws:sns:probe", update: bool = False) -> dict[str, Any]:
    """Deploy (or update) a state machine written as this project writes one; describe it through the Step
    Functions API."""
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": "${TopicArn}", "End": True}}}
    body = _template({
        "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": f"/probe/{stack}"}},
        "Machine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
            "StateMachineName": stack, "RoleArn": "arn:aws:iam::123456789012:role/probe",
            "Definition": definition, "DefinitionSubstitutions": {"TopicArn": topic},
            "LoggingConfiguration": {"Level": "ALL", "IncludeExecutionData": True, "Destinations": [
                {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["Logs", "Arn"]}}}]},
            "TracingConfiguration": {"Enabled": True}}}})
    (cfn.update_stack if update else cfn.create_stack)(StackName=stack, TemplateBody=body)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    [arn] = [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"] if m["name"] == stack]
    return sfn.describe_state_machine(stateMachineArn=arn)


def probe_with_executions() -> dict[str, bool]:
    """What needs moto's state machine execution enabled (a config of its own)."""
    cfn = boto3.client("cloudformation", region_name=REGION)
    return {"state_machines_where_the_api_looks": _ok(lambda: _state_machine(cfn, "sfnapi")["stateMachineArn"])}


def probe() -> dict[str, bool]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    parent = _nested_parent(s3)

    def getatt() -> bool:
        cfn.create_stack(StackName="getatt", TemplateBody=parent)
        outputs = cfn.describe_stacks(StackName="getatt")["Stacks"][0].get("Outputs") or []
        return any(o["OutputValue"].startswith("arn:aws:sns:") for o in outputs)

    def change_set_outputs() -> bool:
        body = _template({"Topic": {"Type": "AWS::SNS::Topic"}}, {"TopicArn": {"Value": {"Ref": "Topic"}}})
        return bool(_via_change_set(cfn, "csout", body).get("Outputs"))

    def placeholders() -> bool:
        body = _template({"Cache": {"Type": "AWS::ElastiCache::ReplicationGroup", "Properties": {
                              "ReplicationGroupDescription": "probe"}},
                          "User": {"Type": "AWS::ElastiCache::User", "Properties": {
                              "Engine": "redis", "UserId": "probe-user", "UserName": "probe-user",
                              "AccessString": "on ~* +@all", "AuthenticationMode": {"Type": "iam"}}}},
                         {"CacheAddress": {"Value": {"Fn::GetAtt": ["Cache", "PrimaryEndPoint.Address"]}},
                          "UserRef": {"Value": {"Ref": "User"}}})
        cfn.create_stack(StackName="placeholder", TemplateBody=body)
        stack = cfn.describe_stacks(StackName="placeholder")["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
        # Ref of an ElastiCache user is its UserId (the name the local Redis knows it by).
        return stack["StackStatus"] == "CREATE_COMPLETE" and bool(outputs.get("CacheAddress")) \
            and outputs.get("UserRef") == "probe-user"

    def events() -> bool:
        body = _template({"Topic": {"Type": "AWS::SNS::Topic"}})
        _via_change_set(cfn, "events", body)
        evs = cfn.describe_stack_events(StackName="events")["StackEvents"]
        return any(e["LogicalResourceId"] == "Topic" and e["ResourceStatus"] == "CREATE_COMPLETE" for e in evs)

    def rollback() -> bool:
        body = _template({"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "bad name!"}}})
        try:
            status = _via_change_set(cfn, "rollback", body)["StackStatus"]
        except Exception:
            return False
        evs = cfn.describe_stack_events(StackName="rollback")["StackEvents"]
        return status == "ROLLBACK_COMPLETE" and any(e["ResourceStatus"] == "CREATE_FAILED" for e in evs)

    def kms() -> bool:
        body = _template({"Key": {"Type": "AWS::KMS::Key", "Properties": {
            "KeyPolicy": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "kms:*", "Resource": "*"}]},
            "Tags": [{"Key": "Environment", "Value": "dev"}]}}})
        _via_change_set(cfn, "kms", body)
        kms_client = boto3.client("kms", region_name=REGION)
        key_id = kms_client.list_keys()["Keys"][0]["KeyId"]
        policy = kms_client.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
        return json.loads(policy)["Version"] == "2012-10-17" and kms_client.describe_key(KeyId=key_id)

    def rds_refs() -> bool:
        body = _template({"Params": {"Type": "AWS::RDS::DBParameterGroup", "Properties": {
            "Description": "probe", "Family": "postgres16", "Parameters": {}}}},
            {"GroupName": {"Value": {"Ref": "Params"}}})
        cfn.create_stack(StackName="rdsref", TemplateBody=body)
        value = cfn.describe_stacks(StackName="rdsref")["Stacks"][0]["Outputs"][0]["OutputValue"]
        return value and "DBParameterGroup object" not in value and "<" not in value

    def rds_identifier() -> bool:
        body = _template({"Database": {"Type": "AWS::RDS::DBInstance", "Properties": {
            "Engine": "postgres", "DBInstanceClass": "db.t4g.micro", "AllocatedStorage": "20",
            "MasterUsername": "probe", "MasterUserPassword": "probe-password-1"}}},
            {"Id": {"Value": {"Ref": "Database"}}})
        name = "video-pipeline-staging-StorageStack-1A2B3C4D5E6F7"  # as long as a nested stack's name
        cfn.create_stack(StackName=name, TemplateBody=body)
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        return stack["StackStatus"] == "CREATE_COMPLETE" and len(stack["Outputs"][0]["OutputValue"]) <= 63

    def efs() -> bool:
        body = _template({"Fs": {"Type": "AWS::EFS::FileSystem"},
                          "Ap": {"Type": "AWS::EFS::AccessPoint", "Properties": {"FileSystemId": {"Ref": "Fs"}}}},
                         {"ApArn": {"Value": {"Fn::GetAtt": ["Ap", "Arn"]}},
                          "FsArn": {"Value": {"Fn::GetAtt": ["Fs", "Arn"]}}})
        cfn.create_stack(StackName="efsap", TemplateBody=body)
        outputs = cfn.describe_stacks(StackName="efsap")["Stacks"][0]["Outputs"]
        return len(outputs) == 2 and all(o["OutputValue"].startswith("arn:") for o in outputs)

    def state_machine() -> bool:
        described = _state_machine(cfn, "sfnprops")
        updated = _state_machine(cfn, "sfnprops", topic="arn:aws:sns:updated", update=True)
        return ("arn:aws:sns:probe" in described["definition"]
                and described["loggingConfiguration"]["level"] == "ALL"
                and described["loggingConfiguration"]["destinations"][0]["cloudWatchLogsLogGroup"]["logGroupArn"]
                and described["tracingConfiguration"]["enabled"] is True
                and "arn:aws:sns:updated" in updated["definition"]
                and updated["loggingConfiguration"]["level"] == "ALL" and updated["tracingConfiguration"]["enabled"])

    def rds_getatt() -> bool:
        body = _template({"Db": {"Type": "AWS::RDS::DBInstance", "Properties": {
            "Engine": "postgres", "DBInstanceClass": "db.t4g.micro", "AllocatedStorage": "20",
            "MasterUsername": "master", "ManageMasterUserPassword": True}}},
            {"ResourceId": {"Value": {"Fn::GetAtt": ["Db", "DbiResourceId"]}},
             "SecretArn": {"Value": {"Fn::GetAtt": ["Db", "MasterUserSecret.SecretArn"]}}})
        cfn.create_stack(StackName="rdsgetatt", TemplateBody=body)
        outputs = {o["OutputKey"]: o["OutputValue"]
                   for o in cfn.describe_stacks(StackName="rdsgetatt")["Stacks"][0].get("Outputs", [])}
        return (outputs.get("ResourceId", "").startswith("db-")
                and outputs.get("SecretArn", "").startswith("arn:aws:secretsmanager:"))

    def custom() -> bool:
        body = _template({"Custom": {"Type": "Custom::Probe", "Properties": {
            "ServiceToken": f"arn:aws:lambda:{REGION}:123456789012:function:absent", "AppRole": "probe_role"}}},
            {"Role": {"Value": {"Fn::GetAtt": ["Custom", "AppRole"]}}})
        cfn.create_stack(StackName="custom", TemplateBody=body)
        stack = cfn.describe_stacks(StackName="custom")["Stacks"][0]
        return stack["StackStatus"] == "CREATE_COMPLETE" and stack["Outputs"][0]["OutputValue"] == "probe_role"

    def bucket() -> bool:
        body = _template({"Media": {"Type": "AWS::S3::Bucket", "Properties": {
            "VersioningConfiguration": {"Status": "Enabled"},
            "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}}}},
            {"Name": {"Value": {"Ref": "Media"}}})
        cfn.create_stack(StackName="bucket", TemplateBody=body)
        name = cfn.describe_stacks(StackName="bucket")["Stacks"][0]["Outputs"][0]["OutputValue"]
        sqs, events = boto3.client("sqs", region_name=REGION), boto3.client("events", region_name=REGION)
        queue = sqs.create_queue(QueueName="bucket-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="created", EventPattern=json.dumps({"source": ["aws.s3"],
                                                                 "detail-type": ["Object Created"]}))
        events.put_targets(Rule="created", Targets=[{"Id": "q", "Arn": arn}])
        version = s3.put_object(Bucket=name, Key="sources/v", Body=b"x").get("VersionId")
        sent = sqs.receive_message(QueueUrl=queue).get("Messages", [])
        return version not in (None, "null") and len(sent) == 1

    def lambda_target() -> bool:
        sqs, events = boto3.client("sqs", region_name=REGION), boto3.client("events", region_name=REGION)
        s3.create_bucket(Bucket="probe-lambda-target", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_notification_configuration(Bucket="probe-lambda-target", NotificationConfiguration={
            "EventBridgeConfiguration": {}})
        queue = sqs.create_queue(QueueName="after-a-lambda-target")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        pattern = json.dumps({"source": ["aws.s3"], "detail": {"bucket": {"name": ["probe-lambda-target"]}}})
        events.put_rule(Name="to-a-lambda", EventPattern=pattern)
        events.put_targets(Rule="to-a-lambda", Targets=[
            {"Id": "f", "Arn": f"arn:aws:lambda:{REGION}:123456789012:function:scheduler"}])
        events.put_rule(Name="to-a-queue", EventPattern=pattern)
        events.put_targets(Rule="to-a-queue", Targets=[{"Id": "q", "Arn": arn}])
        s3.put_object(Bucket="probe-lambda-target", Key="sources/v", Body=b"x")
        return len(sqs.receive_message(QueueUrl=queue).get("Messages", [])) == 1

    return {
        "rule_lambda_targets_skipped": _ok(lambda_target),
        "s3_bucket_properties": _ok(bucket),
        "state_machine_properties": _ok(state_machine),
        "rds_instance_getatt": _ok(rds_getatt),
        "custom_resources_succeed": _ok(custom),
        "efs_getatt": _ok(efs),
        "rds_group_refs": _ok(rds_refs),
        "rds_generated_identifier": _ok(rds_identifier),
        "nested_stack_output_getatt": _ok(getatt),
        "change_set_execution_state": _ok(change_set_outputs),
        "placeholders_for_unmodelled_types": _ok(placeholders),
        "resource_events": _ok(events),
        "rollback_on_failure": _ok(rollback),
        "kms_key_properties": _ok(kms),
    }


def main() -> int:
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    if "--patched" in sys.argv:
        from deploytools.moto_layer import cloudformation

        cloudformation.apply_all()
    print(json.dumps(_run_each(), sort_keys=True))
    return 0


def _run_each() -> dict[str, bool]:
    with mock_aws():
        results = probe()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        results.update(probe_with_executions())
    return results


if __name__ == "__main__":
    sys.exit(main())
