"""What the job-control functions, the templates and the state machine must agree on: pure constants.

The functions (api.py, scheduler.py, jobs.py) run in Lambda with this directory as the package root and import
it as `contract`; the generator imports it as `generator.functions.video_jobs.contract`. It imports nothing, so
generation never pulls in boto3.
"""

# A videoId: what an execution name may hold, short enough that `<videoId>.<attempt>.<start>` fits the
# 80 characters of an execution name.
VIDEO_ID_CHARS = "A-Za-z0-9_-"
VIDEO_ID_MAX = 64

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

# Handlers, relative to the package root (the zip).
API_HANDLER = "api.lambda_handler"
SCHEDULER_HANDLER = "scheduler.lambda_handler"
