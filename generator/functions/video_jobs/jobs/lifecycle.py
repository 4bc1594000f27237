"""A job's life: submitted (QUEUED), admitted (a slot claimed, RUNNING, its execution started), released when the
execution ends (SUCCEEDED, FAILED, or back to QUEUED when there was no capacity), the failures no state reported
notified, and the endings whose event was lost reconciled. Every function takes the Control it acts on.

A job starts as the Step Functions execution `<videoId>.<attempt>.<start>` (a new start after a requeue needs a
new name: names are unique per state machine for 90 days).
"""

import contextlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import boto3
import contract as c
from botocore.exceptions import ClientError

from . import records

LOG = logging.getLogger(__name__)
ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")  # Step Functions statuses of an execution that ended
REQUEUE = "REQUEUE"  # a release that puts the video back in the queue (no capacity), not an outcome
# Requeue after a capacity error: exponential from 30 s, capped at 15 min, "equal jitter" (half fixed, half
# random) so that a burst of requeued videos does not come back at the same instant.
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 15 * 60
# After this many requeues (about five hours of backoff) a video without capacity fails and is reported.
MAX_REQUEUES = 24
CAUSE_MAX = 32768  # an execution's cause is at most 32,768 characters; a job item may hold 400 KB


@dataclass(frozen=True)
class Control:
    """What job control acts on in one invocation: the records, the cap, the state machine, and the error topic
    (the scheduler's only: the API function reports nothing)."""

    store: records.Store
    cap: int
    state_machine_arn: str
    stepfunctions: Any
    error_topic_arn: str | None = None
    sns: Any = None
    media_bucket: str = ""  # where sources and outputs live (contract.ENV_MEDIA_BUCKET)


def from_environment(clients):
    """The Control of the function's environment (contract.ENV_*). `clients` keeps the boto3 clients it makes, for
    the next invocations of the same Lambda instance."""
    def client(name):
        if name not in clients:
            clients[name] = boto3.client(name)
        return clients[name]

    topic = os.environ.get(c.ENV_ERROR_TOPIC_ARN)
    return Control(store=records.Store(os.environ[c.ENV_TABLE], client("dynamodb")),
                   cap=int(os.environ[c.ENV_MAX_CONCURRENT]), state_machine_arn=os.environ[c.ENV_STATE_MACHINE_ARN],
                   stepfunctions=client("stepfunctions"), error_topic_arn=topic, sns=client("sns") if topic else None,
                   media_bucket=os.environ.get(c.ENV_MEDIA_BUCKET, ""))


def now():
    return time.time()


def execution_arn(control, video_id, attempt, start):
    prefix = control.state_machine_arn.replace(":stateMachine:", ":execution:", 1)
    return f"{prefix}:{video_id}.{attempt}.{start}"


# --- submitting ----------------------------------------------------------------------------------------------

def new_job(control, video_id, previous, source=None, request_id=None):
    """The next attempt's item (QUEUED), recording the source it processes: {bucket, key, versionId, sha256}; a
    submission without an upload (POST /videos) names the video's source key and no version (the current one)."""
    attempt = int(previous[c.SORT_KEY]) + 1 if previous else 1
    job = {c.PARTITION_KEY: video_id, c.SORT_KEY: attempt, "status": c.QUEUED, "seq": records.next_seq(control.store),
           "starts": 0, "submittedAt": records.iso(now()),
           "source": source or {"bucket": control.media_bucket, "key": c.source_key(video_id), "versionId": "",
                                "sha256": ""}}
    if request_id:
        job["requestId"] = request_id
    return job


def submit(control, video_id, request_id=None):
    """(job, created). A new attempt is created only when the video has none or its last one FAILED."""
    store = control.store
    previous = records.latest(store, video_id)
    if previous and previous["status"] != c.FAILED:
        return previous, False
    job = new_job(control, video_id, previous, request_id=request_id)
    if not records.create(store, job):
        return records.latest(store, video_id), False  # a concurrent submission of the same video won
    return job, True


# --- admission -----------------------------------------------------------------------------------------------

def claim(control, job):
    """Take a slot and mark the job RUNNING in one transaction: 'claimed', 'full' or 'taken' (by another)."""
    video_id, attempt, start = job[c.PARTITION_KEY], int(job[c.SORT_KEY]), int(job.get("starts", 0)) + 1
    arn = execution_arn(control, video_id, attempt, start)
    table = control.store.table
    try:
        control.store.dynamodb.transact_write_items(TransactItems=[
            {"Update": {"TableName": table, "Key": records.CONTROL_KEY,
                        "UpdateExpression": "SET running = if_not_exists(running, :zero) + :one",
                        "ConditionExpression": "attribute_not_exists(running) OR running < :cap",
                        "ExpressionAttributeValues": records.encode({":zero": 0, ":one": 1, ":cap": control.cap})}},
            {"Update": {"TableName": table, "Key": records.key(video_id, attempt),
                        "UpdateExpression": "SET #s = :running, startedAt = :at, starts = :start, executionArn = :arn "
                                            "REMOVE notBefore",
                        "ConditionExpression": "#s = :queued AND starts = :before",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": records.encode({
                            ":running": c.RUNNING, ":queued": c.QUEUED, ":at": records.iso(now()), ":start": start,
                            ":before": start - 1, ":arn": arn})}},
        ])
    except ClientError as e:
        if not records.failed_condition(e):
            raise
        parts = records.cancelled_parts(e)
        return "full" if parts and parts[0] else "taken"
    job.update(status=c.RUNNING, starts=start, executionArn=arn)
    return "claimed"


def execution_input(control, job):
    """What the execution (and through it the processing container) gets: the video, the attempt, the source
    object admitted and where this attempt's outputs go. Every field is present (a string, empty when unknown): the
    state machine reads each one."""
    video_id, attempt = job[c.PARTITION_KEY], int(job[c.SORT_KEY])
    source = job.get("source") or {}
    bucket = str(source.get("bucket") or control.media_bucket)
    return {"videoId": video_id, "attempt": attempt,
            "source": {"bucket": bucket, "key": str(source.get("key") or c.source_key(video_id)),
                       "versionId": str(source.get("versionId") or ""), "sha256": str(source.get("sha256") or "")},
            "outputs": {"bucket": bucket, "prefix": c.outputs_prefix(video_id, attempt)}}


def start_execution(control, job):
    name = job["executionArn"].rsplit(":", 1)[1]
    payload = json.dumps(execution_input(control, job), sort_keys=True)
    sfn = control.stepfunctions
    with contextlib.suppress(sfn.exceptions.ExecutionAlreadyExists):  # an earlier try started it
        sfn.start_execution(stateMachineArn=control.state_machine_arn, name=name, input=payload)


def admit(control):
    """Start queued videos, oldest first, while slots are free. Returns the jobs started."""
    started = []
    for _ in range(4 * control.cap + 8):  # bounded: an index that still shows a claimed job as QUEUED cannot spin us
        if records.slots_taken(control.store) >= control.cap:
            break
        job = records.next_ready(control.store, now())
        if job is None:
            break
        outcome = claim(control, job)
        if outcome == "full":
            break
        if outcome == "taken":
            continue
        try:
            start_execution(control, job)
        except ClientError:
            # StartExecution throttled or refused: free the slot, the video waits its turn again.
            release(control, job, REQUEUE,
                    error={"error": "StartExecutionFailed", "cause": "StartExecution was refused"})
            raise
        started.append(job)
    return started


# --- releasing -----------------------------------------------------------------------------------------------

def backoff(requeues):
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(requeues, 16))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def release(control, job, outcome, *, error=None, notice=False):
    """Free the job's slot, once: the job ends (SUCCEEDED / FAILED) or waits again (REQUEUE). Returns the job as
    written, or None when this execution's slot was already released (a repeated event)."""
    video_id, attempt, arn = job[c.PARTITION_KEY], int(job[c.SORT_KEY]), job["executionArn"]
    at = now()
    values = {":running": c.RUNNING, ":arn": arn, ":at": records.iso(at)}
    names = {"#s": "status"}
    if outcome == REQUEUE:
        requeues = int(job.get("requeues", 0))
        values.update({":queued": c.QUEUED, ":nb": int(at + backoff(requeues)), ":rq": requeues + 1})
        update = "SET #s = :queued, notBefore = :nb, requeues = :rq, lastRequeuedAt = :at"
        update += ", lastError = :err" if error else ""
        update += " REMOVE startedAt, executionArn"
    else:
        values[":ended"] = outcome
        update = "SET #s = :ended, endedAt = :at" + (", lastError = :err" if error else "")
        if notice:
            update += ", notice = :pending"
            values[":pending"] = "PENDING"
    if error:
        values[":err"] = error
    table = control.store.table
    try:
        control.store.dynamodb.transact_write_items(TransactItems=[
            {"Update": {"TableName": table, "Key": records.key(video_id, attempt), "UpdateExpression": update,
                        "ConditionExpression": "#s = :running AND executionArn = :arn",
                        "ExpressionAttributeNames": names, "ExpressionAttributeValues": records.encode(values)}},
            {"Update": {"TableName": table, "Key": records.CONTROL_KEY,
                        "UpdateExpression": "SET running = running - :one", "ConditionExpression": "running > :zero",
                        "ExpressionAttributeValues": records.encode({":one": 1, ":zero": 0})}},
        ])
    except ClientError as e:
        if not records.failed_condition(e):
            raise
        return None
    return records.get(control.store, video_id, attempt)


def error_of(status, error, cause):
    """The job's lastError for an execution that ended with this status, error and cause."""
    if status in ("TIMED_OUT", "ABORTED"):
        return {"error": f"States.{status}", "cause": f"The execution ended with status {status} before reaching "
                                                      "a failure handler"}
    if error == c.NOTIFIED_FAILURE and cause:
        try:  # the state machine's Fail state carries the notification it published as its cause
            notification = json.loads(cause)
            return {"error": str(notification.get("error")), "cause": str(notification.get("cause"))[:CAUSE_MAX]}
        except (ValueError, AttributeError):
            pass
    return {"error": str(error or status), "cause": str(cause or "")[:CAUSE_MAX]}


def reported_outcome(output):
    """(error, cause) when a SUCCEEDED execution's output (JSON text, as EventBridge and DescribeExecution give it)
    names an outcome that is not a success (contract.OUTCOME): no capacity (requeue) or invalid media (failed, the
    state machine notified). Else None."""
    try:
        parsed = json.loads(output) if isinstance(output, str) else output
    except ValueError:
        return None
    if isinstance(parsed, dict) and parsed.get(c.OUTCOME) in (c.CAPACITY_UNAVAILABLE, c.INVALID_MEDIA):
        return parsed[c.OUTCOME], str(parsed.get("cause") or parsed[c.OUTCOME])
    return None


# Endings the state machine already told the error topic about: the job records them, nobody is told again.
NOTIFIED_ERRORS = (c.NOTIFIED_FAILURE, c.INVALID_MEDIA)


def end(control, video_id, attempt, arn, status, error=None, cause=None, output=None):
    """An execution ended: release its slot (once) and notify the error topic where nothing else did.
    Returns the job as written, or None when there was nothing to do."""
    reported = reported_outcome(output) if status == "SUCCEEDED" else None
    if reported:  # succeeded only so that ExecutionsFailed counts the pipeline's failures: no capacity, invalid media
        status, (error, cause) = "FAILED", reported
    job = records.get(control.store, video_id, attempt)
    if job is None or job.get("executionArn") != arn:
        LOG.info("no running job for %s (already released, or not started by job control)", arn)
        return None
    if job["status"] != c.RUNNING:
        if job.get("notice") == "PENDING":  # released earlier, but the notice was not sent
            notify(control, job)
        return None
    if status == "SUCCEEDED":
        return release(control, job, c.SUCCEEDED)
    if status == "FAILED" and error == c.CAPACITY_UNAVAILABLE and int(job.get("requeues", 0)) < MAX_REQUEUES:
        return release(control, job, REQUEUE, error=error_of(status, error, cause))
    # Timed out, aborted or failed outside the failure path (its notification failed): nobody was told yet.
    unreported = status != "FAILED" or error not in NOTIFIED_ERRORS
    released = release(control, job, c.FAILED, error=error_of(status, error, cause), notice=unreported)
    if released and unreported:
        notify(control, released)
    return released


def notify(control, job):
    """Tell the error topic, in the state machine's subject and shape (contract.py), then clear the pending notice."""
    if control.sns is None:
        raise RuntimeError(f"{c.ENV_ERROR_TOPIC_ARN} is not set: this function cannot report failures")
    error = job.get("lastError") or {}
    message = c.failure_notice(job[c.PARTITION_KEY], job.get("executionArn"), error.get("error"), error.get("cause"),
                               attempt=int(job[c.SORT_KEY]))
    control.sns.publish(TopicArn=control.error_topic_arn, Subject=c.ERROR_SUBJECT,
                        Message=json.dumps(message, sort_keys=True))
    control.store.dynamodb.update_item(
        TableName=control.store.table, Key=records.key(job[c.PARTITION_KEY], int(job[c.SORT_KEY])),
        UpdateExpression="REMOVE notice", ConditionExpression="notice = :pending",
        ExpressionAttributeValues=records.encode({":pending": "PENDING"}))


def reconcile(control):
    """Release the slots of executions whose ending event was lost; requeue claims that never started."""
    sfn = control.stepfunctions
    reclaimed = []
    for job in list(records.all_with_status(control.store, c.RUNNING)):
        arn = job["executionArn"]
        try:
            described = sfn.describe_execution(executionArn=arn)
        except sfn.exceptions.ExecutionDoesNotExist:
            if now() - records.seconds_of(job["startedAt"]) > c.START_GRACE_SECONDS:  # claimed, never started
                released = release(control, job, REQUEUE)
                reclaimed += [released] if released else []
            continue
        if described["status"] in ENDED:
            released = end(control, job[c.PARTITION_KEY], int(job[c.SORT_KEY]), arn, described["status"],
                           described.get("error"), described.get("cause"), described.get("output"))
            reclaimed += [released] if released else []
    return reclaimed
