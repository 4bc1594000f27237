"""The upload routes (generator/functions/video_jobs/jobs/uploads.py through api.py) against moto's S3 and DynamoDB.

Stand-in: moto (in-process) checks neither presigned signatures nor their expiry nor a checksum mismatch, so nothing
here claims S3 refused bytes: the parts are sent with the SDK (as the presigned URLs would send them) and what is
proven is the API's side: plans, resume, the listing of held parts, completion's checks, abort, and every hostile
request answered 400 with a message and nothing created.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from jobs_harness import api, contract, emulated_account, fresh_jobs, lifecycle, records, scheduler, table_properties

REGION = "ap-northeast-1"
MAX_BYTES = 2 * 1024 ** 3
BUCKETS = (f"media-{n}" for n in itertools.count(1))
SHA = hashlib.sha256(b"x").hexdigest()


@pytest.fixture(scope="module")
def moto_aws(templates):
    with emulated_account(REGION):
        yield table_properties(templates)


@pytest.fixture
def s3(moto_aws, monkeypatch):
    fresh_jobs(monkeypatch, moto_aws, REGION, cap=2)
    client = boto3.client("s3", region_name=REGION)
    bucket = next(BUCKETS)
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for name, value in (("MEDIA_BUCKET", bucket), ("UPLOAD_MAX_BYTES", str(MAX_BYTES)),
                        ("UPLOAD_CONTENT_TYPES", "video/mp4,video/webm"), ("UPLOAD_URL_SECONDS", "900")):
        monkeypatch.setenv(name, value)
    return client, bucket


def call(method, resource, video_id, body=None, query=None):
    event = {"httpMethod": method, "resource": resource, "pathParameters": {"videoId": video_id},
             "queryStringParameters": query, "body": None if body is None else json.dumps(body)}
    response = api.lambda_handler(event, None)
    return response["statusCode"], json.loads(response["body"])


def start(video_id, size, content_type="video/mp4", sha=SHA):
    return call("POST", "/videos/{videoId}/upload", video_id, {"size": size, "contentType": content_type,
                                                               "sha256": sha})


def nothing_created(client, bucket):
    return (not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
            and not client.list_object_versions(Bucket=bucket).get("Versions"))


def test_a_small_source_gets_one_presigned_put_signing_its_checksum_and_creates_nothing_yet(s3):
    client, bucket = s3
    code, body = start("clip-1", 1000)
    assert code == 201 and body["method"] == "PUT" and body["key"] == "sources/clip-1"
    assert "x-amz-checksum-sha256" in body["url"].lower() or body["headers"]["x-amz-checksum-sha256"]
    assert body["headers"]["x-amz-meta-sha256"] == SHA and body["headers"]["Content-Type"] == "video/mp4"
    assert nothing_created(client, bucket), "a PUT URL is only a signature"


def part_urls(video_id, parts):
    return call("POST", "/videos/{videoId}/upload/parts", video_id, {"parts": parts})


def test_a_large_source_is_a_multipart_plan_within_s3s_part_limits_and_its_urls_are_asked_per_checksum(s3):
    client, bucket = s3
    size = 1900 * 1024 ** 2
    code, body = start("big", size)
    assert code == 201 and body["method"] == "MULTIPART" and body["parts"] == []
    assert "urls" not in body, "a part URL signs the part's checksum, which the client computes from partSize"
    assert contract.S3_MIN_PART_BYTES <= body["partSize"] <= contract.S3_MAX_PART_BYTES
    assert body["partCount"] == -(-size // body["partSize"]) <= contract.S3_MAX_PARTS
    [upload] = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert upload["UploadId"] == body["uploadId"] and upload["Key"] == "sources/big"
    shas = {n: hashlib.sha256(str(n).encode()).hexdigest() for n in range(1, contract.PART_URLS_PER_PAGE + 1)}
    code, answer = part_urls("big", [{"partNumber": n, "sha256": sha} for n, sha in shas.items()])
    assert code == 200 and [u["partNumber"] for u in answer["urls"]] == list(shas), "as many as asked, in order"
    for u in answer["urls"]:
        signed = parse_qs(urlsplit(u["url"]).query)["X-Amz-SignedHeaders"][0].split(";")
        assert signed == ["host", "x-amz-checksum-sha256"] and list(u["headers"]) == ["x-amz-checksum-sha256"]
        assert base64.b64decode(u["headers"]["x-amz-checksum-sha256"]).hex() == shas[u["partNumber"]]
        assert f"uploadId={body['uploadId']}" in u["url"] and f"partNumber={u['partNumber']}&" in u["url"]


@pytest.mark.parametrize("parts, says", [
    ([], "1 to 100 parts"),
    ([{"partNumber": n, "sha256": SHA} for n in range(1, 102)], "1 to 100 parts"),
    ({"partNumber": 1, "sha256": SHA}, "must be a list"),
    ([{"partNumber": 0, "sha256": SHA}], "partNumber must be 1 to 19"),
    ([{"partNumber": 20, "sha256": SHA}], "partNumber must be 1 to 19"),
    ([{"partNumber": "1", "sha256": SHA}], "partNumber must be 1 to 19"),
    ([{"partNumber": True, "sha256": SHA}], "partNumber must be 1 to 19"),
    ([{"partNumber": 1.0, "sha256": SHA}], "partNumber must be 1 to 19"),
    ([{"partNumber": 1, "sha256": SHA.upper()}], "64 lower-case"),
    ([{"partNumber": 1, "sha256": base64.b64encode(bytes(32)).decode()}], "64 lower-case"),
    ([{"partNumber": 1}], "and no other field"),
    ([{"partNumber": 1, "sha256": SHA, "etag": "x"}], "and no other field"),
    (["1"], "and no other field"),
    ([{"partNumber": 2, "sha256": SHA}, {"partNumber": 2, "sha256": SHA}], "parts repeated: 2"),
])
def test_hostile_part_url_requests_answer_400_with_a_message(s3, parts, says):
    assert start("asked", 300 * 1024 ** 2)[1]["partCount"] == 19
    code, answer = part_urls("asked", parts)
    assert code == 400 and says in answer["message"], answer


def test_part_urls_need_an_open_upload_and_a_body_of_parts_only(s3):
    code, answer = part_urls("never-started", [{"partNumber": 1, "sha256": SHA}])
    assert code == 404 and "no upload of never-started is open" in answer["message"]
    start("asked", 300 * 1024 ** 2)
    code, answer = call("POST", "/videos/{videoId}/upload/parts", "asked",
                        {"parts": [{"partNumber": 1, "sha256": SHA}], "uploadId": "another"})
    assert code == 400 and "no other field" in answer["message"]
    code, answer = call("GET", "/videos/{videoId}/upload", "asked", query={"partsFrom": "2"})
    assert code == 400 and "takes no query parameter" in answer["message"]


@pytest.mark.parametrize("size", [1, 100 * 1024 ** 2, 5 * 1024 ** 3, 50 * 1024 ** 3, 5 * 1024 ** 4])
def test_the_part_plan_fits_s3s_limits_at_every_size(size):
    from jobs import uploads
    if size <= contract.SINGLE_PUT_MAX_BYTES:
        return
    part = uploads.part_size(size)
    assert contract.S3_MIN_PART_BYTES <= part <= contract.S3_MAX_PART_BYTES
    assert -(-size // part) <= contract.S3_MAX_PARTS


def test_a_test_may_shrink_the_parts_through_the_environment_but_never_below_s3s_minimum(monkeypatch):
    """UPLOAD_PART_BYTES and UPLOAD_SINGLE_PUT_MAX_BYTES (unset in the templates) let the local multipart test use
    parts of 5 MiB; a smaller value still gives S3's minimum, which S3 enforces for every part but the last."""
    from jobs import uploads
    assert (uploads.part_size(300 * 1024 ** 2), uploads.single_put_max()) == (contract.PART_DEFAULT_BYTES,
                                                                              contract.SINGLE_PUT_MAX_BYTES)
    monkeypatch.setenv(uploads.ENV_PART_BYTES, "1024")
    monkeypatch.setenv(uploads.ENV_SINGLE_PUT_MAX_BYTES, str(contract.S3_MIN_PART_BYTES))
    assert uploads.part_size(12 * 1024 ** 2) == contract.S3_MIN_PART_BYTES
    assert uploads.single_put_max() == contract.S3_MIN_PART_BYTES


def test_a_second_request_resumes_the_open_upload_and_lists_the_parts_s3_holds(s3):
    client, bucket = s3
    size = 200 * 1024 ** 2
    _, first = start("resume-me", size)
    part = b"p" * first["partSize"]
    sent = client.upload_part(Bucket=bucket, Key=first["key"], UploadId=first["uploadId"], PartNumber=1, Body=part,
                              ChecksumSHA256=base64.b64encode(hashlib.sha256(part).digest()).decode())
    code, again = start("resume-me", size)
    assert code == 200 and again["uploadId"] == first["uploadId"], "the same upload, not a second one"
    assert [p["partNumber"] for p in again["parts"]] == [1] and again["parts"][0]["etag"] == sent["ETag"]
    code, listed = call("GET", "/videos/{videoId}/upload", "resume-me")
    assert code == 200 and [p["partNumber"] for p in listed["parts"]] == [1]
    assert {k: v for k, v in listed.items() if k != "parts"} == {k: v for k, v in first.items() if k != "parts"}, \
        "the same plan"
    assert len(client.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 1


def test_an_upload_the_lifecycle_aborted_is_never_resumed_and_a_new_request_starts_afresh(s3):
    """The bucket's lifecycle aborts a multipart upload left incomplete for a day; its record stayed OPEN, and a
    second request "resumed" an upload S3 no longer had (every part URL refused). Now it is closed and replaced."""
    client, bucket = s3
    size = 200 * 1024 ** 2
    _, first = start("left-for-a-day", size)
    client.abort_multipart_upload(Bucket=bucket, Key=first["key"], UploadId=first["uploadId"])  # the lifecycle
    code, listed = call("GET", "/videos/{videoId}/upload", "left-for-a-day")
    assert code == 404 and "aborts an upload left incomplete for a day" in listed["message"]
    code, again = start("left-for-a-day", size)
    assert code == 201 and again["uploadId"] != first["uploadId"], "a new upload, not the aborted one"
    assert [u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [again["uploadId"]]


@pytest.mark.slow  # uploads parts of 5 MiB and more to moto (seconds)
def test_complete_refuses_missing_repeated_and_foreign_parts_then_completes_one_version(s3):
    client, bucket = s3
    size = 150 * 1024 ** 2
    _, up = start("whole", size)
    etags = {}
    for n in range(1, up["partCount"] + 1):
        length = min(up["partSize"], size - (n - 1) * up["partSize"])
        etags[n] = client.upload_part(Bucket=bucket, Key=up["key"], UploadId=up["uploadId"], PartNumber=n,
                                      Body=b"v" * length, ChecksumAlgorithm="SHA256")["ETag"]
    parts = [{"partNumber": n, "etag": e} for n, e in etags.items()]
    path = "/videos/{videoId}/upload/complete"
    for hostile, says in ((parts[:-1], "missing"), (parts + parts[:1], "repeated"),
                          ([*parts[:-1], {"partNumber": up["partCount"], "etag": '"forged"'}], "does not hold"),
                          ([*parts, {"partNumber": 9999, "etag": '"x"'}], "does not hold")):
        code, body = call("POST", path, "whole", {"parts": hostile})
        assert code == 400 and says in body["message"], body
        assert not client.list_object_versions(Bucket=bucket).get("Versions"), "a refused completion made nothing"
    code, body = call("POST", path, "whole", {"parts": parts})
    [version] = client.list_object_versions(Bucket=bucket)["Versions"]
    assert code == 200 and body["versionId"] == version["VersionId"] and body["sha256"] == SHA
    assert client.head_object(Bucket=bucket, Key=up["key"])["Metadata"] == {"sha256": SHA}, "recorded with it"


def test_abort_leaves_nothing_behind(s3):
    client, bucket = s3
    _, up = start("dropped", 300 * 1024 ** 2)
    client.upload_part(Bucket=bucket, Key=up["key"], UploadId=up["uploadId"], PartNumber=1,
                       Body=b"a" * up["partSize"], ChecksumAlgorithm="SHA256")
    code, _ = call("DELETE", "/videos/{videoId}/upload", "dropped")
    assert code == 200 and nothing_created(client, bucket)
    assert call("GET", "/videos/{videoId}/upload", "dropped")[0] == 404


@pytest.mark.parametrize("video_id, body, says", [
    ("clip", {"size": 0, "contentType": "video/mp4", "sha256": SHA}, "size must be 1 to"),
    ("clip", {"size": -5, "contentType": "video/mp4", "sha256": SHA}, "size must be 1 to"),
    ("clip", {"size": MAX_BYTES + 1, "contentType": "video/mp4", "sha256": SHA}, f"1 to {MAX_BYTES} bytes"),
    ("clip", {"size": "12", "contentType": "video/mp4", "sha256": SHA}, "whole number"),
    ("clip", {"size": 1.5, "contentType": "video/mp4", "sha256": SHA}, "whole number"),
    ("clip", {"size": True, "contentType": "video/mp4", "sha256": SHA}, "whole number"),
    ("clip", {"size": 10, "contentType": "application/x-sh", "sha256": SHA}, "video/mp4, video/webm"),
    ("clip", {"size": 10, "contentType": "video/mp4", "sha256": "abc"}, "64 lower-case"),
    ("clip", {"size": 10, "contentType": "video/mp4"}, "required: sha256"),
    ("clip", {"size": 10, "contentType": "video/mp4", "sha256": SHA, "acl": "public-read"}, "unexpected"),
    ("../etc", {"size": 10, "contentType": "video/mp4", "sha256": SHA}, "videoId may contain only"),
    ("x" * 65, {"size": 10, "contentType": "video/mp4", "sha256": SHA}, "1-64 characters"),
])
def test_hostile_upload_requests_answer_400_with_a_message_and_create_nothing(s3, video_id, body, says):
    client, bucket = s3
    code, answer = call("POST", "/videos/{videoId}/upload", video_id, body)
    assert code == 400 and says in answer["message"], answer
    assert nothing_created(client, bucket)


def test_open_multipart_uploads_are_counted_for_the_alarm_until_completed_aborted_or_past_the_lifecycle(
        s3, monkeypatch):  # s3: the bucket and the upload settings
    """Protects the uploads-not-completed alarm's metric: S3 publishes nothing for incomplete multipart uploads,
    so the scheduler counts the open upload records; a closed upload must leave the count, and one older than the
    lifecycle's abort (a day) must not count forever."""
    store = scheduler.current_control().store
    begun = lifecycle.now()
    for n, hours_ago in enumerate((0, 7, 7, 30)):
        monkeypatch.setattr(lifecycle, "now", lambda at=begun - hours_ago * 3600: at)
        assert start(f"up-{n}", 300 * 1024 ** 2)[0] == 201
    at = begun + 1
    assert records.open_uploads(store, at) == (3, 2), "the day-old one left out; the 7-hour-old ones stalled"
    assert call("DELETE", "/videos/{videoId}/upload", "up-1")[0] == 200
    assert records.open_uploads(store, at) == (2, 1), "an aborted upload leaves the count"
    listed = api.lambda_handler({"httpMethod": "GET", "resource": "/videos", "queryStringParameters": None}, None)
    assert json.loads(listed["body"])["jobs"] == [], "an open upload is not a job: GET /videos does not list it"
