"""The error path's own failure reaches the ops topic: behaviour under moto, in process.

What is real here: moto's Step Functions interpreter runs the generated definition (templates/dev/workflow.json,
tests/moto_sfn.py) with the error topic deleted before the execution starts, so `NotifyFailure`'s sns:Publish
fails for real (SNS NotFound, standing in for a disabled key, which moto's SNS does not enforce); moto's
CloudWatch stores the generated `ExecutionsFailedAlarm` and the metric; moto's SNS delivers to a queue
subscribed to the ops topic.

What the test does itself, because moto does not: Step Functions in moto emits no CloudWatch metrics, so the
test puts the `ExecutionsFailed` datapoint AWS would emit for the failed execution; moto never evaluates alarms
nor runs their actions, so the test evaluates the generated alarm's own statistic, operator, threshold and
missing-data treatment against moto's statistics, and publishes the alarm's notification to the ops topic as
CloudWatch would.
"""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
from moto import mock_aws

from generator import contracts

from moto_sfn import ACCOUNT_ID, REGION, drain_queue, generated_definition, run_execution

COMPARE = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


@pytest.fixture(scope="module")
def alarm(templates) -> dict:
    return templates["dev"]["operations"]["Resources"]["ExecutionsFailedAlarm"]["Properties"]


def delete_error_topic(resources) -> dict:
    boto3.client("sns", region_name=REGION).delete_topic(TopicArn=resources.error_topic_arn)
    return {}


def alarm_state(alarm: dict, state_machine_arn: str, failed_executions: int) -> tuple[str, list]:
    """Store the generated alarm in moto's CloudWatch, put what Step Functions would emit, evaluate it the way
    CloudWatch does for one period; publish its notification to the ops topic. (state, messages on the topic)."""
    sns, sqs, cloudwatch = (boto3.client(s, region_name=REGION) for s in ("sns", "sqs", "cloudwatch"))
    topic = sns.create_topic(Name="video-processing-ops-dev")["TopicArn"]
    queue = sqs.create_queue(QueueName="ops")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    [dimension] = alarm["Dimensions"]
    assert dimension["Value"] == {"Ref": contracts.STATE_MACHINE_ARN.name}, "the state machine that failed"
    cloudwatch.put_metric_alarm(
        AlarmName=alarm["AlarmName"], Namespace=alarm["Namespace"], MetricName=alarm["MetricName"],
        Dimensions=[{"Name": dimension["Name"], "Value": state_machine_arn}], Statistic=alarm["Statistic"],
        Period=alarm["Period"], EvaluationPeriods=alarm["EvaluationPeriods"], Threshold=alarm["Threshold"],
        ComparisonOperator=alarm["ComparisonOperator"], TreatMissingData=alarm["TreatMissingData"],
        AlarmActions=[topic], OKActions=[topic])
    now = dt.datetime.now(dt.timezone.utc)
    if failed_executions:
        cloudwatch.put_metric_data(Namespace=alarm["Namespace"], MetricData=[{
            "MetricName": alarm["MetricName"], "Value": failed_executions, "Unit": "Count", "Timestamp": now,
            "Dimensions": [{"Name": dimension["Name"], "Value": state_machine_arn}]}])
    stats = cloudwatch.get_metric_statistics(
        Namespace=alarm["Namespace"], MetricName=alarm["MetricName"],
        Dimensions=[{"Name": dimension["Name"], "Value": state_machine_arn}],
        StartTime=now - dt.timedelta(seconds=alarm["Period"]), EndTime=now + dt.timedelta(seconds=1),
        Period=alarm["Period"], Statistics=[alarm["Statistic"]])["Datapoints"]
    if stats:
        breaching = COMPARE[alarm["ComparisonOperator"]](stats[0][alarm["Statistic"]], alarm["Threshold"])
    else:
        breaching = {"breaching": True, "notBreaching": False}.get(alarm["TreatMissingData"])
    state = {True: "ALARM", False: "OK", None: "INSUFFICIENT_DATA"}[breaching]
    [stored] = cloudwatch.describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"]
    for action in stored["AlarmActions"] if state == "ALARM" else stored["OKActions"]:
        sns.publish(TopicArn=action, Subject=f'{state}: "{alarm["AlarmName"]}"',
                    Message=json.dumps({"AlarmName": alarm["AlarmName"], "NewStateValue": state}))
    return state, drain_queue(queue)


@pytest.mark.slow  # runs the state machine in moto's interpreter (seconds)
def test_a_failed_publish_to_the_error_topic_fails_the_execution_and_reaches_the_ops_topic(templates, alarm):
    result = run_execution(generated_definition(templates), {"videoId": "clip-lost"}, task_exit_code=3,
                           execution_name="clip-lost", substitutions=delete_error_topic)

    # The error path itself failed: NotifyFailure tried to publish, SNS refused, nothing was delivered.
    publishes = [e for e in result.history if e["type"] == "TaskFailed"
                 and e["taskFailedEventDetails"].get("resourceType") == "sns"]
    assert publishes and all(e["taskFailedEventDetails"]["error"].startswith("SNS.") for e in publishes)
    assert result.messages["error"] == [] and result.messages["completion"] == []
    # What the alarm path sees: the execution ended FAILED (AWS/States ExecutionsFailed), with an error that is
    # not the workflow's own ProcessingError, so the operator knows that no error notification went out.
    assert result.status == "FAILED"
    assert result.error.startswith("SNS.") and result.error != "ProcessingError"

    state_machine_arn = result.execution_arn.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0]
    assert state_machine_arn == f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:video-pipeline"
    with mock_aws():  # a fresh account: the ops topic works whatever became of the error topic
        state, messages = alarm_state(alarm, state_machine_arn, failed_executions=1)
    assert state == "ALARM"
    [note] = messages
    assert note.subject == f'ALARM: "{alarm["AlarmName"]}"' and note.message["NewStateValue"] == "ALARM"


def test_without_failed_executions_the_alarm_is_ok_and_says_so(alarm):
    """No datapoint at all (nothing failed, or nothing ran): notBreaching makes it OK, and OK is sent too."""
    with mock_aws():
        state, messages = alarm_state(alarm, f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:video-pipeline",
                                      failed_executions=0)
    assert state == "OK"
    assert [n.message["NewStateValue"] for n in messages] == ["OK"]
