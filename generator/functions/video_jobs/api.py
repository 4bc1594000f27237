"""The video API behind API Gateway: submit a video (a job), follow it, list jobs.

    POST /videos {"videoId": "..."}        202 the job (QUEUED or RUNNING); 400 invalid; 409 while an attempt is
                                           queued or running, or after success (a FAILED video starts attempt n+1)
    GET  /videos/{videoId}                 200 the newest attempt (position while queued); 404 never submitted
    GET  /videos?status=&limit=&next=      200 a page of jobs and the next token; 400 naming a bad parameter
"""

import json
import logging
import re
from decimal import Decimal

import contract as c
import jobs

LOG = logging.getLogger(__name__)
LIST_PARAMETERS = ("limit", "next", "status")
DEFAULT_LIMIT = 25
SHOWN = ("videoId", "attempt", "status", "submittedAt", "startedAt", "endedAt", "executionArn", "lastError")


def reply(status, body):
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body, sort_keys=True, default=lambda n: int(n) if isinstance(n, Decimal) else str(n))}


def view(job, *, with_position=False):
    shown = {name: job[name] for name in SHOWN if name in job}
    if with_position and job["status"] == c.QUEUED:
        shown["position"] = jobs.position(job)  # how many queued videos are ahead
    return shown


def video_id_error(video_id):
    if not isinstance(video_id, str):
        return "videoId must be a string"
    if not 1 <= len(video_id) <= c.VIDEO_ID_MAX:
        return f"videoId must be 1-{c.VIDEO_ID_MAX} characters long (got {len(video_id)})"
    if not re.fullmatch(f"[{c.VIDEO_ID_CHARS}]+", video_id):
        return "videoId may contain only letters, digits, '-' and '_'"
    return None


def unique_fields(pairs):
    if len(dict(pairs)) < len(pairs):  # json.loads would keep the last
        raise ValueError("request body repeats a field")
    return dict(pairs)


def field_name(name):
    """A field's name as shown: quoted as JSON when it would not be seen (empty, blank, control characters)."""
    name = name[:40]
    return name if name.strip() and name.isprintable() else json.dumps(name)


def parse_body(raw):
    """(videoId, None), or (None, what is wrong)."""
    if not (raw or "").strip():
        return None, 'request body is required: {"videoId": "..."}'
    try:
        # Decimal: a 5,000-digit number is valid JSON (int() refuses more than 4,300 digits); it is refused below
        # as a videoId that is not a string, not called "not valid JSON".
        body = json.loads(raw, object_pairs_hook=unique_fields, parse_int=Decimal)
    except RecursionError:
        return None, "request body is nested too deeply"
    except ValueError as e:  # not JSON, or repeats
        return None, e.args[0] if "repeats" in e.args[0] else "request body is not valid JSON"
    if not isinstance(body, dict):
        return None, 'request body must be a JSON object: {"videoId": "..."}'
    if set(body) - {"videoId"}:
        return None, "unexpected field(s): " + ", ".join(map(field_name, sorted(set(body) - {"videoId"})))
    if "videoId" not in body:
        return None, "videoId is required"
    error = video_id_error(body["videoId"])
    return (None, error) if error else (body["videoId"], None)


def submit(event):
    video_id, error = parse_body(event.get("body"))
    if error:
        return reply(400, {"message": error})
    request = (event.get("requestContext") or {}).get("requestId")
    job, created = jobs.submit(video_id, request)
    if not created:
        what = "is already queued or running" if job["status"] != c.SUCCEEDED else "was already processed"
        return reply(409, {"message": f"videoId {video_id} {what} (attempt {int(job['attempt'])})", **view(job)})
    try:
        jobs.admit()
    except Exception:  # the job is recorded and waits in the queue; the scheduler admits it later
        LOG.exception("admitting after the submission of %s failed", video_id)
    return reply(202, view(jobs.get(video_id, job["attempt"]) or job, with_position=True))


def status(event):
    video_id = (event.get("pathParameters") or {}).get("videoId")
    error = video_id_error(video_id)
    if error:
        return reply(400, {"message": error})
    job = jobs.latest(video_id)
    return reply(200, view(job, with_position=True)) if job else reply(404, {"message": f"no video {video_id} was "
                                                                                        "submitted"})


def list_parameters(query):
    """(status, limit, token, None) or (None, None, None, what is wrong)."""
    query = query or {}
    unknown = sorted(set(query) - set(LIST_PARAMETERS))
    # An empty value means "not given": `GET /videos?status=&limit=&next=` lists like `GET /videos`.
    query = {name: value for name, value in query.items() if value != ""}
    if unknown:
        return None, None, None, (f"unknown query parameter(s): {', '.join(unknown)}; accepted: "
                                  f"{', '.join(LIST_PARAMETERS)}")
    status_ = query.get("status")
    if status_ is not None and status_ not in c.STATUSES:
        return None, None, None, f"status must be one of {', '.join(c.STATUSES)} (got {status_[:40]!r})"
    limit = query.get("limit", str(DEFAULT_LIMIT))
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= jobs.PAGE_MAX):
        return None, None, None, f"limit must be a whole number from 1 to {jobs.PAGE_MAX} (got {limit[:40]!r})"
    token = query.get("next")
    if token is not None:
        try:
            jobs.page_start(token)
        except ValueError as e:
            return None, None, None, str(e)
    return status_, int(limit), token, None


def list_videos(event):
    status_, limit, token, error = list_parameters(event.get("queryStringParameters"))
    if error:
        return reply(400, {"message": error})
    try:
        found, next_token = jobs.list_jobs(status_, limit, token)
    except ValueError as e:  # a token of another listing
        return reply(400, {"message": str(e)})
    except jobs.ClientError as e:
        if e.response["Error"]["Code"] != "ValidationException":
            raise
        return reply(400, {"message": "next is not a token of this listing (start again without it)"})
    return reply(200, {"jobs": [view(job) for job in found], "next": next_token})


ROUTES = {("POST", "/videos"): submit, ("GET", "/videos/{videoId}"): status, ("GET", "/videos"): list_videos}


def lambda_handler(event, context):
    route = ROUTES.get((event.get("httpMethod"), event.get("resource")))
    if route is None:
        return reply(404, {"message": "no such route"})
    try:
        return route(event)
    except Exception:  # traceback to the log only
        LOG.exception("%s %s failed", event.get("httpMethod"), event.get("resource"))
        return reply(500, {"message": "internal error; see the function's log"})
