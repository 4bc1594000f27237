"""Video API behind API Gateway (inlined into api.json)."""
import json
import logging
import os
import re

import boto3

VIDEO_ID_CHARS = "A-Za-z0-9_-"  # an execution name's characters
VIDEO_ID_MAX = 80
_sfn = None


def sfn():
    global _sfn
    _sfn = _sfn or boto3.client("stepfunctions")
    return _sfn


def reply(status, body):
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def video_id_error(video_id):
    if not isinstance(video_id, str):
        return "videoId must be a string"
    if not 1 <= len(video_id) <= VIDEO_ID_MAX:
        return f"videoId must be 1-{VIDEO_ID_MAX} characters long (got {len(video_id)})"
    if not re.fullmatch(f"[{VIDEO_ID_CHARS}]+", video_id):
        return "videoId may contain only letters, digits, '-' and '_'"


def unique_fields(pairs):
    if len(dict(pairs)) < len(pairs):  # json.loads would keep the last
        raise ValueError("request body repeats a field")
    return dict(pairs)


def parse_body(raw):
    """(videoId, None), or (None, what is wrong)."""
    if not (raw or "").strip():
        return None, 'request body is required: {"videoId": "..."}'
    try:
        body = json.loads(raw, object_pairs_hook=unique_fields)
    except RecursionError:
        return None, "request body is nested too deeply"
    except ValueError as e:  # not JSON, or repeats
        return None, e.args[0] if "repeats" in e.args[0] else "request body is not valid JSON"
    if not isinstance(body, dict):
        return None, 'request body must be a JSON object: {"videoId": "..."}'
    if set(body) - {"videoId"}:
        return None, "unexpected field(s): " + ", ".join(sorted(set(body) - {"videoId"}))
    if "videoId" not in body:
        return None, "videoId is required"
    error = video_id_error(body["videoId"])
    return (None, error) if error else (body["videoId"], None)


def describe(video_id):
    arn = os.environ["STATE_MACHINE_ARN"].replace(":stateMachine:", ":execution:", 1) + ":" + video_id
    try:
        e = sfn().describe_execution(executionArn=arn)
    except sfn().exceptions.ExecutionDoesNotExist:
        return None
    stop = e.get("stopDate")
    return {"videoId": video_id, "executionArn": e["executionArn"], "status": e["status"],
            "startDate": e["startDate"].isoformat(), "stopDate": stop.isoformat() if stop else None}


def submit(event):
    video_id, error = parse_body(event.get("body"))
    if error:
        return reply(400, {"message": error})
    existing = describe(video_id)
    if existing is None:
        # a per-request input: a racing duplicate raises
        request = (event.get("requestContext") or {}).get("requestId")
        try:
            started = sfn().start_execution(stateMachineArn=os.environ["STATE_MACHINE_ARN"], name=video_id,
                                            input=json.dumps({"videoId": video_id, "requestId": request}))
            return reply(202, {"videoId": video_id, "executionArn": started["executionArn"]})
        except sfn().exceptions.ExecutionAlreadyExists:  # a concurrent submit won
            existing = describe(video_id)
    return reply(409, {"message": f"videoId {video_id} was already submitted", **existing})


def status(event):
    video_id = (event.get("pathParameters") or {}).get("videoId")
    error = video_id_error(video_id)
    if error:
        return reply(400, {"message": error})
    found = describe(video_id)
    return reply(200, found) if found else reply(404, {"message": f"no video {video_id} was submitted"})


ROUTES = {("POST", "/videos"): submit, ("GET", "/videos/{videoId}"): status}


def lambda_handler(event, context):
    route = ROUTES.get((event.get("httpMethod"), event.get("resource")))
    if route is None:
        return reply(404, {"message": "no such route"})
    try:
        return route(event)
    except Exception:  # traceback to the log only
        logging.exception("%s %s failed", event.get("httpMethod"), event.get("resource"))
        return reply(500, {"message": "internal error; see the function's log"})
