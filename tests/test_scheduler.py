"""The scheduler's handling of each way an execution ends, one EventBridge event at a time, against moto's
DynamoDB, SNS and Step Functions: the slot is freed, the job records the outcome, and the scheduler notifies
exactly where the state machine could not (the whole pipeline runs in test_job_control.py).
"""

from __future__ import annotations

import json

import boto3
import pytest

from jobs_harness import contract, emulated_account, fresh_jobs, lifecycle, records, scheduler, table_properties
from moto_sfn import drain_queue, generated_definition

REGION = "us-east-1"  # moto_sfn.drain_queue reads queues there
NOTIFIED = json.dumps({"videoId": "v", "error": "InvalidInput", "cause": "The execution input must be ..."})


@pytest.fixture(scope="module")
def account(templates):
    with emulated_account(REGION):
        yield table_properties(templates)


@pytest.fixture
def queue(account, monkeypatch):
    """A job table, a state machine, an error topic with a queue subscribed; cap 1. Returns the queue URL."""
    fresh_jobs(monkeypatch, account, REGION, cap=1)
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    name = control().store.table.replace("jobs-", "errors-")
    topic = sns.create_topic(Name=name)["TopicArn"]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    monkeypatch.setenv(contract.ENV_ERROR_TOPIC_ARN, topic)
    return url


def control() -> lifecycle.Control:
    """What the scheduler acts on (its environment, its clients)."""
    return scheduler.current_control()


def record(video_id: str, attempt: int) -> dict | None:
    return records.get(control().store, video_id, attempt)


def slots_taken() -> int:
    return records.slots_taken(control().store)


def submit(video_id: str) -> None:
    lifecycle.submit(control(), video_id)


def running(video_id: str) -> dict:
    submit(video_id)
    [started] = lifecycle.admit(control())
    return started


def ended(job: dict, status: str, error: str | None = None, cause: str | None = None) -> dict:
    return {"source": "aws.states", "detail-type": scheduler.STATUS_CHANGE, "detail": {
        "executionArn": job["executionArn"], "status": status, "error": error, "cause": cause,
        "input": json.dumps({"videoId": job["videoId"], "attempt": int(job["attempt"])})}}


ENDINGS = [
    # (ending, status, error, cause) -> (job status, lastError.error, notices the scheduler sends)
    ("success", "SUCCEEDED", None, None, "SUCCEEDED", None, 0),
    ("failure reported by the state machine", "FAILED", "ProcessingError",
     json.dumps({"error": "States.TaskFailed", "cause": "{\"StopCode\": \"EssentialContainerExited\"}"}),
     "FAILED", "States.TaskFailed", 0),
    ("invalid input", "FAILED", "ProcessingError", NOTIFIED, "FAILED", "InvalidInput", 0),
    ("killed task (exit 137)", "FAILED", "ProcessingError",
     json.dumps({"error": "NonZeroExitCode", "cause": "The processing container exited with code 137"}),
     "FAILED", "NonZeroExitCode", 0),
    ("failed notification", "FAILED", "SNS.NotFoundException", "Topic does not exist", "FAILED",
     "SNS.NotFoundException", 1),
    ("timeout", "TIMED_OUT", None, None, "FAILED", "States.TIMED_OUT", 1),
    ("abort", "ABORTED", None, None, "FAILED", "States.ABORTED", 1),
    # An execution started under the older definition, whose capacity path was a Fail state.
    ("no capacity", "FAILED", contract.CAPACITY_UNAVAILABLE, "RunTask found no capacity", "QUEUED",
     contract.CAPACITY_UNAVAILABLE, 0),
]


@pytest.mark.parametrize(("ending", "status", "error", "cause", "job_status", "last_error", "notices"), ENDINGS,
                         ids=[e[0] for e in ENDINGS])
def test_every_ending_frees_the_slot_once_and_notifies_only_where_nobody_did(
        queue, ending, status, error, cause, job_status, last_error, notices):
    job = running("v")
    assert slots_taken() == 1
    event = ended(job, status, error, cause)
    scheduler.lambda_handler(event, None)
    after = record("v", 1)
    assert after["status"] == job_status and slots_taken() == 0
    assert (after.get("lastError") or {}).get("error") == last_error
    scheduler.lambda_handler(event, None)  # EventBridge delivers at least once
    assert record("v", 1) == after and slots_taken() == 0, "a repeated event changes nothing"
    sent = drain_queue(queue)
    assert len(sent) == notices
    if notices:
        assert sent[0].subject == "Video Processing Error"
        assert sent[0].message == {"videoId": "v", "attempt": 1, "executionArn": job["executionArn"],
                                   "status": "FAILED", **after["lastError"]}


def test_the_scheduler_reports_under_the_state_machines_subject_in_the_same_shape(queue, templates):
    """Subscribers read one kind of message on the error topic, whoever sent it: the subject and the fields are
    contract.py's, used by the state machine (its failure notices) and the scheduler alike."""
    job = running("v")
    scheduler.lambda_handler(ended(job, "TIMED_OUT"), None)
    [sent] = drain_queue(queue)
    states = generated_definition(templates)["States"]
    assert sent.subject == states["NotifyFailure"]["Parameters"]["Subject"] == contract.ERROR_SUBJECT
    described = [state["Parameters"] for name, state in states.items() if name.startswith("Describe")
                 and state["Parameters"].get("status") == contract.FAILED]
    assert described, "the state machine's failure notices"
    for notice in described:
        fields = {key.removesuffix(".$") for key in notice}
        assert fields - {"taskArn", "logGroup", "logStream"} == set(sent.message) - {"attempt"}, fields


def test_a_capacity_shortage_succeeds_and_the_video_goes_back_in_line_without_a_notice(queue):
    """Issue #21 item 5: the capacity path ends in a Succeed state (ExecutionsFailed, and its alarm, count real
    failures only) whose output says CapacityUnavailable. Fails on the code before it: the job was released
    SUCCEEDED. Also read from DescribeExecution's output by the reconciler (lifecycle.reconcile)."""
    job = running("v")
    event = ended(job, "SUCCEEDED")
    event["detail"]["output"] = json.dumps({"videoId": "v", contract.OUTCOME: contract.CAPACITY_UNAVAILABLE,
                                            "cause": "RunTask found no capacity", "error": {"Error": "ECS.X"}})
    scheduler.lambda_handler(event, None)
    after = record("v", 1)
    assert after["status"] == "QUEUED" and after["requeues"] == 1 and slots_taken() == 0
    assert after["lastError"] == {"error": contract.CAPACITY_UNAVAILABLE, "cause": "RunTask found no capacity"}
    assert drain_queue(queue) == []


def test_invalid_media_succeeds_and_the_job_fails_with_the_reason_without_a_second_notice(queue):
    """Issue #23: the state machine notified the error topic and succeeded with the outcome InvalidMedia (so
    ExecutionsFailed leaves the user's error out). The scheduler records the job FAILED with that reason and sends
    nothing: one notice in all. Fails on the code before it: the job was released SUCCEEDED."""
    job = running("v")
    event = ended(job, "SUCCEEDED")
    event["detail"]["output"] = json.dumps({"videoId": "v", contract.OUTCOME: contract.INVALID_MEDIA,
                                            "cause": "not a video (exit code 3)", "notification": {}})
    scheduler.lambda_handler(event, None)
    after = record("v", 1)
    assert after["status"] == "FAILED" and slots_taken() == 0 and "notice" not in after
    assert after["lastError"] == {"error": contract.INVALID_MEDIA, "cause": "not a video (exit code 3)"}
    assert drain_queue(queue) == []


def test_the_slot_a_finished_execution_frees_goes_to_the_oldest_queued_video(queue):
    first = running("first")
    submit("second")
    submit("third")
    assert scheduler.lambda_handler(ended(first, "SUCCEEDED"), None) == {"started": 1}
    assert [records.latest(control().store, v)["status"] for v in ("second", "third")] == ["RUNNING", "QUEUED"]


def test_a_notice_that_failed_to_send_is_sent_when_the_event_comes_again(queue, monkeypatch):
    job = running("v")
    event = ended(job, "ABORTED")
    sns = control().sns  # the client the scheduler keeps
    real = sns.publish
    monkeypatch.setattr(sns, "publish", lambda **_: (_ for _ in ()).throw(RuntimeError("SNS is down")))
    with pytest.raises(RuntimeError):
        scheduler.lambda_handler(event, None)  # Lambda retries the asynchronous invocation
    assert record("v", 1)["notice"] == "PENDING" and slots_taken() == 0
    monkeypatch.setattr(sns, "publish", real)
    scheduler.lambda_handler(event, None)
    assert len(drain_queue(queue)) == 1 and "notice" not in record("v", 1)


def test_events_of_executions_job_control_did_not_start_are_ignored(queue):
    job = running("v")
    for detail in ({"status": "SUCCEEDED", "input": "{}"}, {"status": "FAILED", "input": "not json"},
                   {"status": "SUCCEEDED", "input": json.dumps({"videoId": "v", "attempt": True})},
                   {"status": "RUNNING", "input": json.dumps({"videoId": "v", "attempt": 1})}):
        scheduler.lambda_handler({"detail-type": scheduler.STATUS_CHANGE, "detail": detail}, None)
    assert record("v", 1)["status"] == "RUNNING" and record("v", 1)["executionArn"] == job["executionArn"]
    assert scheduler.lambda_handler({"detail-type": "Something Else"}, None) == {"started": 0}


def test_a_claim_whose_start_never_happened_is_requeued_by_the_reconcile_after_the_grace(queue, monkeypatch):
    submit("v")
    [queued] = records.all_with_status(control().store, contract.QUEUED)
    assert lifecycle.claim(control(), queued) == "claimed"  # and then the function died before StartExecution
    tick = {"source": "aws.events", "detail-type": scheduler.SCHEDULED, "detail": {}}
    monkeypatch.setattr(lifecycle, "admit", lambda control: [])  # look at the reconcile alone
    scheduler.lambda_handler(tick, None)
    assert record("v", 1)["status"] == "RUNNING", "within the grace a start may still be on its way"
    later = lifecycle.now() + contract.START_GRACE_SECONDS + 1
    monkeypatch.setattr(lifecycle, "now", lambda: later)
    scheduler.lambda_handler(tick, None)
    assert record("v", 1)["status"] == "QUEUED" and slots_taken() == 0


def test_each_tick_publishes_the_backlog_the_wait_alarm_watches(queue, templates, monkeypatch, capsys):
    running("first")
    submit("second")
    submit("third")
    later = lifecycle.now() + 100
    monkeypatch.setattr(lifecycle, "now", lambda: later)
    scheduler.lambda_handler({"source": "aws.events", "detail-type": scheduler.SCHEDULED, "detail": {}}, None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [record] = [line for line in lines if "_aws" in line]
    assert record["QueuedVideos"] == 2 and 99 <= record["OldestQueuedSeconds"] <= 101
    [metrics] = record["_aws"]["CloudWatchMetrics"]
    [alarm] = [r["Properties"] for r in templates["dev"]["operations"]["Resources"].values()
               if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("MetricName") == "OldestQueuedSeconds"]
    assert alarm["Namespace"] == metrics["Namespace"]
    assert [d["Name"] for d in alarm["Dimensions"]] == metrics["Dimensions"][0]
    assert record[metrics["Dimensions"][0][0]] == control().store.table, "the dimension's value is the table's name"
    assert {m["Name"] for m in metrics["Metrics"]} == {"QueuedVideos", "OldestQueuedSeconds", "OpenUploads",
                                                       "StalledUploads"}
    assert record["OpenUploads"] == 0 == record["StalledUploads"], "no upload open"
    [uploads_alarm] = [r["Properties"] for r in templates["dev"]["operations"]["Resources"].values()
                       if r["Type"] == "AWS::CloudWatch::Alarm"
                       and r["Properties"].get("MetricName") == "StalledUploads"]
    assert (uploads_alarm["Namespace"], [d["Name"] for d in uploads_alarm["Dimensions"]]) == (
        metrics["Namespace"], metrics["Dimensions"][0]), "the alarm reads the metric the tick publishes"
