"""Job records: the items and their encoding, reads of the table and its status index, pages and their tokens, and
what a lost conditional write looks like. Every function takes the Store it reads or writes."""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import contract as c
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

PAGE_MAX = 100
CONTROL_KEY = {c.PARTITION_KEY: {"S": c.CONTROL_VIDEO_ID}, c.SORT_KEY: {"N": str(c.CONTROL_ATTEMPT)}}
_to_item = TypeSerializer().serialize
_from_item = TypeDeserializer().deserialize


@dataclass(frozen=True)
class Store:
    """The job table: its name and the DynamoDB client that reaches it."""

    table: str
    dynamodb: Any


# --- encoding ------------------------------------------------------------------------------------------------

def iso(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds_of(iso_time):
    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()


def encode(values):
    return {k: _to_item(v) for k, v in values.items()}


def decode(item):
    return {k: _from_item(v) for k, v in item.items()}


def key(video_id, attempt):
    return encode({c.PARTITION_KEY: video_id, c.SORT_KEY: attempt})


def failed_condition(error):
    """True for a conditional write that lost (a single write, or any part of a transaction)."""
    code = error.response["Error"]["Code"]
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


def cancelled_parts(error):
    """Which parts of a cancelled transaction failed their condition (by position)."""
    reasons = error.response.get("CancellationReasons") or []
    return [r.get("Code") == "ConditionalCheckFailed" for r in reasons]


# --- reading -------------------------------------------------------------------------------------------------

def latest(store, video_id):
    """The video's newest attempt, or None."""
    found = store.dynamodb.query(
        TableName=store.table, KeyConditionExpression="#k = :v", ExpressionAttributeNames={"#k": c.PARTITION_KEY},
        ExpressionAttributeValues=encode({":v": video_id}), ScanIndexForward=False, Limit=1, ConsistentRead=True,
    )["Items"]
    return decode(found[0]) if found else None


def get(store, video_id, attempt):
    item = store.dynamodb.get_item(TableName=store.table, Key=key(video_id, attempt), ConsistentRead=True)
    return decode(item["Item"]) if "Item" in item else None


def by_status(store, status, *, limit=None, start=None, ascending=True, seq_below=None, count=False):
    """One page of the status index: (items or count, LastEvaluatedKey)."""
    condition = "#s = :s" + (" AND #q < :q" if seq_below is not None else "")
    values = {":s": status, **({":q": seq_below} if seq_below is not None else {})}
    request = {"TableName": store.table, "IndexName": c.STATUS_INDEX, "KeyConditionExpression": condition,
               "ExpressionAttributeNames": {"#s": c.STATUS_INDEX_PARTITION_KEY,
                                            **({"#q": c.STATUS_INDEX_SORT_KEY} if seq_below is not None else {})},
               "ExpressionAttributeValues": encode(values), "ScanIndexForward": ascending}
    if limit:
        request["Limit"] = limit
    if start:
        request["ExclusiveStartKey"] = start
    if count:
        request["Select"] = "COUNT"
    page = store.dynamodb.query(**request)
    found = page["Count"] if count else [decode(i) for i in page["Items"]]
    return found, page.get("LastEvaluatedKey")


def all_with_status(store, status):
    start = None
    while True:
        items, start = by_status(store, status, start=start)
        yield from items
        if not start:
            return


def position(store, job):
    """How many queued videos were submitted before this one (the index is eventually consistent)."""
    ahead, start = 0, None
    while True:
        n, start = by_status(store, c.QUEUED, seq_below=job["seq"], start=start, count=True)
        ahead += n
        if not start:
            return ahead


def slots_taken(store):
    item = store.dynamodb.get_item(TableName=store.table, Key=CONTROL_KEY, ConsistentRead=True).get("Item")
    return int(decode(item).get("running", 0)) if item else 0


def next_ready(store, at):
    """The oldest queued job that may start at `at` (a requeued one waits out its backoff), or None."""
    start = None
    while True:
        page = store.dynamodb.query(
            TableName=store.table, IndexName=c.STATUS_INDEX, KeyConditionExpression="#s = :s",
            FilterExpression="attribute_not_exists(notBefore) OR notBefore <= :now",
            ExpressionAttributeNames={"#s": c.STATUS_INDEX_PARTITION_KEY},
            ExpressionAttributeValues=encode({":s": c.QUEUED, ":now": int(at)}), Limit=25,
            **({"ExclusiveStartKey": start} if start else {}))
        if page["Items"]:
            return decode(page["Items"][0])
        start = page.get("LastEvaluatedKey")
        if not start:
            return None


def backlog(store, at):
    """(videos QUEUED, seconds the oldest of them has waited at `at` since its submission; 0 when none)."""
    queued, start = 0, None
    while True:
        n, start = by_status(store, c.QUEUED, start=start, count=True)
        queued += n
        if not start:
            break
    oldest, _ = by_status(store, c.QUEUED, limit=1)
    if not oldest:
        return queued, 0
    return queued, max(0, int(at - seconds_of(oldest[0]["submittedAt"])))


def count_in_status(store, status, low, high):
    """How many items of the status index under `status` have low <= seq < high (every page)."""
    request = {"TableName": store.table, "IndexName": c.STATUS_INDEX, "Select": "COUNT",
               "KeyConditionExpression": "#s = :s AND #q BETWEEN :low AND :high",
               "ExpressionAttributeNames": {"#s": c.STATUS_INDEX_PARTITION_KEY, "#q": c.STATUS_INDEX_SORT_KEY},
               "ExpressionAttributeValues": encode({":s": status, ":low": low, ":high": high - 1})}
    counted = 0
    while True:
        page = store.dynamodb.query(**request)
        counted += page["Count"]
        if "LastEvaluatedKey" not in page:
            return counted
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def open_uploads(store, at):
    """(multipart uploads open and started within the lifecycle's window, those of them started over
    UPLOAD_STALLED_SECONDS ago). Older records are left out: the lifecycle has aborted their uploads in S3."""
    window_start = int(at) - c.ABORT_INCOMPLETE_UPLOADS_DAYS * 86400
    stalled_before = int(at) - c.UPLOAD_STALLED_SECONDS
    return (count_in_status(store, c.UPLOADING, window_start, int(at) + 1),
            count_in_status(store, c.UPLOADING, window_start, stalled_before))


# --- writing -------------------------------------------------------------------------------------------------

def next_seq(store):
    updated = store.dynamodb.update_item(
        TableName=store.table, Key=CONTROL_KEY, UpdateExpression="ADD nextSeq :one",
        ExpressionAttributeValues=encode({":one": 1}), ReturnValues="UPDATED_NEW")
    return int(decode(updated["Attributes"])["nextSeq"])


def create(store, job):
    """Write a new attempt; False when that attempt exists already (a concurrent submission wrote it)."""
    try:
        store.dynamodb.put_item(TableName=store.table, Item=encode(job), ConditionExpression="attribute_not_exists(#k)",
                                ExpressionAttributeNames={"#k": c.PARTITION_KEY})
    except ClientError as e:
        if not failed_condition(e):
            raise
        return False
    return True


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


def list_jobs(store, status=None, limit=25, token=None):
    """(jobs, next token): one status in submission order, or every job, status by status (QUEUED first).
    Only the status index is read: no scan of the table."""
    current, start = page_start(token) if token else (status or c.STATUSES[0], None)
    if status and current != status:
        raise ValueError(f"next belongs to the listing of status {current}, not {status}")
    found: list = []
    while True:
        items, start = by_status(store, current, limit=limit - len(found), start=start)
        found += items
        if start:
            return found, page_token(current, start)
        if status or current == c.STATUSES[-1]:
            return found, None
        current = c.STATUSES[c.STATUSES.index(current) + 1]
        if len(found) >= limit:
            return found, page_token(current, None)
