"""Admission on arrival: S3's "Object Created" event for sources/<videoId> (through EventBridge) submits the job.

Exactly one job per object version, however the event comes (twice, late, out of order: EventBridge delivers at
least once, and S3's `sequencer` orders events of one key only when it differs, which the emulator's does not):

* the version is the key of admission (the media bucket is versioned everywhere, so no version reads `null`);
* each version that arrives gets one item, `contract.arrival_key(bucket, key, versionId)`, written with the
  condition that it does not exist, in the same transaction as the job it admits: a second delivery finds it and
  does nothing, and a crash between the two writes cannot happen;
* only the key's current version is admitted (HeadObject without a version): a late event of a version that was
  overwritten since is recorded as superseded, so a FAILED video re-uploaded twice starts one attempt, for the
  newest bytes;
* a version is admitted as attempt n+1 only when the video has no attempt or its newest one FAILED, as
  POST /videos decides: an upload while an attempt is queued or running, or after one succeeded, is recorded as
  not admitted (upload again after that attempt failed).

The sha256 the client declared at upload comes from the object's metadata (x-amz-meta-sha256) and is recorded
with the job, beside bucket, key and version.
"""

import logging

import contract as c
from botocore.exceptions import ClientError

from . import lifecycle, records

LOG = logging.getLogger(__name__)
ADMITTED, DUPLICATE, SUPERSEDED, NOT_ADMITTED, IGNORED = "admitted", "duplicate", "superseded", "not-admitted", \
    "ignored"


def object_of(detail):
    """(bucket, key, versionId, videoId) an Object Created event's detail names, or None when it is not a source."""
    bucket = (detail.get("bucket") or {}).get("name")
    found = detail.get("object") or {}
    key, version = found.get("key"), found.get("version-id")
    video_id = c.video_of_source(key)
    if not (isinstance(bucket, str) and bucket and video_id and isinstance(version, str) and version
            and version != "null"):
        return None
    return bucket, key, version, video_id


def current_version(s3, bucket, key):
    """(versionId, sha256 from the metadata) of the key's current version, or None when the key has none."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        if e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return head.get("VersionId"), (head.get("Metadata") or {}).get(c.SHA256_METADATA, "")


def arrival_item(bucket, key, version, outcome, **details):
    return {c.PARTITION_KEY: c.arrival_key(bucket, key, version), c.SORT_KEY: 0, "outcome": outcome,
            "arrivedAt": records.iso(lifecycle.now()), **details}


def put_arrival(store, item):
    """Record a version's arrival once; False when it was recorded before."""
    return records.create(store, item)


def arrived(control, s3, detail):
    """Handle one Object Created event: (outcome, job or None)."""
    found = object_of(detail)
    if found is None:
        LOG.warning("ignoring an Object Created event that names no source version: %s", detail.get("object"))
        return IGNORED, None
    bucket, key, version, video_id = found
    store = control.store
    if records.get(store, c.arrival_key(bucket, key, version), 0):
        return DUPLICATE, None
    current = current_version(s3, bucket, key)
    if current is None or current[0] != version:
        newer = current[0] if current else None
        put_arrival(store, arrival_item(bucket, key, version, SUPERSEDED, **({"by": newer} if newer else {})))
        return SUPERSEDED, None
    source = {"bucket": bucket, "key": key, "versionId": version, "sha256": current[1]}
    for _ in range(3):  # a concurrent submission of the same video can win the job's key: look again
        previous = records.latest(store, video_id)
        if previous and previous["status"] != c.FAILED:
            why = f"attempt {int(previous[c.SORT_KEY])} is {previous['status']}"
            recorded = put_arrival(store, arrival_item(bucket, key, version, NOT_ADMITTED, reason=why))
            return (NOT_ADMITTED if recorded else DUPLICATE), None
        job = lifecycle.new_job(control, video_id, previous, source=source)
        item = arrival_item(bucket, key, version, ADMITTED, job={"videoId": video_id, "attempt": job[c.SORT_KEY]})
        try:
            store.dynamodb.transact_write_items(TransactItems=[
                {"Put": {"TableName": store.table, "Item": records.encode(item),
                         "ConditionExpression": "attribute_not_exists(#k)",
                         "ExpressionAttributeNames": {"#k": c.PARTITION_KEY}}},
                {"Put": {"TableName": store.table, "Item": records.encode(job),
                         "ConditionExpression": "attribute_not_exists(#k)",
                         "ExpressionAttributeNames": {"#k": c.PARTITION_KEY}}},
            ])
        except ClientError as e:
            if not records.failed_condition(e):
                raise
            parts = records.cancelled_parts(e)
            if not parts or parts[0]:  # this version was admitted meanwhile
                return DUPLICATE, None
            continue
        return ADMITTED, job
    raise RuntimeError(f"could not admit {key} version {version}: the video's newest attempt kept changing")
