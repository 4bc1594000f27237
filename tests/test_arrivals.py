"""Admission on arrival (generator/functions/video_jobs/jobs/arrivals.py through scheduler.py): an uploaded source
submits its job, exactly one per object version, however its Object Created events are delivered.

What stands in for AWS: moto's S3 sends Object Created to EventBridge and moto's rules match it (the generated
SourceArrivedRule's own pattern), but the rule's target is the scheduler Lambda, which moto runs only in docker.
Here the rule targets an SQS queue instead and the test hands what arrives there to the real scheduler handler,
as EventBridge would invoke it: each event once or several times, in a seeded random order (EventBridge delivers
at least once and does not keep order). moto's `sequencer` is constant, so nothing here relies on it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import threading

import boto3
import pytest

from jobs_harness import api, contract, emulated_account, fresh_jobs, lifecycle, records, scheduler, table_properties

pytestmark = pytest.mark.slow  # seconds in moto's harness: CI runs it, the fast loop leaves it out

REGION = "ap-northeast-1"
BUCKETS = (f"arrivals-{n}" for n in itertools.count(1))


@pytest.fixture(scope="module")
def moto_aws(templates):
    with emulated_account(REGION):
        yield templates


def arrival_pattern(templates: dict, bucket: str) -> dict:
    """The generated SourceArrivedRule's event pattern, its bucket parameter filled in."""
    pattern = templates["dev"]["jobs"]["Resources"]["SourceArrivedRule"]["Properties"]["EventPattern"]
    return json.loads(json.dumps(pattern).replace(json.dumps({"Ref": contract_name()}), json.dumps(bucket)))


def contract_name() -> str:
    from generator import contracts

    return contracts.MEDIA_BUCKET_NAME.name


class Media:
    """A versioned media bucket with EventBridge notifications, a rule of the generated pattern into a queue, and
    the scheduler's environment pointing at them."""

    def __init__(self, templates: dict, monkeypatch, cap: int):
        fresh_jobs(monkeypatch, table_properties(templates), REGION, cap=cap)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.bucket = next(BUCKETS)
        self.s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        self.s3.put_bucket_notification_configuration(Bucket=self.bucket, NotificationConfiguration={
            "EventBridgeConfiguration": {}})
        self.queue = self.sqs.create_queue(QueueName=self.bucket)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]
        events = boto3.client("events", region_name=REGION)
        events.put_rule(Name=self.bucket, EventPattern=json.dumps(arrival_pattern(templates, self.bucket)))
        events.put_targets(Rule=self.bucket, Targets=[{"Id": "instead-of-the-scheduler", "Arn": queue_arn}])
        monkeypatch.setenv(contract.ENV_MEDIA_BUCKET, self.bucket)
        monkeypatch.setenv(contract.ENV_ERROR_TOPIC_ARN, "")

    def upload(self, video_id: str, body: bytes) -> str:
        """A source uploaded as the presigned PUT sends it; returns its version."""
        return self.s3.put_object(Bucket=self.bucket, Key=contract.source_key(video_id), Body=body,
                                  Metadata={"sha256": hashlib.sha256(body).hexdigest()})["VersionId"]

    def events(self) -> list[dict]:
        """Every event the rule matched since the last call."""
        found = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages"):
            for m in messages:
                found.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])
        return found

    def current(self, video_id: str) -> str:
        return self.s3.head_object(Bucket=self.bucket, Key=contract.source_key(video_id))["VersionId"]


@pytest.fixture
def media(moto_aws, monkeypatch):
    return Media(moto_aws, monkeypatch, cap=50)


def deliver(event: dict) -> dict:
    return scheduler.lambda_handler(event, None)


def jobs_of(video_id: str) -> list[dict]:
    store = scheduler.current_control().store
    found = store.dynamodb.query(
        TableName=store.table, KeyConditionExpression="#k = :v", ExpressionAttributeNames={"#k": "videoId"},
        ExpressionAttributeValues=records.encode({":v": video_id}), ConsistentRead=True)["Items"]
    return [records.decode(item) for item in found]


def shuffled_with_repeats(rng: random.Random, events: list[dict]) -> list[dict]:
    """Each event one to three times, in a random order: at-least-once delivery without order."""
    repeated = [e for e in events for _ in range(rng.randint(1, 3))]
    rng.shuffle(repeated)
    return repeated


@pytest.mark.parametrize("seed", range(6))
def test_any_order_of_repeated_and_late_events_admits_one_job_per_current_version(media, seed):
    """The property: for every seeded order, each video gets one job, for its newest upload (a superseded
    version's late event adds nothing), with the declared sha256; a FAILED video uploaded again gets attempt 2
    for the new version, a running one nothing; no version is ever admitted twice."""
    rng = random.Random(seed)
    videos = [f"p{seed}-{i}" for i in range(5)]
    for video_id in videos:
        for n in range(rng.randint(1, 3)):
            media.upload(video_id, f"{video_id} take {n}".encode())
    first = media.events()
    assert len(first) >= len(videos), "moto delivered an Object Created event per upload"
    for event in shuffled_with_repeats(rng, first):
        deliver(event)
    control = scheduler.current_control()
    for video_id in videos:
        [job] = jobs_of(video_id)
        assert job["source"]["versionId"] == media.current(video_id), "the newest upload, not a late older one"
        body = media.s3.get_object(Bucket=media.bucket, Key=contract.source_key(video_id))["Body"].read()
        assert job["source"]["sha256"] == hashlib.sha256(body).hexdigest()
        assert job["source"]["bucket"] == media.bucket and job["status"] == contract.RUNNING

    failed = set(rng.sample(videos, 2))
    for video_id in failed:
        lifecycle.release(control, records.latest(control.store, video_id), contract.FAILED,
                          error={"error": "NonZeroExitCode", "cause": "test"})
    again = set(rng.sample(videos, 3))
    for video_id in again:
        media.upload(video_id, f"{video_id} again".encode())
    for event in shuffled_with_repeats(rng, first + media.events()):  # the old ones arrive late, again
        deliver(event)

    admitted: list[tuple] = []
    for video_id in videos:
        jobs = jobs_of(video_id)
        admitted += [(j["source"]["key"], j["source"]["versionId"]) for j in jobs]
        if video_id in failed and video_id in again:
            assert [j["attempt"] for j in jobs] == [1, 2]
            assert jobs[1]["source"]["versionId"] == media.current(video_id)
        else:
            assert len(jobs) == 1, f"{video_id}: failed {video_id in failed}, uploaded again {video_id in again}"
    assert len(admitted) == len(set(admitted)), "a version admitted twice"


def test_a_completed_multipart_upload_is_admitted_once_though_moto_announces_it_twice(media):
    mp = media.s3.create_multipart_upload(Bucket=media.bucket, Key=contract.source_key("multi"),
                                          Metadata={"sha256": "ab" * 32})
    part = media.s3.upload_part(Bucket=media.bucket, Key=contract.source_key("multi"), UploadId=mp["UploadId"],
                                PartNumber=1, Body=b"x" * 10)
    media.s3.complete_multipart_upload(Bucket=media.bucket, Key=contract.source_key("multi"), UploadId=mp["UploadId"],
                                       MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    events = media.events()
    assert len(events) == 2, "moto 5.2.5 sends Object Created twice for CompleteMultipartUpload (a duplicate for free)"
    for event in events:
        deliver(event)
    [job] = jobs_of("multi")
    assert job["source"]["sha256"] == "ab" * 32


def test_an_upload_while_an_attempt_runs_or_after_success_is_recorded_not_admitted(media):
    control = scheduler.current_control()
    media.upload("busy", b"one")
    [event] = media.events()
    deliver(event)
    media.upload("busy", b"two")
    [second] = media.events()
    deliver(second)
    assert len(jobs_of("busy")) == 1
    detail = second["detail"]
    arrival = records.get(control.store, contract.arrival_key(media.bucket, detail["object"]["key"],
                                                              detail["object"]["version-id"]), 0)
    assert arrival["outcome"] == "not-admitted" and "attempt 1 is RUNNING" in arrival["reason"]


def test_events_that_name_no_source_version_are_ignored_and_admit_nothing(media):
    base = {"detail-type": contract.OBJECT_CREATED, "source": "aws.s3"}
    for detail in ({}, {"bucket": {"name": media.bucket}, "object": {"key": "outputs/x/1/manifest.json",
                                                                       "version-id": "v"}},
                   {"bucket": {"name": media.bucket}, "object": {"key": "sources/x", "version-id": "null"}},
                   {"bucket": {"name": media.bucket}, "object": {"key": "sources/bad id", "version-id": "v"}},
                   {"bucket": {"name": media.bucket}, "object": {"key": "sources/gone", "version-id": "v"}}):
        assert deliver({**base, "detail": detail}) == {"started": 0}
    assert jobs_of("x") == [] and jobs_of("gone") == []


def test_post_videos_then_the_uploads_event_makes_one_job(media):
    """POST /videos is kept for sources placed by other means; its job and an upload's event do not both run."""
    answer = api.lambda_handler({"httpMethod": "POST", "resource": "/videos",
                                 "body": json.dumps({"videoId": "both"})}, None)
    assert answer["statusCode"] == 202
    media.upload("both", b"bytes")
    for event in media.events():
        deliver(event)
    [job] = jobs_of("both")
    assert job["source"] == {"bucket": media.bucket, "key": "sources/both", "versionId": "", "sha256": ""}


def test_the_execution_input_carries_the_source_and_the_attempts_outputs_prefix(media):
    version = media.upload("located", b"bytes")
    for event in media.events():
        deliver(event)
    control = scheduler.current_control()
    job = records.latest(control.store, "located")
    execution = control.stepfunctions.describe_execution(executionArn=job["executionArn"])
    assert json.loads(execution["input"]) == {
        "videoId": "located", "attempt": 1,
        "source": {"bucket": media.bucket, "key": "sources/located", "versionId": version,
                   "sha256": hashlib.sha256(b"bytes").hexdigest()},
        "outputs": {"bucket": media.bucket, "prefix": "outputs/located/1/"}}


@pytest.mark.load
def test_a_burst_of_100_uploads_completing_at_once_admits_each_once_within_the_cap(moto_aws, monkeypatch):
    from deploytools.moto_layer.threads import serialised_backends

    cap = 5
    media = Media(moto_aws, monkeypatch, cap=cap)
    videos = [f"burst-{i:03d}" for i in range(100)]
    for video_id in videos:
        media.upload(video_id, video_id.encode())
    events = shuffled_with_repeats(random.Random(100), media.events())
    failures: list[BaseException] = []

    def worker(share: list[dict]) -> None:
        for event in share:
            try:
                deliver(event)
            except BaseException as e:  # reported below
                failures.append(e)

    with serialised_backends():
        threads = [threading.Thread(target=worker, args=(events[i::8],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert failures == []
    counts = {video_id: len(jobs_of(video_id)) for video_id in videos}
    assert set(counts.values()) == {1}, {v: n for v, n in counts.items() if n != 1}
    assert records.slots_taken(scheduler.current_control().store) == cap, "the cap held, every slot used"


def test_get_returns_presigned_urls_from_the_attempts_manifest_once_it_succeeded(media):
    """Outputs reach the client: GET reads the attempt's manifest (contract.MANIFEST_NAME) and presigns the MP4,
    the poster and the manifest; no manifest (or another schema version) shows no outputs."""
    media.upload("made", b"bytes")
    for event in media.events():
        deliver(event)
    control = scheduler.current_control()
    lifecycle.release(control, records.latest(control.store, "made"), contract.SUCCEEDED)

    def get() -> dict:
        answer = api.lambda_handler({"httpMethod": "GET", "resource": "/videos/{videoId}",
                                     "pathParameters": {"videoId": "made"}}, None)
        assert answer["statusCode"] == 200
        return json.loads(answer["body"])

    assert "outputs" not in get(), "no manifest yet"
    prefix = contract.outputs_prefix("made", 1)
    manifest = {"schemaVersion": contract.MANIFEST_SCHEMA_VERSION, "videoId": "made", "attempt": 1,
                "durationSeconds": 4.0, "renditions": [{"name": "360p", "width": 640, "height": 360}],
                "download": {"key": "download.mp4"}, "poster": {"key": "poster.jpg"}}
    media.s3.put_object(Bucket=media.bucket, Key=prefix + contract.MANIFEST_NAME, Body=json.dumps(manifest).encode())
    outputs = get()["outputs"]
    assert outputs["durationSeconds"] == 4.0 and outputs["renditions"] == manifest["renditions"]
    for name, key in (("manifestUrl", contract.MANIFEST_NAME), ("downloadUrl", "download.mp4"),
                      ("posterUrl", "poster.jpg")):
        assert f"/{prefix}{key}?" in outputs[name] and "X-Amz-Expires=900" in outputs[name], name
    assert not any("m3u8" in str(v) for v in outputs.values()), "no presigned HLS master: it would not play"
    media.s3.put_object(Bucket=media.bucket, Key=prefix + contract.MANIFEST_NAME, Body=b'{"schemaVersion": 99}')
    assert "outputs" not in get(), "a manifest of another schema version is not read"
