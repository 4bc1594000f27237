"""Job records and admission control on DynamoDB, shared by the API function and the scheduler.

One item per video and attempt (contract.PARTITION_KEY, contract.SORT_KEY). A control item holds `running`, the
number of slots taken, and `nextSeq`, the submission counter. Every change of a job's status that takes or frees a
slot is one DynamoDB transaction with the control item, so `running` always equals the number of RUNNING jobs and
never exceeds the cap, however many API and scheduler instances race:

    claim:   job QUEUED -> RUNNING   with running + 1, if running < cap
    release: job RUNNING -> ended    with running - 1, if the job is still RUNNING under that execution

A job starts as the Step Functions execution `<videoId>.<attempt>.<start>` (a new start after a requeue needs a
new name: names are unique per state machine for 90 days).
"""

import base64
import binascii
import contextlib
import json
import logging
import os
import random
import time
from datetime import datetime, timezone

import boto3
import contract as c
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

LOG = logging.getLogger(__name__)
ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")  # Step Functions statuses of an execution that ended
REQUEUE = "REQUEUE"  # a release that puts the video back in the queue (no capacity), not an outcome
# Requeue after a capacity error: exponential from 30 s, capped at 15 min, "equal jitter" (half fixed, half
# random) so that a burst of requeued videos does not come back at the same instant.
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 15 * 60
# After this many requeues (about five hours of backoff) a video without capacity fails and is reported.
MAX_REQUEUES = 24
ERROR_SUBJECT = "Video Processing Error"
PAGE_MAX = 100
CAUSE_MAX = 32768  # an execution's cause is at most 32,768 characters; a job item may hold 400 KB

_clients: dict = {}
_to_item = TypeSerializer().serialize
_from_item = TypeDeserializer().deserialize


def client(name):
    if name not in _clients:
        _clients[name] = boto3.client(name)
    return _clients[name]


def now():
    return time.time()


def iso(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def table():
    return os.environ[c.ENV_TABLE]


def cap():
    return int(os.environ[c.ENV_MAX_CONCURRENT])


def state_machine_arn():
    return os.environ[c.ENV_STATE_MACHINE_ARN]


def execution_arn(video_id, attempt, start):
    prefix = state_machine_arn().replace(":stateMachine:", ":execution:", 1)
    return f"{prefix}:{video_id}.{attempt}.{start}"


def encode(values):
    return {k: _to_item(v) for k, v in values.items()}


def decode(item):
    return {k: _from_item(v) for k, v in item.items()}


def key(video_id, attempt):
    return encode({c.PARTITION_KEY: video_id, c.SORT_KEY: attempt})


CONTROL_KEY = {c.PARTITION_KEY: {"S": c.CONTROL_VIDEO_ID}, c.SORT_KEY: {"N": str(c.CONTROL_ATTEMPT)}}


def failed_condition(error):
    """True for a conditional write that lost (a single write, or any part of a transaction)."""
    code = error.response["Error"]["Code"]
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


def cancelled_parts(error):
    """Which parts of a cancelled transaction failed their condition (by position)."""
    reasons = error.response.get("CancellationReasons") or []
    return [r.get("Code") == "ConditionalCheckFailed" for r in reasons]


# --- reading -------------------------------------------------------------------------------------------------

def latest(video_id):
    """The video's newest attempt, or None."""
    found = client("dynamodb").query(
        TableName=table(), KeyConditionExpression="#k = :v", ExpressionAttributeNames={"#k": c.PARTITION_KEY},
        ExpressionAttributeValues=encode({":v": video_id}), ScanIndexForward=False, Limit=1, ConsistentRead=True,
    )["Items"]
    return decode(found[0]) if found else None


def get(video_id, attempt):
    item = client("dynamodb").get_item(TableName=table(), Key=key(video_id, attempt), ConsistentRead=True)
    return decode(item["Item"]) if "Item" in item else None


def by_status(status, *, limit=None, start=None, ascending=True, seq_below=None, count=False):
    """One page of the status index: (items or count, LastEvaluatedKey)."""
    condition = "#s = :s" + (" AND #q < :q" if seq_below is not None else "")
    values = {":s": status, **({":q": seq_below} if seq_below is not None else {})}
    request = {"TableName": table(), "IndexName": c.STATUS_INDEX, "KeyConditionExpression": condition,
               "ExpressionAttributeNames": {"#s": c.STATUS_INDEX_PARTITION_KEY,
                                            **({"#q": c.STATUS_INDEX_SORT_KEY} if seq_below is not None else {})},
               "ExpressionAttributeValues": encode(values), "ScanIndexForward": ascending}
    if limit:
        request["Limit"] = limit
    if start:
        request["ExclusiveStartKey"] = start
    if count:
        request["Select"] = "COUNT"
    page = client("dynamodb").query(**request)
    found = page["Count"] if count else [decode(i) for i in page["Items"]]
    return found, page.get("LastEvaluatedKey")


def all_with_status(status):
    start = None
    while True:
        items, start = by_status(status, start=start)
        yield from items
        if not start:
            return


def position(job):
    """How many queued videos were submitted before this one (the index is eventually consistent)."""
    ahead, start = 0, None
    while True:
        n, start = by_status(c.QUEUED, seq_below=job["seq"], start=start, count=True)
        ahead += n
        if not start:
            return ahead


def slots_taken():
    item = client("dynamodb").get_item(TableName=table(), Key=CONTROL_KEY, ConsistentRead=True).get("Item")
    return int(decode(item).get("running", 0)) if item else 0


# --- submitting ----------------------------------------------------------------------------------------------

def next_seq():
    updated = client("dynamodb").update_item(
        TableName=table(), Key=CONTROL_KEY, UpdateExpression="ADD nextSeq :one",
        ExpressionAttributeValues=encode({":one": 1}), ReturnValues="UPDATED_NEW")
    return int(decode(updated["Attributes"])["nextSeq"])


def submit(video_id, request_id=None):
    """(job, created). A new attempt is created only when the video has none or its last one FAILED."""
    previous = latest(video_id)
    if previous and previous["status"] != c.FAILED:
        return previous, False
    attempt = int(previous[c.SORT_KEY]) + 1 if previous else 1
    job = {c.PARTITION_KEY: video_id, c.SORT_KEY: attempt, "status": c.QUEUED, "seq": next_seq(), "starts": 0,
           "submittedAt": iso(now())}
    if request_id:
        job["requestId"] = request_id
    try:
        client("dynamodb").put_item(TableName=table(), Item=encode(job),
                                    ConditionExpression="attribute_not_exists(#k)",
                                    ExpressionAttributeNames={"#k": c.PARTITION_KEY})
    except ClientError as e:
        if not failed_condition(e):
            raise
        return latest(video_id), False  # a concurrent submission of the same video won
    return job, True


# --- admission -----------------------------------------------------------------------------------------------

def next_ready(at):
    """The oldest queued job that may start now (a requeued one waits out its backoff), or None."""
    start = None
    while True:
        page = client("dynamodb").query(
            TableName=table(), IndexName=c.STATUS_INDEX, KeyConditionExpression="#s = :s",
            FilterExpression="attribute_not_exists(notBefore) OR notBefore <= :now",
            ExpressionAttributeNames={"#s": c.STATUS_INDEX_PARTITION_KEY},
            ExpressionAttributeValues=encode({":s": c.QUEUED, ":now": int(at)}), Limit=25,
            **({"ExclusiveStartKey": start} if start else {}))
        if page["Items"]:
            return decode(page["Items"][0])
        start = page.get("LastEvaluatedKey")
        if not start:
            return None


def claim(job):
    """Take a slot and mark the job RUNNING in one transaction: 'claimed', 'full' or 'taken' (by another)."""
    video_id, attempt, start = job[c.PARTITION_KEY], int(job[c.SORT_KEY]), int(job.get("starts", 0)) + 1
    arn = execution_arn(video_id, attempt, start)
    try:
        client("dynamodb").transact_write_items(TransactItems=[
            {"Update": {"TableName": table(), "Key": CONTROL_KEY,
                        "UpdateExpression": "SET running = if_not_exists(running, :zero) + :one",
                        "ConditionExpression": "attribute_not_exists(running) OR running < :cap",
                        "ExpressionAttributeValues": encode({":zero": 0, ":one": 1, ":cap": cap()})}},
            {"Update": {"TableName": table(), "Key": key(video_id, attempt),
                        "UpdateExpression": "SET #s = :running, startedAt = :at, starts = :start, executionArn = :arn "
                                            "REMOVE notBefore",
                        "ConditionExpression": "#s = :queued AND starts = :before",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": encode({
                            ":running": c.RUNNING, ":queued": c.QUEUED, ":at": iso(now()), ":start": start,
                            ":before": start - 1, ":arn": arn})}},
        ])
    except ClientError as e:
        if not failed_condition(e):
            raise
        parts = cancelled_parts(e)
        return "full" if parts and parts[0] else "taken"
    job.update(status=c.RUNNING, starts=start, executionArn=arn)
    return "claimed"


def start_execution(job):
    name = job["executionArn"].rsplit(":", 1)[1]
    payload = json.dumps({"videoId": job[c.PARTITION_KEY], "attempt": int(job[c.SORT_KEY])})
    sfn = client("stepfunctions")
    with contextlib.suppress(sfn.exceptions.ExecutionAlreadyExists):  # an earlier try started it
        sfn.start_execution(stateMachineArn=state_machine_arn(), name=name, input=payload)


def admit():
    """Start queued videos, oldest first, while slots are free. Returns the jobs started."""
    started = []
    for _ in range(4 * cap() + 8):  # bounded: an index that still shows a claimed job as QUEUED cannot spin us
        if slots_taken() >= cap():
            break
        job = next_ready(now())
        if job is None:
            break
        outcome = claim(job)
        if outcome == "full":
            break
        if outcome == "taken":
            continue
        try:
            start_execution(job)
        except ClientError:
            # StartExecution throttled or refused: free the slot, the video waits its turn again.
            release(job, REQUEUE, error={"error": "StartExecutionFailed", "cause": "StartExecution was refused"})
            raise
        started.append(job)
    return started


# --- releasing -----------------------------------------------------------------------------------------------

def backoff(requeues):
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(requeues, 16))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def release(job, outcome, *, error=None, notice=False):
    """Free the job's slot, once: the job ends (SUCCEEDED / FAILED) or waits again (REQUEUE). Returns the job as
    written, or None when this execution's slot was already released (a repeated event)."""
    video_id, attempt, arn = job[c.PARTITION_KEY], int(job[c.SORT_KEY]), job["executionArn"]
    at = now()
    values = {":running": c.RUNNING, ":arn": arn, ":at": iso(at)}
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
    try:
        client("dynamodb").transact_write_items(TransactItems=[
            {"Update": {"TableName": table(), "Key": key(video_id, attempt), "UpdateExpression": update,
                        "ConditionExpression": "#s = :running AND executionArn = :arn",
                        "ExpressionAttributeNames": names, "ExpressionAttributeValues": encode(values)}},
            {"Update": {"TableName": table(), "Key": CONTROL_KEY, "UpdateExpression": "SET running = running - :one",
                        "ConditionExpression": "running > :zero",
                        "ExpressionAttributeValues": encode({":one": 1, ":zero": 0})}},
        ])
    except ClientError as e:
        if not failed_condition(e):
            raise
        return None
    return get(video_id, attempt)


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


def end(video_id, attempt, arn, status, error=None, cause=None):
    """An execution ended: release its slot (once) and notify the error topic where nothing else did.
    Returns the job as written, or None when there was nothing to do."""
    job = get(video_id, attempt)
    if job is None or job.get("executionArn") != arn:
        LOG.info("no running job for %s (already released, or not started by job control)", arn)
        return None
    if job["status"] != c.RUNNING:
        if job.get("notice") == "PENDING":  # released earlier, but the notice was not sent
            notify(job)
        return None
    if status == "SUCCEEDED":
        return release(job, c.SUCCEEDED)
    if status == "FAILED" and error == c.CAPACITY_UNAVAILABLE and int(job.get("requeues", 0)) < MAX_REQUEUES:
        return release(job, REQUEUE, error=error_of(status, error, cause))
    # Timed out, aborted or failed outside the failure path (its notification failed): nobody was told yet.
    unreported = status != "FAILED" or error != c.NOTIFIED_FAILURE
    released = release(job, c.FAILED, error=error_of(status, error, cause), notice=unreported)
    if released and unreported:
        notify(released)
    return released


def notify(job):
    message = {"videoId": job[c.PARTITION_KEY], "attempt": int(job[c.SORT_KEY]),
               "executionArn": job.get("executionArn"), "status": c.FAILED, **(job.get("lastError") or {})}
    client("sns").publish(TopicArn=os.environ[c.ENV_ERROR_TOPIC_ARN], Subject=ERROR_SUBJECT,
                          Message=json.dumps(message, sort_keys=True))
    client("dynamodb").update_item(
        TableName=table(), Key=key(job[c.PARTITION_KEY], int(job[c.SORT_KEY])), UpdateExpression="REMOVE notice",
        ConditionExpression="notice = :pending", ExpressionAttributeValues=encode({":pending": "PENDING"}))


def reconcile():
    """Release the slots of executions whose ending event was lost; requeue claims that never started."""
    sfn = client("stepfunctions")
    reclaimed = []
    for job in list(all_with_status(c.RUNNING)):
        arn = job["executionArn"]
        try:
            described = sfn.describe_execution(executionArn=arn)
        except sfn.exceptions.ExecutionDoesNotExist:
            started = datetime.fromisoformat(job["startedAt"].replace("Z", "+00:00")).timestamp()
            if now() - started > c.START_GRACE_SECONDS:  # claimed, but the start never happened
                released = release(job, REQUEUE)
                reclaimed += [released] if released else []
            continue
        if described["status"] in ENDED:
            released = end(job[c.PARTITION_KEY], int(job[c.SORT_KEY]), arn, described["status"],
                           described.get("error"), described.get("cause"))
            reclaimed += [released] if released else []
    return reclaimed


def backlog():
    """(videos QUEUED, seconds the oldest of them has waited since its submission; 0 when none)."""
    queued, start = 0, None
    while True:
        n, start = by_status(c.QUEUED, start=start, count=True)
        queued += n
        if not start:
            break
    oldest, _ = by_status(c.QUEUED, limit=1)
    if not oldest:
        return queued, 0
    submitted = datetime.fromisoformat(oldest[0]["submittedAt"].replace("Z", "+00:00")).timestamp()
    return queued, max(0, int(now() - submitted))


def backlog_metrics(queued, oldest_seconds):
    """One CloudWatch embedded-metric-format record: Lambda's log line becomes the two metrics."""
    return json.dumps({
        "_aws": {"Timestamp": int(now() * 1000), "CloudWatchMetrics": [{
            "Namespace": c.METRICS_NAMESPACE, "Dimensions": [[c.METRIC_DIMENSION]],
            "Metrics": [{"Name": c.METRIC_QUEUED, "Unit": "Count"},
                        {"Name": c.METRIC_OLDEST_QUEUED, "Unit": "Seconds"}]}]},
        c.METRIC_DIMENSION: table(), c.METRIC_QUEUED: queued, c.METRIC_OLDEST_QUEUED: oldest_seconds,
    }, sort_keys=True)


# --- pages ---------------------------------------------------------------------------------------------------

def page_token(status, last_key):
    return base64.urlsafe_b64encode(json.dumps({"status": status, "key": last_key}, sort_keys=True).encode()).decode()


def page_start(token):
    """(status, ExclusiveStartKey or None) a token stands for; ValueError when it is not one this API returned."""
    try:
        start = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error, UnicodeError) as e:
        raise ValueError("next is not a token this API returned") from e
    if not (isinstance(start, dict) and set(start) == {"status", "key"} and start["status"] in c.STATUSES
            and page_key_ok(start["key"])):
        raise ValueError("next is not a token this API returned")
    return start["status"], start["key"]


def page_key_ok(key):
    """Whether a token's key can be what the status index's query returned as LastEvaluatedKey: None, or the table's
    and the index's key attributes, each one typed value ({"S": text}, {"N": digits}). A forged one ({"S": 5},
    {"BOGUS": "x"}) would fail botocore's own validation before any request: a 500, not a 400."""
    types = {c.PARTITION_KEY: "S", c.SORT_KEY: "N", c.STATUS_INDEX_PARTITION_KEY: "S", c.STATUS_INDEX_SORT_KEY: "N"}
    if key is None:
        return True
    if not (isinstance(key, dict) and set(key) == set(types)):
        return False
    for name, kind in types.items():
        value = key[name].get(kind) if isinstance(key[name], dict) and len(key[name]) == 1 else None
        if not isinstance(value, str) or (kind == "N" and not (value.isascii() and value.isdigit())):
            return False
    return True


def list_jobs(status=None, limit=25, token=None):
    """(jobs, next token): one status in submission order, or every job, status by status (QUEUED first).
    Only the status index is read: no scan of the table."""
    current, key = page_start(token) if token else (status or c.STATUSES[0], None)
    if status and current != status:
        raise ValueError(f"next belongs to the listing of status {current}, not {status}")
    found: list = []
    while True:
        items, key = by_status(current, limit=limit - len(found), start=key)
        found += items
        if key:
            return found, page_token(current, key)
        if status or current == c.STATUSES[-1]:
            return found, None
        current = c.STATUSES[c.STATUSES.index(current) + 1]
        if len(found) >= limit:
            return found, page_token(current, None)
