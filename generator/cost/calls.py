"""The AWS calls job control makes per invocation, as recorded in the tests: what a job costs in requests.

tests/test_cost_calls.py runs the job-control lifecycle (tests/jobs_harness.py: the API and scheduler handlers
against moto, the generated state machine in moto's interpreter) with the handlers' boto3 clients made from one
boto3 Session whose event system calls `Recorder.provide_client_params` before every API call
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/events.html). The summary is committed as
job_calls.json (read by the cost model) and the test checks it is fresh, so the model never counts by hand.

Invocations recorded:
    submit            POST /videos of a new video, the queue empty: the API function records and starts it
    status            GET /videos/{videoId} of a finished video: the API function reads it
    execution_ended   the scheduler, invoked by the execution's end event: releases the slot, admits the next
    reconcile         the scheduler on its schedule with nothing to do: the fixed cost of job control
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from generator.errors import InputError

JOB_CALLS = Path(__file__).resolve().parent / "job_calls.json"
INVOCATIONS = ("submit", "status", "execution_ended", "reconcile")
HANDLER_OF = {"submit": "api", "status": "api", "execution_ended": "scheduler", "reconcile": "scheduler"}

# DynamoDB request units of an item under 1 KB (reads: under 4 KB), as
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/capacity-mode.html#HowItWorks.requests counts them:
# a strongly consistent read 1, an eventually consistent one 0.5, a write 1, a transactional read or write 2 per item.
READS = ("GetItem", "Query", "Scan")
WRITES = ("PutItem", "UpdateItem", "DeleteItem")


@dataclass(frozen=True)
class Call:
    invocation: str
    service: str  # the boto3 client name: dynamodb, stepfunctions, sns
    operation: str
    read_units: float = 0.0
    write_units: float = 0.0
    # What the call acts on (resource_parameters), for the access proof (generator/access); not summarised here.
    parameters: tuple[tuple[str, Any], ...] = ()
    presigned: bool = False  # a URL signed for someone else to use (generate_presigned_url), not a call made here
    missing: bool = False  # S3 answered that the key is not there (404): what the caller learns needs s3:ListBucket


def request_units(service: str, operation: str, params: dict) -> tuple[float, float]:
    """(read, write) request units one call consumes, its items small (see READS/WRITES above)."""
    if service != "dynamodb":
        return 0.0, 0.0
    if operation in READS:
        return (1.0 if params.get("ConsistentRead") else 0.5), 0.0
    if operation in WRITES:
        return 0.0, 1.0
    if operation == "TransactWriteItems":
        return 0.0, 2.0 * len(params.get("TransactItems") or [])
    if operation == "TransactGetItems":
        return 2.0 * len(params.get("TransactItems") or []), 0.0
    if operation == "BatchGetItem":
        return sum(len(v.get("Keys") or []) for v in (params.get("RequestItems") or {}).values()) * 1.0, 0.0
    if operation == "BatchWriteItem":
        return 0.0, sum(len(v) for v in (params.get("RequestItems") or {}).values()) * 1.0
    return 0.0, 0.0


RECORDED_INDEX = "access_recorder_index"  # the call's place in Recorder.calls, kept in botocore's request context

# The parameters that name what a call acts on: the access proof resolves them to the templates' resources.
RESOURCE_PARAMETERS = ("TableName", "IndexName", "TopicArn", "TargetArn", "QueueUrl", "stateMachineArn",
                       "executionArn", "SecretId", "Bucket", "Key", "Prefix", "VersionId", "ServerSideEncryption",
                       "SSEKMSKeyId", "logGroupName", "logGroupIdentifier", "kmsKeyId")


def resource_parameters(params: dict) -> tuple[tuple[str, Any], ...]:
    """(name, value) of each resource-naming parameter; a transaction's items as sorted "<Kind> <TableName>"."""
    found: list[tuple[str, Any]] = [(k, params[k]) for k in RESOURCE_PARAMETERS if isinstance(params.get(k), str)]
    items = params.get("TransactItems")
    if isinstance(items, list):
        found.append(("TransactItems", tuple(sorted({f"{kind} {body.get('TableName')}" for item in items
                                                     for kind, body in item.items() if isinstance(body, dict)}))))
    return tuple(found)


@dataclass
class Recorder:
    """Registered on a boto3 Session's `provide-client-params` event: one Call per API call of its clients,
    under the invocation `label()` names at that moment."""

    label: Callable[[], str]
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)  # the processor uploads from a thread pool

    def provide_client_params(self, params: dict, model: Any, **kwargs: Any) -> None:
        service, operation = model.service_model.service_name, model.name
        reads, writes = request_units(service, operation, params)
        context = kwargs.get("context")
        presigned = bool((context or {}).get("is_presign_request"))  # botocore's presign context
        with self.lock:
            if isinstance(context, dict):  # the same dict reaches after-call: it names this call there
                context[RECORDED_INDEX] = len(self.calls)
            self.calls.append(Call(self.label(), service, operation, reads, writes, resource_parameters(params),
                                   presigned))

    def after_call(self, parsed: Any = None, context: Any = None, **kwargs: Any) -> None:
        """Marks a call S3 answered with "no such key" (404): the caller learned that only because it may list the
        bucket (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html, Permissions)."""
        code = str(((parsed or {}).get("Error") or {}).get("Code", "")) if isinstance(parsed, dict) else ""
        index = (context or {}).get(RECORDED_INDEX) if isinstance(context, dict) else None
        if index is not None and code in ("NoSuchKey", "404", "NotFound"):
            with self.lock:
                self.calls[index] = replace(self.calls[index], missing=True)

    def attach(self, session: Any) -> None:
        session.events.register("provide-client-params", self.provide_client_params)
        session.events.register("after-call.s3", self.after_call)


def summarise(calls: list[Call], custom_metrics: int) -> dict:
    """job_calls.json's content: per invocation, its handler, each service.operation's count and the DynamoDB
    request units; also the custom metrics the reconcile invocation publishes (embedded metric format)."""
    out: dict[str, Any] = {}
    for invocation in INVOCATIONS:
        mine = [c for c in calls if c.invocation == invocation]
        counts: dict[str, int] = {}
        for c in mine:
            counts[f"{c.service}.{c.operation}"] = counts.get(f"{c.service}.{c.operation}", 0) + 1
        out[invocation] = {"handler": HANDLER_OF[invocation], "calls": dict(sorted(counts.items())),
                           "read_units": sum(c.read_units for c in mine),
                           "write_units": sum(c.write_units for c in mine)}
    return {"comment": "Recorded by tests/test_cost_calls.py (the job-control lifecycle against moto); do not edit: "
                       "COST_RECORD_CALLS=1 python -m pytest tests/test_cost_calls.py -n 0 rewrites it.",
            "custom_metrics_per_table": custom_metrics, "invocations": out}


def render(summary: dict) -> str:
    return json.dumps(summary, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Invocation:
    name: str
    handler: str  # the Lambda handler's module: api, scheduler
    calls: dict[str, int]
    read_units: float
    write_units: float

    def count(self, service_operation: str) -> int:
        return self.calls.get(service_operation, 0)


@dataclass(frozen=True)
class JobCalls:
    invocations: dict[str, Invocation]
    custom_metrics_per_table: int


def load(path: Path = JOB_CALLS) -> JobCalls:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return JobCalls({name: Invocation(name, v["handler"], dict(v["calls"]), float(v["read_units"]),
                                          float(v["write_units"]))
                         for name, v in raw["invocations"].items()}, int(raw["custom_metrics_per_table"]))
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputError(f"{path} is not a job-calls record ({type(e).__name__}: {e}); rewrite it with "
                         "COST_RECORD_CALLS=1 python -m pytest tests/test_cost_calls.py -n 0") from None
