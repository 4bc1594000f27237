"""Uploads of a video's source into the media bucket, straight from the client to S3 through presigned URLs.

A source up to contract.SINGLE_PUT_MAX_BYTES is one presigned PUT; a larger one is a multipart upload. Its plan
(part size and count) comes first, without URLs: each part URL signs that part's SHA-256, which the client can
compute only once it knows the part size, so it then asks POST /videos/{videoId}/upload/parts for the URLs of up to
contract.PART_URLS_PER_PAGE parts at a time, naming each part's SHA-256 (one answer with every part's URL would
reach Lambda's 6 MB response limit near 4,000 parts). The open upload of a video is recorded in the job table under
`#upload#<videoId>` (no videoId can name it: '#' is not allowed in one), so a second request resumes it and
completion knows its plan.

Checksums: every presigned URL signs the x-amz-checksum-sha256 its request carries, as a header (X-Amz-SignedHeaders),
so S3 refuses bytes of another SHA-256 (400 BadDigest), a swapped checksum (403 SignatureDoesNotMatch), and no
x-amz-* header travels unsigned: S3 refuses a presigned request with an x-amz-* header its signature does not cover
(403 "There were headers present in the request which were not signed", HeadersNotSigned; the canonical headers
must include "any x-amz-* headers that you plan to include in your request":
https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html). A multipart upload is created with
ChecksumAlgorithm SHA256, and each part's URL signs that part's checksum, which S3 checks per part
(https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPart.html); S3 offers a full-object checksum type for
multipart uploads only with CRC algorithms, not SHA-256
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html), so the whole file's SHA-256
travels as x-amz-meta-sha256 and the processor verifies it after download.

A presigned URL stops working when the credentials that signed it expire, whatever lifetime it names
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html): the function's role session may
end first; a client that gets 403 asks for the URLs again.
"""

import base64
import json
import math
import os
import re

import contract as c

from . import records

ENV_BUCKET = "MEDIA_BUCKET"
ENV_MAX_BYTES = "UPLOAD_MAX_BYTES"
ENV_CONTENT_TYPES = "UPLOAD_CONTENT_TYPES"  # comma-joined
ENV_URL_SECONDS = "UPLOAD_URL_SECONDS"
# Optional, unset in the templates (the contract's values hold): a test sets them small to make a multipart upload
# of a few parts without megabytes per part beyond S3's minimum (tests/test_local_pipeline.py).
ENV_SINGLE_PUT_MAX_BYTES = "UPLOAD_SINGLE_PUT_MAX_BYTES"
ENV_PART_BYTES = "UPLOAD_PART_BYTES"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
FIELDS = ("size", "contentType", "sha256")


def settings():
    return (os.environ[ENV_BUCKET], int(os.environ[ENV_MAX_BYTES]), os.environ[ENV_CONTENT_TYPES].split(","),
            int(os.environ[ENV_URL_SECONDS]))


def single_put_max():
    return int(os.environ.get(ENV_SINGLE_PUT_MAX_BYTES) or c.SINGLE_PUT_MAX_BYTES)


def part_size(size):
    """The smallest whole MiB, at least PART_DEFAULT_BYTES (or UPLOAD_PART_BYTES, never below S3's 5 MiB), that
    splits `size` into at most S3_MAX_PARTS parts
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html: 5 MiB to 5 GiB a part, 10,000 parts)."""
    mib = 1024 * 1024
    least = max(c.S3_MIN_PART_BYTES, int(os.environ.get(ENV_PART_BYTES) or c.PART_DEFAULT_BYTES))
    wanted = max(least, math.ceil(size / c.S3_MAX_PARTS / mib) * mib)
    if wanted > c.S3_MAX_PART_BYTES:
        raise ValueError(f"size {size} needs parts above S3's {c.S3_MAX_PART_BYTES} bytes")
    return wanted


def request_error(body, max_bytes, content_types):
    """What is wrong with a POST /videos/{videoId}/upload body (a dict), or None."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        return "unexpected field(s): " + ", ".join(unknown)
    missing = [f for f in FIELDS if f not in body]
    if missing:
        return "required: " + ", ".join(missing)
    size = body["size"]
    if not isinstance(size, int) or isinstance(size, bool):
        return "size must be a whole number of bytes"
    if not 1 <= size <= max_bytes:
        return f"size must be 1 to {max_bytes} bytes, this environment's maximum (got {size})"
    if body["contentType"] not in content_types:
        return f"contentType must be one of {', '.join(content_types)} (got {str(body['contentType'])[:40]!r})"
    if not (isinstance(body["sha256"], str) and SHA256_HEX.fullmatch(body["sha256"])):
        return "sha256 must be the file's SHA-256 as 64 lower-case hexadecimal digits"
    return None


def upload_key(video_id):
    return f"#upload#{video_id}"


def recorded(store, video_id):
    item = records.get(store, upload_key(video_id), 0)
    return item if item and item.get("state") == "OPEN" else None


def record(store, video_id, values):
    """Write the upload's record; an open one is also in the status index (UPLOADING, seq: its start in epoch
    seconds) so the scheduler's tick counts open uploads without a scan; a closed one leaves the index."""
    kept = {k: v for k, v in values.items() if k not in (c.STATUS_INDEX_PARTITION_KEY, c.STATUS_INDEX_SORT_KEY)}
    indexed = ({c.STATUS_INDEX_PARTITION_KEY: c.UPLOADING,
                c.STATUS_INDEX_SORT_KEY: int(records.seconds_of(values["startedAt"]))}
               if values.get("state") == "OPEN" else {})
    store.dynamodb.put_item(TableName=store.table, Item=records.encode(
        {c.PARTITION_KEY: upload_key(video_id), c.SORT_KEY: 0, **kept, **indexed}))


def sha256_base64(hex_digest):
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


PART_FIELDS = ("partNumber", "sha256")
PARTS_EXAMPLE = '{"parts": [{"partNumber": 1, "sha256": "<the part\'s SHA-256, 64 hex digits>"}]}'


def parts_error(body, count):
    """What is wrong with a POST /videos/{videoId}/upload/parts body (a dict) for an upload of `count` parts, or
    None."""
    if set(body) != {"parts"}:
        return f"expected {PARTS_EXAMPLE} and no other field"
    parts = body["parts"]
    if not isinstance(parts, list) or not 1 <= len(parts) <= c.PART_URLS_PER_PAGE:
        return f"parts must be a list of 1 to {c.PART_URLS_PER_PAGE} parts: {PARTS_EXAMPLE}"
    for part in parts:
        if not isinstance(part, dict) or set(part) != set(PART_FIELDS):
            return f'each part must be {{"partNumber": n, "sha256": "..."}} and no other field (got {str(part)[:60]})'
        number = part["partNumber"]
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= count:
            return f"partNumber must be 1 to {count}, this upload's part count (got {str(number)[:20]})"
        if not (isinstance(part["sha256"], str) and SHA256_HEX.fullmatch(part["sha256"])):
            return f"sha256 of part {number} must be its SHA-256 as 64 lower-case hexadecimal digits"
    numbers = [p["partNumber"] for p in parts]
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeated:
        return "parts repeated: " + ", ".join(map(str, repeated[:20]))
    return None


def part_url(s3, bucket, key, upload_id, number, sha256_hex, seconds):
    """A presigned UploadPart URL for part `number` with this SHA-256, and exactly the headers its request sends.
    ChecksumSHA256 (no ChecksumAlgorithm: with it botocore would sign x-amz-sdk-checksum-algorithm as well, which S3
    does not need when the checksum itself is sent) makes botocore sign x-amz-checksum-sha256 as a header
    (X-Amz-SignedHeaders=host;x-amz-checksum-sha256), not hoist it into the query (tests/test_presigned_refusals.py
    checks this against the URL)."""
    checksum = sha256_base64(sha256_hex)
    url = s3.generate_presigned_url("upload_part", Params={
        "Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": number, "ChecksumSHA256": checksum},
        ExpiresIn=seconds)
    return {"partNumber": number, "url": url, "headers": {"x-amz-checksum-sha256": checksum}}


def held_parts(s3, bucket, key, upload_id):
    """The parts S3 holds for the upload: partNumber -> {etag, size, checksumSHA256}."""
    held = {}
    for page in s3.get_paginator("list_parts").paginate(Bucket=bucket, Key=key, UploadId=upload_id):
        for part in page.get("Parts", []):
            held[part["PartNumber"]] = {"etag": part["ETag"], "size": part["Size"],
                                        "checksumSHA256": part.get("ChecksumSHA256")}
    return held


def still_open(s3, store, bucket, key, video_id):
    """The video's open upload, or None; one S3 no longer has (the lifecycle aborts incomplete multipart uploads
    after a day, and that leaves the record) is closed here, so it is never resumed."""
    upload = recorded(store, video_id)
    if upload is None:
        return None
    try:
        s3.list_parts(Bucket=bucket, Key=key, UploadId=upload["uploadId"], MaxParts=1)
    except s3.exceptions.NoSuchUpload:
        record(store, video_id, {**upload, "state": "EXPIRED"})
        return None
    return upload


def start(s3, store, video_id, body, now):
    """(status, answer): a presigned PUT, a new multipart upload, or the open one of this video (resume)."""
    bucket, max_bytes, content_types, seconds = settings()
    error = request_error(body, max_bytes, content_types)
    if error:
        return 400, {"message": error}
    key = c.source_key(video_id)
    open_upload = still_open(s3, store, bucket, key, video_id)
    if open_upload:
        if (int(open_upload["size"]), open_upload["sha256"]) != (body["size"], body["sha256"]):
            return 409, {"message": f"an upload of another file is open for {video_id}: abort it first "
                                    f"(DELETE /videos/{video_id}/upload)"}
        return 200, plan(s3, bucket, key, open_upload, resumed=True)
    headers = {"Content-Type": body["contentType"], "x-amz-checksum-sha256": sha256_base64(body["sha256"]),
               "x-amz-meta-sha256": body["sha256"]}
    if body["size"] <= single_put_max():
        url = s3.generate_presigned_url("put_object", Params={
            "Bucket": bucket, "Key": key, "ContentType": body["contentType"],
            "ChecksumSHA256": headers["x-amz-checksum-sha256"], "Metadata": {"sha256": body["sha256"]}},
            ExpiresIn=seconds)
        return 201, {"method": "PUT", "url": url, "headers": headers, "expiresAt": records.iso(now + seconds),
                     "key": key}
    size_of_part = part_size(body["size"])
    created = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType=body["contentType"],
                                         ChecksumAlgorithm="SHA256", Metadata={"sha256": body["sha256"]})
    upload = {"state": "OPEN", "uploadId": created["UploadId"], "size": body["size"], "sha256": body["sha256"],
              "contentType": body["contentType"], "partSize": size_of_part,
              "partCount": math.ceil(body["size"] / size_of_part), "startedAt": records.iso(now)}
    record(store, video_id, upload)
    return 201, plan(s3, bucket, key, upload)


def plan(s3, bucket, key, upload, resumed=False):
    """A multipart upload's plan and the parts S3 holds (none yet for a new one): the client asks part URLs for
    the others (POST /videos/{videoId}/upload/parts)."""
    held = held_parts(s3, bucket, key, upload["uploadId"]) if resumed else {}
    return {"method": "MULTIPART", "uploadId": upload["uploadId"], "key": key, "partSize": int(upload["partSize"]),
            "partCount": int(upload["partCount"]), "size": int(upload["size"]),
            "parts": [{"partNumber": n, **p} for n, p in sorted(held.items())]}


def no_open_upload(video_id):
    return 404, {"message": f"no upload of {video_id} is open (POST /videos/{video_id}/upload starts one; S3 "
                            "aborts an upload left incomplete for a day)"}


def status(s3, store, video_id):
    bucket = settings()[0]
    upload = still_open(s3, store, bucket, c.source_key(video_id), video_id)
    if not upload:
        return no_open_upload(video_id)
    return 200, plan(s3, bucket, c.source_key(video_id), upload, resumed=True)


def part_urls(s3, store, video_id, body, now):
    """(status, answer): presigned URLs for the parts the body names, each signing that part's SHA-256. A part S3
    already holds may be asked again (sending it again replaces it)."""
    bucket, _max, _types, seconds = settings()
    key = c.source_key(video_id)
    upload = still_open(s3, store, bucket, key, video_id)
    if not upload:
        return no_open_upload(video_id)
    error = parts_error(body, int(upload["partCount"]))
    if error:
        return 400, {"message": error}
    return 200, {"urls": [part_url(s3, bucket, key, upload["uploadId"], p["partNumber"], p["sha256"], seconds)
                          for p in body["parts"]],
                 "expiresAt": records.iso(now + seconds)}


def complete_error(parts, held, count):
    """What is wrong with the client's part list against what S3 holds, or None."""
    if not isinstance(parts, list) or not all(isinstance(p, dict) and isinstance(p.get("partNumber"), int)
                                              and isinstance(p.get("etag"), str) for p in parts):
        return 'parts must be a list of {"partNumber": n, "etag": "..."}'
    numbers = [p["partNumber"] for p in parts]
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeated:
        return "parts repeated: " + ", ".join(map(str, repeated))
    foreign = sorted(p["partNumber"] for p in parts if held.get(p["partNumber"], {}).get("etag") != p["etag"])
    if foreign:
        return "parts this upload does not hold with that etag: " + ", ".join(map(str, foreign[:20]))
    missing = sorted(set(range(1, count + 1)) - set(numbers))
    if missing:
        return f"parts missing (of {count}): " + ", ".join(map(str, missing[:20]))
    return None


def complete(s3, store, video_id, parts):
    bucket = settings()[0]
    upload = recorded(store, video_id)
    if not upload:
        return 404, {"message": f"no upload of {video_id} is open"}
    key = c.source_key(video_id)
    held = held_parts(s3, bucket, key, upload["uploadId"])
    error = complete_error(parts, held, int(upload["partCount"]))
    if error:
        return 400, {"message": error}
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["uploadId"], MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": held[n]["etag"],
                   **({"ChecksumSHA256": held[n]["checksumSHA256"]} if held[n]["checksumSHA256"] else {})}
                  for n in range(1, int(upload["partCount"]) + 1)]})
    record(store, video_id, {**upload, "state": "COMPLETED", "versionId": done.get("VersionId")})
    return 200, {"key": key, "versionId": done.get("VersionId"), "sha256": upload["sha256"]}


def abort(s3, store, video_id):
    bucket = settings()[0]
    upload = recorded(store, video_id)
    if not upload:
        return 404, {"message": f"no upload of {video_id} is open"}
    s3.abort_multipart_upload(Bucket=bucket, Key=c.source_key(video_id), UploadId=upload["uploadId"])
    record(store, video_id, {**upload, "state": "ABORTED"})
    return 200, {"message": f"upload of {video_id} aborted", "uploadId": upload["uploadId"]}


# A presigned GET of an output lives this long (and no longer than the API role's session that signed it).
OUTPUT_URL_SECONDS = 900


def outputs(s3, bucket, video_id, attempt):
    """What an attempt produced, from its manifest (contract.MANIFEST_NAME under its outputs prefix): duration,
    renditions, and short-lived presigned GET URLs for the manifest, the playable MP4 (`download`) and the poster;
    None while there is no manifest (or it is not one of contract.MANIFEST_SCHEMA_VERSION). A presigned HLS master
    playlist is not offered: its segment URIs would not be signed (docs/known-gaps.md)."""
    prefix = c.outputs_prefix(video_id, attempt)
    try:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix + c.MANIFEST_NAME)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None
    except ValueError:
        return None
    if not isinstance(manifest, dict) or manifest.get("schemaVersion") != c.MANIFEST_SCHEMA_VERSION:
        return None

    def url(key):
        return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": prefix + key},
                                         ExpiresIn=OUTPUT_URL_SECONDS)

    found = {"manifestUrl": url(c.MANIFEST_NAME), "prefix": prefix,
             "durationSeconds": manifest.get("durationSeconds"), "renditions": manifest.get("renditions") or []}
    for name in ("download", "poster"):
        key = (manifest.get(name) or {}).get("key")
        if isinstance(key, str) and key and ".." not in key:
            found[f"{name}Url"] = url(key)
    return found
