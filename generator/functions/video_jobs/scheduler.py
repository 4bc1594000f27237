"""The job-control scheduler: EventBridge invokes it when an execution of the state machine ends (release the
slot, record the outcome, admit the next queued videos) and every minute (reconcile lost events, admit what a
backoff held back). Every change it makes is conditional, so a repeated or late event changes nothing.
"""

import json
import logging

import contract as c
import jobs

LOG = logging.getLogger(__name__)
LOG.setLevel(logging.INFO)
STATUS_CHANGE = "Step Functions Execution Status Change"
SCHEDULED = "Scheduled Event"


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


def execution_ended(detail):
    if detail.get("status") not in jobs.ENDED:
        return None
    found = job_of(detail)
    if found is None:
        LOG.warning("ignoring %s: its input names no videoId and attempt", detail.get("executionArn"))
        return None
    return jobs.end(*found, detail.get("executionArn"), detail["status"], detail.get("error"), detail.get("cause"),
                    detail.get("output"))


def lambda_handler(event, context):
    kind = event.get("detail-type")
    if kind == STATUS_CHANGE:
        ended = execution_ended(event.get("detail") or {})
        if ended:
            LOG.info("%s attempt %s: %s", ended[c.PARTITION_KEY], ended[c.SORT_KEY], ended["status"])
    elif kind == SCHEDULED:
        for job in jobs.reconcile():
            LOG.warning("reclaimed the slot of %s attempt %s (%s)", job[c.PARTITION_KEY], job[c.SORT_KEY],
                        job["status"])
    else:
        LOG.warning("ignoring an event of type %r", kind)
        return {"started": 0}
    started = jobs.admit()
    if kind == SCHEDULED:
        print(jobs.backlog_metrics(*jobs.backlog()))  # the metric is this log line (EMF)
    return {"started": len(started)}
