"""The job-control scheduler: EventBridge invokes it when an execution of the state machine ends (release the
slot, record the outcome, admit the next queued videos), when a source arrives in the media bucket (S3's Object
Created: submit its job, jobs/arrivals.py) and every minute (reconcile lost events, admit what a backoff held
back). Every change it makes is conditional, so a repeated or late event changes nothing.
"""

import json
import logging

import boto3
import contract as c
from jobs import arrivals, lifecycle, records

LOG = logging.getLogger(__name__)
LOG.setLevel(logging.INFO)
STATUS_CHANGE = "Step Functions Execution Status Change"
SCHEDULED = "Scheduled Event"
# The boto3 clients outlive an invocation: made by the first that needs each, reused while this Lambda instance
# lives (https://docs.aws.amazon.com/lambda/latest/dg/best-practices.html: initialise SDK clients outside the
# handler). The only state the package keeps between invocations.
CLIENTS: dict = {}


def current_control():
    """What this invocation acts on: the function's environment, this instance's clients."""
    return lifecycle.from_environment(CLIENTS)


def job_of(detail):
    """(videoId, attempt) from the execution's input, or None for an execution job control did not start."""
    try:
        payload = json.loads(detail.get("input") or "")
        video_id, attempt = payload["videoId"], payload["attempt"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(video_id, str) or not isinstance(attempt, int) or isinstance(attempt, bool):
        return None
    return video_id, attempt


def execution_ended(control, detail):
    if detail.get("status") not in lifecycle.ENDED:
        return None
    found = job_of(detail)
    if found is None:
        LOG.warning("ignoring %s: its input names no videoId and attempt", detail.get("executionArn"))
        return None
    return lifecycle.end(control, *found, detail.get("executionArn"), detail["status"], detail.get("error"),
                         detail.get("cause"), detail.get("output"))


def s3_client():
    if "s3" not in CLIENTS:
        CLIENTS["s3"] = boto3.client("s3")
    return CLIENTS["s3"]


def backlog_metrics(table, queued, oldest_seconds, open_uploads, stalled_uploads, at):
    """One CloudWatch embedded-metric-format record: Lambda's log line becomes the four metrics."""
    return json.dumps({
        "_aws": {"Timestamp": int(at * 1000), "CloudWatchMetrics": [{
            "Namespace": c.METRICS_NAMESPACE, "Dimensions": [[c.METRIC_DIMENSION]],
            "Metrics": [{"Name": c.METRIC_QUEUED, "Unit": "Count"},
                        {"Name": c.METRIC_OLDEST_QUEUED, "Unit": "Seconds"},
                        {"Name": c.METRIC_OPEN_UPLOADS, "Unit": "Count"},
                        {"Name": c.METRIC_STALLED_UPLOADS, "Unit": "Count"}]}]},
        c.METRIC_DIMENSION: table, c.METRIC_QUEUED: queued, c.METRIC_OLDEST_QUEUED: oldest_seconds,
        c.METRIC_OPEN_UPLOADS: open_uploads, c.METRIC_STALLED_UPLOADS: stalled_uploads,
    }, sort_keys=True)


def lambda_handler(event, context):
    control = current_control()
    kind = event.get("detail-type")
    if kind == STATUS_CHANGE:
        ended = execution_ended(control, event.get("detail") or {})
        if ended:
            LOG.info("%s attempt %s: %s", ended[c.PARTITION_KEY], ended[c.SORT_KEY], ended["status"])
    elif kind == c.OBJECT_CREATED:
        outcome, job = arrivals.arrived(control, s3_client(), event.get("detail") or {})
        found = (event.get("detail") or {}).get("object") or {}
        LOG.info("%s version %s: %s%s", found.get("key"), found.get("version-id"), outcome,
                 f" as attempt {job[c.SORT_KEY]}" if job else "")
    elif kind == SCHEDULED:
        for job in lifecycle.reconcile(control):
            LOG.warning("reclaimed the slot of %s attempt %s (%s)", job[c.PARTITION_KEY], job[c.SORT_KEY],
                        job["status"])
    else:
        LOG.warning("ignoring an event of type %r", kind)
        return {"started": 0}
    started = lifecycle.admit(control)
    if kind == SCHEDULED:
        at = lifecycle.now()
        queued, oldest_seconds = records.backlog(control.store, at)
        open_count, stalled = records.open_uploads(control.store, at)
        # The metrics are this line (EMF).
        print(backlog_metrics(control.store.table, queued, oldest_seconds, open_count, stalled, at))
    return {"started": len(started)}
