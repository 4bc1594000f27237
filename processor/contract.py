"""What the processor shares with the pipeline, copied from generator/functions/video_jobs/contract.py (the
processor is its own image and does not import the generator); tests/test_processor.py keeps them equal."""

# The media bucket's layout.
SOURCES_PREFIX = "sources/"
OUTPUTS_PREFIX = "outputs/"

# The manifest: OUTPUTS_PREFIX/<videoId>/<attempt>/ + MANIFEST_NAME, its shape processor/manifest.schema.json.
MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1

# Exit codes (docs/processor.md): 0 done; 3 the source is not media the pipeline accepts (the user's error: the
# state machine maps it to InvalidMedia, no retry); 1 anything else (retried).
EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_INVALID_MEDIA = 3

# The container contract's environment variables the processor reads (CONTRACT-MEDIA.md, docs/processor.md).
ENV_VIDEO_ID = "VIDEO_ID"
ENV_ATTEMPT = "ATTEMPT"
ENV_SOURCE_BUCKET = "SOURCE_BUCKET"
ENV_SOURCE_KEY = "SOURCE_KEY"
ENV_SOURCE_VERSION_ID = "SOURCE_VERSION_ID"
ENV_SOURCE_SHA256 = "SOURCE_SHA256"
ENV_OUTPUTS_BUCKET = "OUTPUTS_BUCKET"
ENV_OUTPUTS_PREFIX = "OUTPUTS_PREFIX"
ENV_ENVIRONMENT = "ENVIRONMENT"


def source_key(video_id):
    return f"{SOURCES_PREFIX}{video_id}"


def outputs_prefix(video_id, attempt):
    return f"{OUTPUTS_PREFIX}{video_id}/{int(attempt)}/"


# An attempt's progress in Redis: the processor writes it (processor/progress.py) at most every 10 s while it
# encodes, and 100 once the attempt is done; GET /videos/{videoId} shows it while the job is RUNNING. The value is
# JSON {"percent": <int 0-100>, "updatedAt": "2026-12-05T01:02:03Z"}; each write sets the key to expire
# PROGRESS_TTL_SECONDS later, so a dead task's progress disappears by itself.
PROGRESS_KEY_PREFIX = "progress:"
PROGRESS_TTL_SECONDS = 600


def progress_key(video_id, attempt):
    return f"{PROGRESS_KEY_PREFIX}{video_id}:{int(attempt)}"
