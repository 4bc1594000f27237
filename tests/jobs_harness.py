"""Test harness for job control: the API and scheduler handlers, run here against moto, with the generated state
machine executing in moto's interpreter (tests/moto_sfn.py) and an event bus of our own.

What stands in for AWS, and why:

* **EventBridge.** moto's Step Functions emits no status-change events. The harness hooks the interpreter's
  end of execution (``BaseExecutionWorkerCommunication.terminated``) and delivers the event AWS would send
  (``Step Functions Execution Status Change``: executionArn, status, input, output, error, cause) to the scheduler
  handler on dispatcher threads, as EventBridge invokes the function asynchronously. ``drop`` loses chosen events.
* **Lambda.** moto runs functions only in docker: the handlers are called in-process, each call like one
  invocation (the API in the caller's thread, the scheduler on the dispatchers).
* **Thread safety.** moto 5.2.5's DynamoDB and ECS backends lose races that AWS does not (a failed transaction
  undoes other threads' writes; DescribeTasks iterates the tasks RunTask adds to): the harness serialises them
  with ``deploytools.moto_layer.threads``.
* **Task duration.** A task reports RUNNING until ``task_seconds`` after RunTask, then STOPPED with the exit code
  ``exit_code(video_id, n)`` chooses for the n-th task of that video; the interpreter's ``.sync`` poll
  interval (0.5 s) is shortened.

Every patch of moto this needs lives in deploytools/moto_layer (the event hook, the scripted tasks and the poll
interval in its ``stepfunctions``, the locks in its ``threads``), each with a canary that fails once moto no
longer needs it; here is only what the pipeline does with them.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from deploytools.moto_layer.stepfunctions import (
    execution_status_changes,
    moto_patches,
    scripted_ecs_tasks,
    substitute,
    sync_poll_interval,
)
from deploytools.moto_layer.threads import serialised_backends

from moto_sfn import EXECUTE, REGION, create_resources, drain_queue

FUNCTIONS = Path(__file__).resolve().parent.parent / "generator" / "functions" / "video_jobs"
if str(FUNCTIONS) not in sys.path:  # Lambda's package root: the handlers import `contract` and `jobs`
    sys.path.insert(0, str(FUNCTIONS))

import api  # noqa: E402
import contract  # noqa: E402
import scheduler  # noqa: E402
from jobs import lifecycle, records  # noqa: E402, F401 - the tests import lifecycle from here, after the path

POLL_SECONDS = 0.05


def table_properties(templates: dict) -> dict[str, Any]:
    """The job table's key schema, attributes and indexes as the generated jobs.json declares them."""
    [table] = [r for r in templates["dev"]["jobs"]["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    wanted = ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "BillingMode")
    return {k: v for k, v in table["Properties"].items() if k in wanted}


@dataclass
class Tasks:
    """Tasks RunTask started: when, for which video, and the most ever running at once (sampled)."""

    seconds: float
    exit_code: Callable[[str, int], int]  # (videoId, n-th task of that video) -> exit code
    refuse: Callable[[], str | None] = lambda: None  # an error code RunTask raises instead of starting a task
    refused: int = 0
    started: dict[str, tuple[float, str]] = field(default_factory=dict)  # task ARN -> (start, videoId)
    stopped: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def running(self) -> int:
        with self.lock:
            return len(self.started) - len(self.stopped)


def timed_tasks(tasks: Tasks) -> contextlib.AbstractContextManager[None]:
    """RunTask records the task; DescribeTasks shows it RUNNING for ``tasks.seconds``, then STOPPED."""

    def started(task_arn: str, overrides: dict[str, Any]) -> None:
        video = next((e["value"] for c in overrides.get("containerOverrides", []) for e in c.get("environment", [])
                      if e.get("name") == "VIDEO_ID"), "")
        with tasks.lock:
            tasks.started[task_arn] = (time.monotonic(), video)

    def exit_code_once_stopped(task_arn: str) -> int | None:
        with tasks.lock:
            begun, video = tasks.started.get(task_arn, (0.0, ""))
            if time.monotonic() - begun < tasks.seconds:
                return None
            tasks.stopped.add(task_arn)
            nth = sum(1 for _, v in tasks.started.values() if v == video)  # tasks of this video so far
        return tasks.exit_code(video, nth)

    def refuse() -> str | None:
        code = tasks.refuse()
        if code:
            tasks.refused += 1
        return code

    return scripted_ecs_tasks(started=started, exit_code_once_stopped=exit_code_once_stopped, refuse=refuse)


class Pipeline:
    """The job-control pipeline in one process: see the module docstring. Use as a context manager."""

    def __init__(self, definition: dict, table: dict, *, cap: int, task_seconds: float = 0.05,
                 exit_code: Callable[[str, int], int] = lambda video_id, attempt: 0, dispatchers: int = 2,
                 drop: Callable[[dict], bool] = lambda event: False, substitutions: dict[str, str] | None = None,
                 leave_out: tuple[str, ...] = (), monkeypatch: Any) -> None:
        self.leave_out = leave_out
        self.definition, self.table, self.cap = definition, table, cap
        self.substitutions = substitutions or {}
        self.retry_sleeps: list[float] = []
        self.tasks = Tasks(task_seconds, exit_code)
        self.drop = drop
        self.dispatchers = dispatchers
        self.monkeypatch = monkeypatch
        self.events: queue.Queue[dict | None] = queue.Queue()
        self.delivered: list[dict] = []
        self.dropped: list[dict] = []
        self.scheduler_errors: list[BaseException] = []
        self.running_executions = 0
        self.max_running_executions = 0
        self.max_running_tasks = 0
        self.start_order: list[str] = []
        self.pending = 0  # events queued or being handled
        self.lock = threading.Lock()
        self._stack = contextlib.ExitStack()
        self._threads: list[threading.Thread] = []

    # --- set-up ------------------------------------------------------------------------------------------

    def __enter__(self) -> Pipeline:
        stack = self._stack
        for name, value in (("AWS_DEFAULT_REGION", REGION), ("AWS_ACCESS_KEY_ID", "testing"),
                            ("AWS_SECRET_ACCESS_KEY", "testing")):
            self.monkeypatch.setenv(name, value)
        stack.enter_context(mock_aws(config=EXECUTE))
        stack.enter_context(moto_patches(run_task_calls=[], retry_sleeps=self.retry_sleeps, leave_out=self.leave_out))
        stack.enter_context(serialised_backends())
        stack.enter_context(timed_tasks(self.tasks))
        stack.enter_context(sync_poll_interval(POLL_SECONDS))
        stack.enter_context(execution_status_changes(self._started, self._ended))
        self.resources = create_resources()
        sfn = boto3.client("stepfunctions", region_name=REGION)
        asl = substitute(self.definition, {**self.resources.default_substitutions(), **self.substitutions})
        self.state_machine_arn = sfn.create_state_machine(
            name="video-processing-workflow-dev", definition=json.dumps(asl), roleArn=self.resources.role_arn,
        )["stateMachineArn"]
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(TableName="video-processing-jobs-dev", **self.table)
        for name, value in ((contract.ENV_TABLE, "video-processing-jobs-dev"),
                            (contract.ENV_STATE_MACHINE_ARN, self.state_machine_arn),
                            (contract.ENV_MAX_CONCURRENT, str(self.cap)),
                            (contract.ENV_ERROR_TOPIC_ARN, self.resources.error_topic_arn)):
            self.monkeypatch.setenv(name, value)
        for handler in (api, scheduler):  # the handlers' clients, created inside the mock
            handler.CLIENTS.clear()
            stack.callback(handler.CLIENTS.clear)
        for i in range(self.dispatchers):
            thread = threading.Thread(target=self._dispatch, name=f"eventbridge-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        sampler = threading.Thread(target=self._sample, name="sampler", daemon=True)
        sampler.start()
        self._threads.append(sampler)
        return self

    def __exit__(self, *exc: Any) -> None:
        # Let what still runs (a test that failed half-way) end inside the mock: threads that outlive it would
        # call AWS for real in later tests.
        self.tasks.seconds = 0
        with contextlib.suppress(TimeoutError):
            self.settle(timeout=10)
        self._closing = True
        for _ in range(self.dispatchers):
            self.events.put(None)
        for thread in self._threads:
            thread.join(timeout=10)
        self._stack.close()

    def _started(self, name: str) -> None:
        with self.lock:
            self.running_executions += 1
            self.max_running_executions = max(self.max_running_executions, self.running_executions)
            self.start_order.append(name)

    def _ended(self, detail: dict) -> None:
        with self.lock:
            self.running_executions -= 1
        self.emit(detail)

    # --- the event bus -----------------------------------------------------------------------------------

    def emit(self, detail: dict) -> None:
        event = {"source": "aws.states", "detail-type": scheduler.STATUS_CHANGE, "detail": detail}
        if self.drop(event):
            self.dropped.append(event)
            return
        with self.lock:
            self.pending += 1
        self.events.put(event)

    def _dispatch(self) -> None:
        while (event := self.events.get()) is not None:
            try:
                scheduler.lambda_handler(event, None)
                self.delivered.append(event)
            except BaseException as e:
                self.scheduler_errors.append(e)
            finally:
                with self.lock:
                    self.pending -= 1

    def _sample(self) -> None:
        while not getattr(self, "_closing", False):
            self.max_running_tasks = max(self.max_running_tasks, self.tasks.running())
            time.sleep(0.005)

    # --- what a test does --------------------------------------------------------------------------------

    def post(self, video_id: str) -> tuple[int, dict]:
        answer = api.lambda_handler({"httpMethod": "POST", "resource": "/videos",
                                     "body": json.dumps({"videoId": video_id}),
                                     "requestContext": {"requestId": f"req-{video_id}"}}, None)
        return answer["statusCode"], json.loads(answer["body"])

    def get(self, video_id: str) -> tuple[int, dict]:
        answer = api.lambda_handler({"httpMethod": "GET", "resource": "/videos/{videoId}",
                                     "pathParameters": {"videoId": video_id}}, None)
        return answer["statusCode"], json.loads(answer["body"])

    def list(self, **query: str) -> tuple[int, dict]:
        answer = api.lambda_handler({"httpMethod": "GET", "resource": "/videos",
                                     "queryStringParameters": query or None}, None)
        return answer["statusCode"], json.loads(answer["body"])

    def tick(self) -> dict:
        """The reconcile schedule firing once."""
        return scheduler.lambda_handler({"source": "aws.events", "detail-type": scheduler.SCHEDULED,
                                         "detail": {}}, None)

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until no execution runs and every event was handled."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                idle = self.running_executions == 0 and self.pending == 0
            if idle:
                return
            time.sleep(0.01)
        raise TimeoutError(f"still busy after {timeout}s: {self.running_executions} executions, "
                           f"{self.pending} events")

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached")
            time.sleep(0.01)

    def job(self, video_id: str, attempt: int) -> dict | None:
        return records.get(api.current_control().store, video_id, attempt)

    def jobs_with(self, status: str) -> list[dict]:
        return list(records.all_with_status(api.current_control().store, status))

    def slots_taken(self) -> int:
        return records.slots_taken(api.current_control().store)

    def messages(self) -> dict[str, list]:
        return {kind: drain_queue(url) for kind, url in self.resources.queue_urls.items()}


@dataclass
class LoadResult:
    submitted: int
    succeeded: int
    failed: int
    lost: int  # jobs left QUEUED or RUNNING
    max_running: int  # the most tasks (sampled) or executions (counted at each start) ever running at once
    cap: int
    seconds: float
    completions: int
    errors: int
    start_order: list[str]
    submit_order: list[str]
    scheduler_errors: list[BaseException]
    failures: dict[str, Any] = field(default_factory=dict)  # videoId -> lastError of each FAILED job

    def line(self) -> str:
        return (f"load: {self.submitted} submitted, {self.succeeded} succeeded, {self.failed} failed, "
                f"{self.lost} lost, max running {self.max_running} (cap {self.cap}), {self.seconds:.1f} s")


def run_load(templates: dict, videos: int, cap: int, monkeypatch: Any, task_seconds: float = 0.05) -> LoadResult:
    """Submit `videos` through the API handler as fast as it accepts them and wait until every one ended."""
    from moto_sfn import generated_definition

    began = time.monotonic()
    with Pipeline(generated_definition(templates), table_properties(templates), cap=cap, task_seconds=task_seconds,
                  monkeypatch=monkeypatch) as p:
        submitted = [f"load-{i:04d}" for i in range(videos)]
        for video_id in submitted:
            code, body = p.post(video_id)
            if code != 202:
                raise AssertionError(f"{video_id}: {code} {body}")
        p.settle(timeout=60 + videos)
        by_status = {s: len(p.jobs_with(s)) for s in contract.STATUSES}
        messages = p.messages()
        return LoadResult(
            submitted=len(submitted), succeeded=by_status[contract.SUCCEEDED], failed=by_status[contract.FAILED],
            lost=by_status[contract.QUEUED] + by_status[contract.RUNNING],
            max_running=max(p.max_running_tasks, p.max_running_executions), cap=cap,
            seconds=time.monotonic() - began, completions=len(messages["completion"]),
            errors=len(messages["error"]), start_order=[n.split(".")[0] for n in p.start_order],
            submit_order=submitted, scheduler_errors=list(p.scheduler_errors),
            failures={j["videoId"]: j.get("lastError") for j in p.jobs_with(contract.FAILED)})


# --- without the interpreter: handlers against a table and a state machine that never ends ---------------------

NEVER_ENDING = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})  # moto runs nothing
_NUMBERS = iter(range(1, 10**9))


@contextlib.contextmanager
def emulated_account(region: str) -> Iterator[None]:
    """moto for a whole test module (starting it for every test was most of the time), dummy credentials."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", region)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.setenv(name, "testing")
        with mock_aws():
            yield


def fresh_jobs(monkeypatch: Any, table: dict, region: str, cap: int) -> Any:
    """A job table and a state machine of their own for one test, the handlers' environment pointing at them
    (inside emulated_account). Returns the Step Functions client."""
    n = next(_NUMBERS)
    sfn = boto3.client("stepfunctions", region_name=region)
    machine = sfn.create_state_machine(name=f"video-processing-workflow-{n}", definition=NEVER_ENDING,
                                       roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
    boto3.client("dynamodb", region_name=region).create_table(TableName=f"jobs-{n}", **table)
    for name, value in ((contract.ENV_STATE_MACHINE_ARN, machine), (contract.ENV_TABLE, f"jobs-{n}"),
                        (contract.ENV_MAX_CONCURRENT, str(cap))):
        monkeypatch.setenv(name, value)
    for handler in (api, scheduler):  # the handlers' clients, created inside the mock
        monkeypatch.setattr(handler, "CLIENTS", {})
    return sfn
