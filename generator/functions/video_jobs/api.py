"""The video API behind API Gateway: submit a video (a job), follow it, list jobs.

Its routes are contract.ROUTES (method, path, description): each names the function here that answers it, and
lambda_handler dispatches by the proxy event's method and resource path to that function.
"""

import json
import logging
import re
from decimal import Decimal

import boto3
import contract as c
from botocore.config import Config
from botocore.exceptions import ClientError
from jobs import lifecycle, progress, records, uploads

LOG = logging.getLogger(__name__)
LIST_PARAMETERS = c.route("list_videos").query
DEFAULT_LIMIT = 25
SHOWN = ("videoId", "attempt", "status", "submittedAt", "startedAt", "endedAt", "executionArn", "lastError")
# The boto3 clients (and jobs/progress.py's Redis client) outlive an invocation: made by the first that needs each,
# reused while this Lambda instance lives (https://docs.aws.amazon.com/lambda/latest/dg/best-practices.html:
# initialise SDK clients outside the handler). The only state the package keeps between invocations.
CLIENTS: dict = {}


def current_control():
    """What this invocation acts on: the function's environment, this instance's clients."""
    return lifecycle.from_environment(CLIENTS)


def reply(status, body):
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body, sort_keys=True, default=lambda n: int(n) if isinstance(n, Decimal) else str(n))}


def view(job, store=None):
    """What a client sees of a job; with the store, a queued job's position too."""
    shown = {name: job[name] for name in SHOWN if name in job}
    if store and job["status"] == c.QUEUED:
        shown["position"] = records.position(store, job)  # how many queued videos are ahead
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


def submit_video(event, control):
    video_id, error = parse_body(event.get("body"))
    if error:
        return reply(400, {"message": error})
    request = (event.get("requestContext") or {}).get("requestId")
    job, created = lifecycle.submit(control, video_id, request)
    if not created:
        what = "is already queued or running" if job["status"] != c.SUCCEEDED else "was already processed"
        return reply(409, {"message": f"videoId {video_id} {what} (attempt {int(job['attempt'])})", **view(job)})
    try:
        lifecycle.admit(control)
    except Exception:  # the job is recorded and waits in the queue; the scheduler admits it later
        LOG.exception("admitting after the submission of %s failed", video_id)
    store = control.store
    return reply(202, view(records.get(store, video_id, job["attempt"]) or job, store))


def get_video(event, control):
    video_id = (event.get("pathParameters") or {}).get("videoId")
    error = video_id_error(video_id)
    if error:
        return reply(400, {"message": error})
    job = records.latest(control.store, video_id)
    if not job:
        return reply(404, {"message": f"no video {video_id} was submitted"})
    shown = view(job, control.store)
    if job["status"] == c.RUNNING:
        found = progress.read(CLIENTS, video_id, int(job["attempt"]))  # what the processor last wrote, if anything
        if found:
            shown["progress"] = found
    if job["status"] == c.SUCCEEDED and control.media_bucket:
        outputs = uploads.outputs(s3_client(), control.media_bucket, video_id, int(job["attempt"]))
        if outputs:
            shown["outputs"] = outputs
    return reply(200, shown)


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
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= records.PAGE_MAX):
        return None, None, None, f"limit must be a whole number from 1 to {records.PAGE_MAX} (got {limit[:40]!r})"
    token = query.get("next")
    if token is not None:
        try:
            records.page_start(token)
        except ValueError as e:
            return None, None, None, str(e)
    return status_, int(limit), token, None


def list_videos(event, control):
    status_, limit, token, error = list_parameters(event.get("queryStringParameters"))
    if error:
        return reply(400, {"message": error})
    try:
        found, next_token = records.list_jobs(control.store, status_, limit, token)
    except ValueError as e:  # a token of another listing
        return reply(400, {"message": str(e)})
    except ClientError as e:
        if e.response["Error"]["Code"] != "ValidationException":
            raise
        return reply(400, {"message": "next is not a token of this listing (start again without it)"})
    return reply(200, {"jobs": [view(job) for job in found], "next": next_token})


def s3_client():
    # SigV4: S3 refuses a GET of an SSE-KMS object signed otherwise, and a presigned SigV2 URL is what an older
    # botocore default would give (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingAWSSDK.html).
    if "s3" not in CLIENTS:
        CLIENTS["s3"] = boto3.client("s3", config=Config(signature_version="s3v4"))
    return CLIENTS["s3"]


def path_video_id(event):
    """(videoId, None) or (None, a 400 reply)."""
    video_id = (event.get("pathParameters") or {}).get("videoId")
    error = video_id_error(video_id)
    return (None, reply(400, {"message": error})) if error else (video_id, None)


def json_object(raw, example):
    """(object, None) or (None, what is wrong)."""
    if not (raw or "").strip():
        return None, f"request body is required: {example}"
    try:
        body = json.loads(raw, object_pairs_hook=unique_fields)
    except RecursionError:
        return None, "request body is nested too deeply"
    except ValueError as e:
        return None, e.args[0] if "repeats" in e.args[0] else "request body is not valid JSON"
    return (body, None) if isinstance(body, dict) else (None, f"request body must be a JSON object: {example}")


def start_upload(event, control):
    video_id, bad = path_video_id(event)
    if bad:
        return bad
    body, error = json_object(event.get("body"), '{"size": N, "contentType": "video/mp4", "sha256": "..."}')
    if error:
        return reply(400, {"message": error})
    return reply(*uploads.start(s3_client(), control.store, video_id, body, lifecycle.now()))


def get_upload(event, control):
    video_id, bad = path_video_id(event)
    if bad:
        return bad
    if event.get("queryStringParameters"):
        return reply(400, {"message": "GET /videos/{videoId}/upload takes no query parameter (part URLs: "
                                      "POST /videos/{videoId}/upload/parts)"})
    return reply(*uploads.status(s3_client(), control.store, video_id))


def part_urls(event, control):
    video_id, bad = path_video_id(event)
    if bad:
        return bad
    body, error = json_object(event.get("body"), uploads.PARTS_EXAMPLE)
    if error:
        return reply(400, {"message": error})
    return reply(*uploads.part_urls(s3_client(), control.store, video_id, body, lifecycle.now()))


def complete_upload(event, control):
    video_id, bad = path_video_id(event)
    if bad:
        return bad
    body, error = json_object(event.get("body"), '{"parts": [{"partNumber": 1, "etag": "..."}]}')
    if error:
        return reply(400, {"message": error})
    if set(body) != {"parts"}:
        return reply(400, {"message": 'expected {"parts": [...]} and no other field'})
    return reply(*uploads.complete(s3_client(), control.store, video_id, body["parts"]))


def abort_upload(event, control):
    video_id, bad = path_video_id(event)
    if bad:
        return bad
    return reply(*uploads.abort(s3_client(), control.store, video_id))


def dispatch_table(routes, functions):
    """(method, resource path) -> the function of this module each declared route names."""
    missing = sorted(r.handler for r in routes if not callable(functions.get(r.handler)))
    if missing:
        raise LookupError(f"contract.ROUTES names no function of api.py: {', '.join(missing)}")
    return {(r.method, r.path): functions[r.handler] for r in routes}


DISPATCH = dispatch_table(c.ROUTES, globals())


def lambda_handler(event, context):
    route = DISPATCH.get((event.get("httpMethod"), event.get("resource")))
    if route is None:
        return reply(404, {"message": "no such route"})
    try:
        return route(event, current_control())
    except Exception:  # traceback to the log only
        LOG.exception("%s %s failed", event.get("httpMethod"), event.get("resource"))
        return reply(500, {"message": "internal error; see the function's log"})
