"""Step Functions patches: let moto 5.2.5's interpreter run the generated state machine as AWS would.

moto 5.2.5 ships a port of LocalStack's ASL interpreter (``moto/stepfunctions/parser``). It executes state
machines created through the Step Functions API (not through CloudFormation) when enabled with
``mock_aws(config={"stepfunctions": {"execute_state_machine": True}})``. Out of the box it cannot run this
pipeline's definition. The workarounds (``WORKAROUNDS``), measured on 5.2.5:

* ``StateTaskService._normalise_parameters`` / ``_normalise_response`` are no-ops in the port, so the
  PascalCase ASL parameters (``Cluster``, ...) reach botocore unchanged and
  ``arn:aws:states:::ecs:runTask.sync`` fails at once with ``States.Runtime`` (cause ``'Cluster'``).
  -> :func:`service_normalisation`
* ``extract_json`` returns a *list* for a definite path that goes through an array index
  (``$.taskResult.Containers[0].ExitCode`` gives ``[3]``; AWS gives ``3``), side effect of the fix for moto
  issue 7825 (filter expressions), so a notification says "exited with code [3]".  -> :func:`definite_jsonpath`
* The port keeps only a fixed list of RunTask parameters and silently drops ``CapacityProviderStrategy``
  (which AWS accepts), so moto falls back to the EC2 launch type and fails with "No instances found in
  cluster".  -> :func:`ecs_run_task_parameters`
* A RunTask client error surfaces as ``States.Runtime``. On AWS it is a task failure named
  ``ECS.<ErrorCode>`` (e.g. ``ECS.InvalidParameterException``), which ``States.TaskFailed`` retriers match;
  moto's ``States.Runtime`` is not retried (but, unlike AWS, is caught by ``States.ALL``).
  -> :func:`ecs_client_errors_as_task_failures`
* A retried ``.sync`` task reuses the callback endpoint its previous attempt interrupted, so a retry whose task
  does not stop at once ends ``States.Timeout``.  -> :func:`retried_sync_task_waits_again`
* ``runTask.sync`` returns any stopped task as a success; AWS fails the state with ``States.TaskFailed``
  (the task as the cause) when an essential container exited non-zero or never ran.
  -> :func:`ecs_sync_fails_like_aws`

Test instruments, not workarounds: :func:`recorded_retry_sleeps` and :func:`recorded_wait_sleeps` record retry
intervals and Wait states' seconds (in one list, in order) instead of sleeping them; :func:`fast_ecs_tasks` stops
ECS tasks at once through moto's public state manager (else every ``.sync`` task costs ~2 s of polling); moto's
fake ECS task always reports ``exitCode`` 0, so :func:`ecs_task_outcome` makes it report any exit code (plus
StopCode / StoppedReason) and
:func:`ecs_run_task_error` makes RunTask raise a client error; :func:`counted_run_task` records RunTask calls.
For job control's harness (tests/jobs_harness.py), each with a canary in tests/test_moto_workarounds.py:
:func:`scripted_ecs_tasks` lets the caller decide when a task stops and with which exit code (or that RunTask
refuses), :func:`sync_poll_interval` shortens the interpreter's private 0.5 s ``.sync`` poll, and
:func:`execution_status_changes` hands over the status-change event moto never sends to EventBridge.
:func:`moto_patches` applies the workarounds and the instruments before this list (``leave_out`` names
workarounds to skip, for the canaries in tests/test_moto_sfn_harness.py, which fail once moto no longer needs
one) after the layer's version check; the job-control instruments check the version themselves.
:func:`substitute` fills a definition's ``${Name}`` placeholders like ``Fn::Sub``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import re
import sys
import threading
import types
from collections.abc import Callable, Collection, Iterator
from typing import Any

import botocore.session

from deploytools.moto_layer import patched, require_moto_version

_PARSER = "moto.stepfunctions.parser"


@functools.cache
def _operation_model(service: str, snake_action: str) -> Any:
    model = botocore.session.get_session().get_service_model(service)
    for name in model.operation_names:
        if _snake(name) == snake_action:
            return model.operation_model(name)
    raise KeyError(f"{service} has no operation {snake_action}")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def service_normalisation() -> contextlib.ExitStack:
    """Map ASL PascalCase parameters to botocore shapes, and responses back.

    What LocalStack's interpreter does and moto's port leaves as ``pass``: the
    request goes through ``_to_boto_request`` with the operation's input shape
    and the response through ``_from_boto_response`` (camelCase ->
    PascalCase) with its output shape, using the helpers the port does ship.
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service as sts,
    )

    def _shape(self: Any, which: str, service: str | None, action: str | None) -> Any:
        operation = _operation_model(
            self._get_boto_service_name(service), self._get_boto_service_action(action)
        )
        return getattr(operation, which)

    def normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
        shape = _shape(self, "input_shape", boto_service_name, service_action_name)
        if shape is not None:
            self._to_boto_request(parameters, shape)

    def normalise_response(self, response, boto_service_name=None, service_action_name=None):
        shape = _shape(self, "output_shape", boto_service_name, service_action_name)
        if shape is not None:
            self._from_boto_response(response, shape)

    stack = contextlib.ExitStack()
    stack.enter_context(patched(sts.StateTaskService, "_normalise_parameters", normalise_parameters))
    stack.enter_context(patched(sts.StateTaskService, "_normalise_response", normalise_response))
    return stack


# A path of only .field / ['field'] / [N] steps selects at most one value.
_DEFINITE_PATH = re.compile(r"^\$(?:\.[^.\[\]*?()@]+|\['[^']*'\]|\[\d+\])*$")


def _parser_modules_using(extract_json: Callable[..., Any]) -> list[types.ModuleType]:
    # The interpreter modules did `from ...json_path import extract_json`, some lazily during an execution.
    return [module for name, module in list(sys.modules.items())
            if name.startswith(_PARSER) and getattr(module, "extract_json", None) is extract_json]


@contextlib.contextmanager
def definite_jsonpath() -> Iterator[None]:
    """Make ``$.a[0].b`` yield the value (as AWS does), not ``[value]``."""
    from jsonpath_ng.ext import parse
    from moto.stepfunctions.parser.asl.utils import json_path

    original = json_path.extract_json

    def extract_json(path: str, data: Any) -> Any:
        if not _DEFINITE_PATH.match(path):
            return original(path, data)
        matches = parse(path).find(data)
        if not matches:
            raise json_path.NoSuchJsonPathError(json_path=path, data=data)
        return matches[0].value

    for module in _parser_modules_using(original):
        setattr(module, "extract_json", extract_json)  # noqa: B010 - a module attribute mypy cannot see
    try:
        yield
    finally:
        # Also the modules first imported while patched: they copied the patched function.
        for module in _parser_modules_using(extract_json):
            setattr(module, "extract_json", original)  # noqa: B010 - as above


def ecs_run_task_parameters(*extra: str) -> contextlib.AbstractContextManager[None]:
    """Let ``CapacityProviderStrategy`` (and ``extra``) through to RunTask."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_ecs as ecs_service,
    )

    bindings = dict(ecs_service._SUPPORTED_API_PARAM_BINDINGS)
    bindings["runtask"] = bindings["runtask"] | {"CapacityProviderStrategy", *extra}
    return patched(ecs_service, "_SUPPORTED_API_PARAM_BINDINGS", bindings)


def ecs_client_errors_as_task_failures() -> contextlib.AbstractContextManager[None]:
    """Report a RunTask ClientError as ``ECS.<Code>`` (AWS) not ``States.Runtime``."""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
        CustomErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
        StateTaskServiceEcs,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    original = StateTaskServiceEcs._from_error

    def from_error(self, env, ex):
        if not isinstance(ex, ClientError):
            return original(self, env, ex)
        code = ex.response["Error"]["Code"]
        error = f"ECS.{code}"
        cause = (
            f"{ex.response['Error']['Message']} (Service: AmazonECS; Status Code: "
            f"{ex.response['ResponseMetadata']['HTTPStatusCode']}; Error Code: {code})"
        )
        details = TaskFailedEventDetails(
            error=error,
            cause=cause,
            resource=self._get_sfn_resource(),
            resourceType=self._get_sfn_resource_type(),
        )
        return FailureEvent(
            env=env,
            error_name=CustomErrorName(error_name=error),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(taskFailedEventDetails=details),
        )

    return patched(StateTaskServiceEcs, "_from_error", from_error)


def ecs_sync_fails_like_aws() -> contextlib.AbstractContextManager[None]:
    """Fail ``runTask.sync`` with ``States.TaskFailed`` when an essential container exited non-zero or never
    ran, the stopped task (DescribeTasks shape, JSON) as the cause, as AWS does; moto returns it as a success."""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
        StateTaskServiceEcs,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    original = StateTaskServiceEcs._build_sync_resolver

    def build_sync_resolver(self, env, *args, **kwargs):
        resolve = original(self, env, *args, **kwargs)

        def resolver():
            task = resolve()
            if task is None or all(c.get("ExitCode") == 0 for c in task.get("Containers", [])):
                return task
            failed = StatesErrorNameType.StatesTaskFailed
            raise FailureEventException(FailureEvent(
                env=env,
                error_name=StatesErrorName(typ=failed),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                    resource=self._get_sfn_resource(), resourceType=self._get_sfn_resource_type(),
                    error=failed.to_name(), cause=json.dumps(task, default=str))),
            ))

        return resolver

    return patched(StateTaskServiceEcs, "_build_sync_resolver", build_sync_resolver)


_MEMORY_KEYS = ("memory", "Memory", "memoryReservation", "MemoryReservation")


def ecs_task_level_memory() -> contextlib.AbstractContextManager[None]:
    """Let RunTask place a task whose containers give no memory of their own (a Fargate task definition
    with only the task-level ``Memory``, as AWS accepts and the generated one is); moto raises a TypeError."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend._calculate_task_resource_requirements

    def requirements(task_definition: Any) -> dict[str, Any]:
        task_memory = int(task_definition.memory or 0)
        containers = [c if any(k in c for k in _MEMORY_KEYS) else dict(c, memory=task_memory)
                      for c in task_definition.container_definitions]
        return original(types.SimpleNamespace(container_definitions=containers))

    return patched(EC2ContainerServiceBackend, "_calculate_task_resource_requirements", staticmethod(requirements))


def recorded_retry_sleeps(sleeps: list[float]) -> contextlib.AbstractContextManager[None]:
    """Append each retry interval to ``sleeps`` instead of sleeping it."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    return patched(retrier_decl, "time", types.SimpleNamespace(sleep=sleeps.append))


def recorded_wait_sleeps(sleeps: list[float]) -> contextlib.AbstractContextManager[None]:
    """Append each Wait state's seconds to ``sleeps`` instead of waiting them (the hand-written task retry waits
    30, 60 and 120 s); moto's interpreter waits for real."""
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        sleeps.append(wait_seconds)

    return patched(WaitFunction, "_wait_interval", wait_interval)


@contextlib.contextmanager
def fast_ecs_tasks() -> Iterator[None]:
    """Let moto's ECS tasks reach STOPPED on the first DescribeTasks."""
    from moto.moto_api import state_manager

    state_manager.set_transition(model_name="ecs::task", transition={"progression": "immediate"})
    try:
        yield
    finally:
        state_manager.unset_transition("ecs::task")


def ecs_task_outcome(
    exit_code: int | Callable[[dict[str, Any]], int | None] | None = 0,
    stop_code: str = "EssentialContainerExited",
    stopped_reason: str = "Essential container in task exited",
) -> contextlib.AbstractContextManager[None]:
    """Make every task RunTask starts report this exit code once it stopped.

    ``exit_code=None``: the container reports no ExitCode, as when the task
    stops before it runs (StopCode ``TaskFailedToStart``). A callable chooses the
    exit code per task from the RunTask call (moto's parameter names).
    """
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.run_task

    def run_task(self, *args, **kwargs):
        code = exit_code(_run_task_arguments(self, args, kwargs)) if callable(exit_code) else exit_code
        stop, reason = stop_code, stopped_reason
        if code is None and stop == "EssentialContainerExited":
            stop, reason = "TaskFailedToStart", "CannotPullContainerError: test"
        tasks = original(self, *args, **kwargs)
        for task in tasks:
            task.stop_code = stop
            task.stopped_reason = reason
            for container in task.containers:
                container.exitCode = code
                container.last_status = "STOPPED"
        return tasks

    return patched(EC2ContainerServiceBackend, "run_task", run_task)


def ecs_run_task_error(
    calls: list[dict[str, Any]],
    code: str = "InvalidParameterException",
    message: str = "No Container Instances were found in your cluster.",
) -> contextlib.AbstractContextManager[None]:
    """Make RunTask fail with a 400 client error; each call is appended to ``calls``."""
    from moto.core.exceptions import JsonRESTError
    from moto.ecs.models import EC2ContainerServiceBackend

    def run_task(self, *args, **kwargs):
        calls.append(_run_task_arguments(self, args, kwargs))
        raise JsonRESTError(code, message)

    return patched(EC2ContainerServiceBackend, "run_task", run_task)


@functools.cache
def _run_task_signature() -> inspect.Signature:
    from moto.ecs.models import EC2ContainerServiceBackend

    return inspect.signature(EC2ContainerServiceBackend.run_task)  # first call happens before any patch


def _run_task_arguments(backend: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """A RunTask call by moto's parameter names (cluster_str, overrides, launch_type, ...)."""
    bound = _run_task_signature().bind(backend, *args, **kwargs).arguments
    return {k: v for k, v in bound.items() if k != "self"}


def counted_run_task(calls: list[dict[str, Any]]) -> contextlib.AbstractContextManager[None]:
    """Append each RunTask call (after other patches) to ``calls``, by moto's parameter names."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.run_task

    def run_task(self, *args, **kwargs):
        calls.append(_run_task_arguments(self, args, kwargs))
        return original(self, *args, **kwargs)

    return patched(EC2ContainerServiceBackend, "run_task", run_task)


# --------------------------------------------------------------------------
# Job control's instruments (tests/jobs_harness.py): tasks that take a while, a shorter .sync poll, and the
# status-change events moto does not send. Not workarounds of a wrong answer: moto 5.2.5 has no public way to
# do any of these. Each has a canary in tests/test_moto_workarounds.py that fails once moto offers one.
# --------------------------------------------------------------------------


def scripted_ecs_tasks(
    *,
    started: Callable[[str, dict[str, Any]], None],
    exit_code_once_stopped: Callable[[str], int | None],
    refuse: Callable[[], str | None] = lambda: None,
) -> contextlib.AbstractContextManager[None]:
    """Tasks whose run the caller scripts. RunTask first asks ``refuse()`` for an ECS error code to fail with
    (``None``: start the task), then reports each task RUNNING and calls ``started(task_arn, overrides)``.
    DescribeTasks asks ``exit_code_once_stopped(task_arn)`` of each task still running: ``None`` keeps it
    RUNNING, a number stops it (``EssentialContainerExited``) with that exit code. moto 5.2.5's own task has no
    outcome of its own: it always exits 0, and its public state manager advances it by DescribeTasks calls
    or seconds, never by what the test wants."""
    require_moto_version()
    from moto.core.exceptions import JsonRESTError
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.moto_api import state_manager

    run_task, describe_tasks = EC2ContainerServiceBackend.run_task, EC2ContainerServiceBackend.describe_tasks
    lock = threading.Lock()  # two DescribeTasks of one task must not both stop it

    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        code = refuse()
        if code:
            raise JsonRESTError(code, "Rate exceeded")
        tasks = run_task(self, *args, **kwargs)
        for task in tasks:
            task.status = "RUNNING"
            started(task.task_arn, task.overrides or {})
        return tasks

    def describe(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = describe_tasks(self, *args, **kwargs)
        for task in found:
            with lock:
                if task.status == "STOPPED":
                    continue
                exit_code = exit_code_once_stopped(task.task_arn)
                if exit_code is None:
                    continue
                task.status = "STOPPED"
            task.stop_code, task.stopped_reason = "EssentialContainerExited", "Essential container in task exited"
            for container in task.containers:
                container.exitCode = exit_code
                container.last_status = "STOPPED"
        return found

    @contextlib.contextmanager
    def scripted() -> Iterator[None]:
        # The task's status is the script's alone: no automatic progression.
        state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**9})
        try:
            with patched(EC2ContainerServiceBackend, "run_task", run), \
                    patched(EC2ContainerServiceBackend, "describe_tasks", describe):
                yield
        finally:
            state_manager.unset_transition("ecs::task")

    return scripted()


def sync_poll_interval(seconds: float) -> contextlib.AbstractContextManager[None]:
    """Poll a ``.sync`` task every ``seconds``. moto 5.2.5's interpreter polls DescribeTasks every 0.5 s (the
    private ``_DELAY_SECONDS_SYNC_CONDITION_CHECK``, no setting), so a test whose tasks run 50 ms waits ten
    times longer than they run."""
    require_moto_version()
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback

    return patched(state_task_service_callback, "_DELAY_SECONDS_SYNC_CONDITION_CHECK", seconds)


def _status_change_detail(execution: Any) -> dict[str, Any]:
    """The detail of the ``Step Functions Execution Status Change`` event AWS sends when ``execution`` ends
    (https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html)."""
    status = execution.exec_status
    return {"executionArn": execution.exec_arn, "stateMachineArn": execution.state_machine.arn,
            "name": execution.name, "status": str(getattr(status, "value", status)),
            "input": json.dumps(execution.input_data) if execution.input_data is not None else None,
            "output": json.dumps(execution.output) if execution.output is not None else None,
            "error": execution.error, "cause": execution.cause}


@contextlib.contextmanager
def execution_status_changes(on_start: Callable[[str], None],
                             on_end: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """Call ``on_start(name)`` as an execution starts, and ``on_end(detail)`` with the detail of the status-change
    event AWS sends to EventBridge once it ended (in the execution's thread, after its status is final).
    moto 5.2.5's Step Functions sends no status-change event at all: a rule on ``aws.states`` never fires."""
    require_moto_version()
    from moto.stepfunctions.parser.backend import execution as execution_module

    original_start = execution_module.Execution.start
    original_terminated = execution_module.BaseExecutionWorkerCommunication.terminated

    def start(self: Any) -> None:
        on_start(self.name)
        original_start(self)

    def terminated(self: Any) -> None:
        original_terminated(self)
        on_end(_status_change_detail(self.execution))

    with patched(execution_module.Execution, "start", start), \
            patched(execution_module.BaseExecutionWorkerCommunication, "terminated", terminated):
        yield


# Each has a canary in tests/test_moto_workarounds.py.
JOB_CONTROL_INSTRUMENTS = (scripted_ecs_tasks, sync_poll_interval, execution_status_changes)


# --------------------------------------------------------------------------
# Placeholders
# --------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$\{(!?)([^}]*)\}")


def substitute(obj: Any, mapping: dict[str, str]) -> Any:
    """Replace ``${Name}`` in every string of ``obj`` (like ``Fn::Sub``).

    Works on a DefinitionString (str) or a Definition object (dicts/lists);
    dict keys are left alone. ``${!Literal}`` becomes ``${Literal}``. An unknown
    name raises ``KeyError`` rather than leaving a placeholder in the ASL.
    """
    if isinstance(obj, str):

        def one(match: re.Match[str]) -> str:
            bang, name = match.groups()
            if bang:
                return "${" + name + "}"
            if name not in mapping:
                raise KeyError(f"no substitution for ${{{name}}}")
            return str(mapping[name])

        return _PLACEHOLDER.sub(one, obj)
    if isinstance(obj, dict):
        return {key: substitute(value, mapping) for key, value in obj.items()}
    if isinstance(obj, list):
        return [substitute(value, mapping) for value in obj]
    return obj


# What moto 5.2.5 gets wrong about this pipeline; each has a canary in tests/test_moto_sfn_harness.py.
def retried_sync_task_waits_again() -> contextlib.AbstractContextManager[None]:
    """Re-arm the task's callback endpoint before each attempt. moto 5.2.5 interrupts it when an attempt ends,
    and a retry of a ``.sync`` task reuses it: the retry's wait-for-token thread returns at once and the attempt
    ends ``States.Timeout`` unless the task stopped on the very first DescribeTasks. AWS runs the retry."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )

    original = StateTaskServiceCallback._eval_integration_pattern

    def eval_integration_pattern(self, env, *args, **kwargs):
        token = env.states.context_object.context_object_data.get("Task", {}).get("Token")
        endpoint = env.callback_pool_manager.get(token) if token else None
        if endpoint is not None and endpoint.get_outcome() is None:
            endpoint._notify_event.clear()  # interrupted by the previous attempt, never notified
        return original(self, env, *args, **kwargs)

    return patched(StateTaskServiceCallback, "_eval_integration_pattern", eval_integration_pattern)


WORKAROUNDS = (
    service_normalisation,
    definite_jsonpath,
    ecs_run_task_parameters,
    ecs_client_errors_as_task_failures,
    ecs_sync_fails_like_aws,
    ecs_task_level_memory,
    retried_sync_task_waits_again,
)


@contextlib.contextmanager
def moto_patches(
    *,
    task_exit_code: int | Callable[[dict[str, Any]], int | None] | None = 0,
    run_task_fails: bool = False,
    run_task_calls: list[dict[str, Any]] | None = None,
    retry_sleeps: list[float] | None = None,
    leave_out: Collection[str] = (),
) -> Iterator[None]:
    """Every workaround and test instrument at once; use inside or outside ``mock_aws``.

    ``leave_out`` names workarounds to skip, to show what moto does without one (e.g.
    ``ecs_sync_fails_like_aws``: moto's own ``.sync`` reports a stopped task as a success whatever its exit
    code, which proves the definition's own exit-code guard).
    """
    require_moto_version()
    unknown = set(leave_out) - {w.__name__ for w in WORKAROUNDS}
    if unknown:
        raise ValueError(f"not a Step Functions workaround: {sorted(unknown)}")
    _run_task_signature()  # read moto's own signature before any patch replaces run_task
    calls = run_task_calls if run_task_calls is not None else []
    sleeps = retry_sleeps if retry_sleeps is not None else []
    with contextlib.ExitStack() as stack:
        for workaround in WORKAROUNDS:
            if workaround.__name__ not in leave_out:
                stack.enter_context(workaround())
        stack.enter_context(recorded_retry_sleeps(sleeps))
        stack.enter_context(recorded_wait_sleeps(sleeps))
        stack.enter_context(fast_ecs_tasks())
        if run_task_fails:
            stack.enter_context(ecs_run_task_error(calls))
        else:
            stack.enter_context(ecs_task_outcome(task_exit_code))
            stack.enter_context(counted_run_task(calls))
        yield


# The emulator's (deploytools.local_aws serve) local-only way to choose a task's outcome: a videoId with this
# prefix makes the processing container exit with FAILING_EXIT_CODE without running the processor; a task whose
# source is not in the emulator's S3 exits 0 (the placeholder); every other task runs the processor. Not on AWS.
FAILING_VIDEO_PREFIX = "fail-"
FAILING_EXIT_CODE = 1


def exit_code_by_video_id(run_task_call: dict[str, Any]) -> int:
    """FAILING_EXIT_CODE for a task whose VIDEO_ID override starts with FAILING_VIDEO_PREFIX, else 0."""
    overrides = run_task_call.get("overrides") or {}
    video_ids = [env.get("value", "") for container in overrides.get("containerOverrides", [])
                 for env in container.get("environment", []) if env.get("name") == "VIDEO_ID"]
    return FAILING_EXIT_CODE if any(v.startswith(FAILING_VIDEO_PREFIX) for v in video_ids) else 0


def apply_to_emulator(endpoint: str,
                      services: Callable[[], dict[str, Any] | None] | None = None) -> contextlib.ExitStack:
    """The patches of :func:`moto_patches`, for good, in the emulator's server process: every workaround,
    retry intervals not slept, and ECS tasks run by the local task runner (local_tasks: the processor as a local
    process that reaches the emulator at ``endpoint``, for a video whose source is there, signed in to the local
    PostgreSQL and Redis whose coordinates ``services`` waits for); any other task stops at once with the exit code
    chosen by :func:`exit_code_by_video_id`. Returns the stack that holds them (closing it removes them and stops
    the processes still running)."""
    from deploytools.moto_layer import local_tasks

    stack = contextlib.ExitStack()
    stack.enter_context(moto_patches(task_exit_code=exit_code_by_video_id, run_task_calls=_NotKept(),
                                     retry_sleeps=_NotKept()))
    stack.enter_context(local_tasks.local_processor_tasks(endpoint, FAILING_VIDEO_PREFIX, services=services))
    return stack


class _NotKept(list):
    """A list that forgets what is appended: a long-running server records no retry intervals."""

    def append(self, item: Any) -> None:
        return None
