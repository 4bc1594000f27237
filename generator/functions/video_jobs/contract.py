"""What the job-control functions, the templates and the state machine must agree on: pure data.

The functions (api.py, scheduler.py, the jobs package) run in Lambda with this directory as the package root and
import it as `contract`; the generator imports it as `generator.functions.video_jobs.contract`. It imports only
the standard library's typing, so generation never pulls in boto3.
"""

from typing import NamedTuple

# A videoId: what an execution name may hold, short enough that `<videoId>.<attempt>.<start>` fits the
# 80 characters of an execution name.
VIDEO_ID_CHARS = "A-Za-z0-9_-"
VIDEO_ID_MAX = 64

# The body of POST /videos, as JSON schema draft 4 (API Gateway's models): API Gateway refuses any other body
# before the function runs; the function applies the same rule with its own messages.
VIDEO_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": VIDEO_ID_MAX, "pattern": f"^[{VIDEO_ID_CHARS}]+$"}
SUBMIT_VIDEO_SCHEMA = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "SubmitVideo",
    "type": "object",
    "properties": {"videoId": VIDEO_ID_SCHEMA},
    "required": ["videoId"],
    "additionalProperties": False,
}


# The media bucket's layout: a video's source is one object, sources/<videoId> (a re-upload is a new version of
# it: the version is what a job is admitted for); what an attempt produced is under outputs/<videoId>/<attempt>/.
SOURCES_PREFIX = "sources/"
OUTPUTS_PREFIX = "outputs/"


def source_key(video_id):
    return f"{SOURCES_PREFIX}{video_id}"


def outputs_prefix(video_id, attempt):
    return f"{OUTPUTS_PREFIX}{video_id}/{int(attempt)}/"


def video_of_source(key):
    """The videoId whose source `key` is (sources/<videoId>), or None for any other key."""
    video_id = key[len(SOURCES_PREFIX):] if isinstance(key, str) and key.startswith(SOURCES_PREFIX) else ""
    return video_id if 1 <= len(video_id) <= VIDEO_ID_MAX and all(
        ch.isascii() and (ch.isalnum() or ch in "_-") for ch in video_id) else None


# What the processor writes last under an attempt's outputs prefix: the one object the API and the completion
# notice read (processor/manifest.py defines the document; every key in it is relative to the outputs prefix).
MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1
# Two outputs have fixed names under the prefix (processor/media.py: DOWNLOAD, POSTER), so the completion notice
# names them without reading the manifest: the progressive MP4 and the poster image.
DOWNLOAD_NAME = "download.mp4"
POSTER_NAME = "poster.jpg"


# An attempt's progress in Redis: the processor writes it (processor/progress.py) at most every 10 s while it
# encodes, and 100 once the attempt is done; GET /videos/{videoId} shows it while the job is RUNNING. The value is
# JSON {"percent": <int 0-100>, "updatedAt": "2026-12-05T01:02:03Z"}; each write sets the key to expire
# PROGRESS_TTL_SECONDS later, so a dead task's progress disappears by itself.
PROGRESS_KEY_PREFIX = "progress:"
PROGRESS_TTL_SECONDS = 600


def progress_key(video_id, attempt):
    return f"{PROGRESS_KEY_PREFIX}{video_id}:{int(attempt)}"


# S3 sends "Object Created" to EventBridge for every completed upload (a PUT, a completed multipart upload, a copy)
# once the bucket's EventBridge notifications are on: https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventBridge.html
OBJECT_CREATED = "Object Created"
# The sha256 the client declared travels as this object metadata (x-amz-meta-sha256).
SHA256_METADATA = "sha256"
# The environment variable naming the media bucket (both functions: the API signs uploads, the scheduler reads
# a source's metadata and hands the bucket to the execution).
ENV_MEDIA_BUCKET = "MEDIA_BUCKET"


# S3's limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html): a part is 5 MiB to 5 GiB (the
# last may be smaller), at most 10,000 parts; one PUT carries at most 5 GiB.
S3_MIN_PART_BYTES = 5 * 1024 ** 2
S3_MAX_PART_BYTES = 5 * 1024 ** 3
S3_MAX_PARTS = 10_000
S3_MAX_PUT_BYTES = 5 * 1024 ** 3
# Up to this size one presigned PUT (AWS advises multipart from about 100 MB); above it, parts of at least 16 MiB.
SINGLE_PUT_MAX_BYTES = 100 * 1024 ** 2
PART_DEFAULT_BYTES = 16 * 1024 ** 2
PART_URLS_PER_PAGE = 100  # presigned part URLs one request may ask (each ~1.5 KB: far below Lambda's 6 MB)

SHA256_SCHEMA = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
START_UPLOAD_SCHEMA = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "StartUpload",
    "type": "object",
    "properties": {"size": {"type": "integer", "minimum": 1}, "contentType": {"type": "string", "maxLength": 100},
                   "sha256": SHA256_SCHEMA},
    "required": ["size", "contentType", "sha256"],
    "additionalProperties": False,
}
COMPLETE_UPLOAD_SCHEMA = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "CompleteUpload",
    "type": "object",
    "properties": {"parts": {"type": "array", "minItems": 1, "maxItems": S3_MAX_PARTS, "items": {
        "type": "object", "properties": {"partNumber": {"type": "integer", "minimum": 1, "maximum": S3_MAX_PARTS},
                                         "etag": {"type": "string", "maxLength": 100}},
        "required": ["partNumber", "etag"], "additionalProperties": False}}},
    "required": ["parts"],
    "additionalProperties": False,
}

PART_URLS_SCHEMA = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "PartUrls",
    "type": "object",
    "properties": {"parts": {"type": "array", "minItems": 1, "maxItems": PART_URLS_PER_PAGE, "items": {
        "type": "object", "properties": {"partNumber": {"type": "integer", "minimum": 1, "maximum": S3_MAX_PARTS},
                                         "sha256": SHA256_SCHEMA},
        "required": ["partNumber", "sha256"], "additionalProperties": False}}},
    "required": ["parts"],
    "additionalProperties": False,
}


class Route(NamedTuple):
    """One route of the video API. The api tier builds its API Gateway resource, method, model and Lambda
    permission from this row, and api.py's function named `handler` answers it: a new route is one row here
    plus that function."""

    method: str
    path: str  # API Gateway's resource path, as the proxy event's `resource`; `{name}` is a required path parameter
    handler: str  # a function of api.py; in PascalCase it names the route's resources (submit_video: SubmitVideo)
    description: str
    body: dict | None = None  # the JSON schema API Gateway checks the body against, or no body
    query: tuple[str, ...] = ()  # optional query-string parameters; the handler checks their values


ROUTES = (
    Route("POST", "/videos", "submit_video",
          'Submit a video {"videoId": "..."}: 202 the job, QUEUED or RUNNING (admitted at once while a slot is '
          "free); 400 invalid; 409 while an attempt is queued or running, or after one succeeded (a failed video "
          "may be submitted again: attempt n+1)",
          body=SUBMIT_VIDEO_SCHEMA),
    Route("GET", "/videos", "list_videos",
          "A page of jobs, one status in submission order or every status (QUEUED first), and the next page's "
          "token: 200; 400 naming a bad parameter",
          query=("limit", "next", "status")),
    Route("GET", "/videos/{videoId}", "get_video",
          "The video's newest attempt (status, attempt, times, lastError, position while queued, progress while "
          "running): 200; 404 never submitted"),
    Route("POST", "/videos/{videoId}/upload", "start_upload",
          'Start uploading the source {"size", "contentType", "sha256"}: 201 one presigned PUT (with the headers to '
          "send) or a multipart upload's plan (part size and count; its part URLs: POST .../upload/parts); 200 the "
          "open multipart upload of this video with the parts S3 holds (resume); 400 naming a refused size, content "
          "type or checksum; 409 another file's upload is open",
          body=START_UPLOAD_SCHEMA),
    Route("GET", "/videos/{videoId}/upload", "get_upload",
          "The open multipart upload's plan and the parts S3 holds (resume: ask URLs for the others): 200; 404 none "
          "open"),
    Route("POST", "/videos/{videoId}/upload/parts", "part_urls",
          'Presigned URLs for up to 100 parts of the open multipart upload {"parts": [{"partNumber", "sha256"}]}, '
          "each URL signing its part's SHA-256, with the headers to send: 200; 400 naming a part number outside the "
          "upload, a repeated part or a malformed checksum; 404 none open",
          body=PART_URLS_SCHEMA),
    Route("POST", "/videos/{videoId}/upload/complete", "complete_upload",
          'Complete the multipart upload {"parts": [{"partNumber", "etag"}]}: 200 the source\'s key and version; '
          "400 naming missing, repeated or foreign parts; 404 none open",
          body=COMPLETE_UPLOAD_SCHEMA),
    Route("DELETE", "/videos/{videoId}/upload", "abort_upload",
          "Abort the open multipart upload (S3 drops its parts): 200; 404 none open"),
)


def route(handler: str) -> Route:
    """The route a function of api.py answers."""
    [found] = [r for r in ROUTES if r.handler == handler]
    return found


# The job table: one item per video and attempt, keyed (videoId, attempt).
PARTITION_KEY = "videoId"
SORT_KEY = "attempt"
# Sparse index over the jobs by status, in submission order: the queue (status QUEUED, oldest first), the
# running set (the reconciler's sweep) and GET /videos?status=.
STATUS_INDEX = "by-status"
STATUS_INDEX_PARTITION_KEY = "status"
STATUS_INDEX_SORT_KEY = "seq"
# The slot counter and the submission sequence live in one item no videoId can name ('#' is not allowed in one).
CONTROL_VIDEO_ID = "#control"
CONTROL_ATTEMPT = 0

# One item per source object version that arrived (bucket, key, versionId): written once, conditionally, so a
# version's event delivered twice, late or out of order admits at most one job. Its videoId is
# `#object#<bucket>/<key>#<versionId>` (no videoId can name it: '#' is not allowed in one), its attempt 0.
ARRIVAL_PREFIX = "#object#"


def arrival_key(bucket, key, version_id):
    return f"{ARRIVAL_PREFIX}{bucket}/{key}#{version_id}"


QUEUED = "QUEUED"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED)

# Environment variables of both functions (the scheduler also gets ERROR_TOPIC_ARN).
ENV_TABLE = "JOBS_TABLE"
ENV_STATE_MACHINE_ARN = "STATE_MACHINE_ARN"
ENV_MAX_CONCURRENT = "MAX_CONCURRENT_VIDEOS"
ENV_ERROR_TOPIC_ARN = "ERROR_TOPIC_ARN"

# When RunTask had no capacity (throttled, vCPU quota, no Fargate capacity) after its own short retries, the
# state machine SUCCEEDS with the output {OUTCOME: CAPACITY_UNAVAILABLE, "cause": ...}: the scheduler puts the video
# back in the queue, it is not a failure (a Fail state would count in ExecutionsFailed and page). Executions that
# started under the older definition end FAILED with this error instead; the scheduler reads both.
CAPACITY_UNAVAILABLE = "CapacityUnavailable"
OUTCOME = "outcome"
# The state machine's Fail state after it published to the error topic; its cause is that notification as JSON.
# Any other FAILED ending told nobody, so the scheduler notifies.
NOTIFIED_FAILURE = "ProcessingError"

# The processor exits 3 for a source that is not a video it can process (contract of processor/): the user's
# error. The state machine ends it like a capacity shortage, succeeding with {OUTCOME: INVALID_MEDIA, "cause": ...}
# after it notified the error topic once: not retried, and not a Fail state (ExecutionsFailed pages for the
# pipeline's failures, not for a client's bad file). The scheduler records the job FAILED with this error.
INVALID_MEDIA = "InvalidMedia"
INVALID_MEDIA_EXIT_CODE = 3

# Notifications. The state machine publishes every outcome on the completion or the error topic; the scheduler
# publishes, on the error topic, the failures no state of the machine reported (a time-out, an abort, a failed
# publish). Every message is a JSON object, `notice(...)`, under its topic's subject.
COMPLETION_SUBJECT = "Video Processing Completed"
ERROR_SUBJECT = "Video Processing Error"


def notice(video_id, execution_arn, status, **details):
    """A notification's message: which video (absent when the input named none: a rejected input carries the input
    instead), which execution, how it ended (SUCCEEDED or FAILED); then the details, `error` and `cause` for every
    failure, and `taskArn`, `attempt` or `input` where known."""
    return {**({"videoId": video_id} if video_id is not None else {}), "executionArn": execution_arn,
            "status": status, **details}


def failure_notice(video_id, execution_arn, error, cause, **details):
    """The error topic's message: what went wrong with which video and execution."""
    return notice(video_id, execution_arn, FAILED, error=error, cause=cause, **details)


# A lost release is reclaimed by the reconciler, which the schedule runs this often (EventBridge rate).
RECONCILE_EVERY_MINUTES = 1
# A RUNNING job whose execution does not exist this long after its start is put back in the queue.
START_GRACE_SECONDS = 120

# The backlog, published by the scheduler at every reconcile tick as an embedded-metric-format log line (no
# cloudwatch:PutMetricData needed): how many videos wait and how long the oldest has waited.
METRICS_NAMESPACE = "VideoProcessing/Jobs"
METRIC_DIMENSION = "JobsTable"  # the table's name
METRIC_QUEUED = "QueuedVideos"
METRIC_OLDEST_QUEUED = "OldestQueuedSeconds"
# Open multipart uploads, published beside the backlog (S3 has no metric for incomplete multipart uploads). Their
# records sit in the status index under UPLOADING (not a job status: never listed by GET /videos) with their start
# (epoch seconds) as seq, so a tick counts them with two key-range queries, no scan.
UPLOADING = "UPLOADING"
METRIC_OPEN_UPLOADS = "OpenUploads"  # started within the last ABORT_INCOMPLETE_UPLOADS_DAYS (S3 still holds parts)
METRIC_STALLED_UPLOADS = "StalledUploads"  # of those, started over UPLOAD_STALLED_SECONDS ago
# The media bucket's lifecycle aborts an incomplete multipart upload this many days after it started.
ABORT_INCOMPLETE_UPLOADS_DAYS = 1
# An upload still open this long after its start is most likely abandoned (a client that resumes finishes sooner;
# the lifecycle removes its parts at a day).
UPLOAD_STALLED_SECONDS = 6 * 3600

# Handlers, relative to the package root (the zip).
API_HANDLER = "api.lambda_handler"
SCHEDULER_HANDLER = "scheduler.lambda_handler"
