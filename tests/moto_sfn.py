"""Run a Step Functions definition in moto's interpreter (test-only harness).

moto 5.2.5 ships a port of LocalStack's ASL interpreter
(``moto/stepfunctions/parser``). It executes state machines created through the
Step Functions API (not through CloudFormation) when enabled with
``mock_aws(config={"stepfunctions": {"execute_state_machine": True}})``.

Out of the box it cannot run this pipeline's definition. Measured on 5.2.5:

* ``StateTaskService._normalise_parameters`` / ``_normalise_response`` are
  no-ops in the port, so the PascalCase ASL parameters (``Cluster``, ...) reach
  botocore unchanged and ``arn:aws:states:::ecs:runTask.sync`` fails at once
  with ``States.Runtime`` (cause ``'Cluster'``).  -> :func:`service_normalisation`
* ``extract_json`` returns a *list* for a definite path that goes through an
  array index (``$.taskResult.Containers[0].ExitCode`` gives ``[0]``; AWS gives
  ``0``), side effect of the fix for moto issue 7825 (filter expressions), so a
  Choice on the exit code never matches.  -> :func:`definite_jsonpath`
* The port keeps only a fixed list of RunTask parameters and silently drops
  ``CapacityProviderStrategy`` (which AWS accepts, and which CDK's EcsRunTask
  emits), so moto falls back to the EC2 launch type and fails with "No
  instances found in cluster".  -> :func:`ecs_run_task_parameters`
* A RunTask client error surfaces as ``States.Runtime``. On AWS it is a task
  failure named ``ECS.<ErrorCode>`` (e.g. ``ECS.InvalidParameterException``),
  which ``States.TaskFailed`` retriers match; moto's ``States.Runtime`` is not
  retried (but, unlike AWS, is caught by ``States.ALL``).
  -> :func:`ecs_client_errors_as_task_failures`
* Retriers really ``time.sleep(IntervalSeconds * BackoffRate**n)``.
  -> :func:`recorded_retry_sleeps` records the intervals instead of sleeping.
* ``runTask.sync`` returns any stopped task as a success; AWS fails the state with
  ``States.TaskFailed`` (the task as the cause) when an essential container exited
  non-zero or never ran.  -> :func:`ecs_sync_fails_like_aws` (on by default)
* moto's fake ECS task always reports ``exitCode`` 0.  -> :func:`ecs_task_outcome`
  makes it report any exit code (plus StopCode / StoppedReason), and
  :func:`ecs_run_task_error` makes RunTask raise a client error.

Not patches, but set-up that moto needs: task definitions must give container
``memory`` (else RunTask raises a TypeError); an awsvpc task needs a VPC with
DNS hostnames enabled (else the ENI has no ``private_dns_name``); the execution
needs an explicit ``name`` (else ``$$.Execution.Id`` ends in ``:None``); ECS
tasks are made to stop at once through moto's public state manager
(:func:`fast_ecs_tasks`), else every ``.sync`` task costs ~2 s of polling.

Every patch touches moto internals, so :func:`require_moto_version` fails the
test run when moto is not 5.2.5: re-run ``tests/test_moto_sfn_harness.py``
(its ``unpatched`` tests show which workarounds are still needed) and bump
``MOTO_VERSION``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import re
import sys
import time
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session
import moto
import pytest
from moto import mock_aws

MOTO_VERSION = "5.2.5"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
CONTAINER_NAME = "VideoProcessingContainer"
EXECUTE = {"stepfunctions": {"execute_state_machine": True}}

_PARSER = "moto.stepfunctions.parser"
_SERVICE = _PARSER + ".asl.component.state.exec.state_task.service"


def require_moto_version() -> None:
    """Fail loudly when moto changed: the patches below target 5.2.5 internals."""
    if moto.__version__ != MOTO_VERSION:
        pytest.fail(
            f"tests/moto_sfn.py patches moto {MOTO_VERSION} internals but moto "
            f"{moto.__version__} is installed: check each patch against the new "
            "version (tests/test_moto_sfn_harness.py::test_unpatched_* show which "
            "are still needed), then update MOTO_VERSION.",
            pytrace=False,
        )


@contextlib.contextmanager
def _patched(target: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, original)


# --------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _operation_model(service: str, snake_action: str) -> Any:
    model = botocore.session.get_session().get_service_model(service)
    for name in model.operation_names:
        if _snake(name) == snake_action:
            return model.operation_model(name)
    raise KeyError(f"{service} has no operation {snake_action}")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def service_normalisation() -> contextlib.AbstractContextManager[None]:
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

    def normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):  # type: ignore[no-untyped-def]
        shape = _shape(self, "input_shape", boto_service_name, service_action_name)
        if shape is not None:
            self._to_boto_request(parameters, shape)

    def normalise_response(self, response, boto_service_name=None, service_action_name=None):  # type: ignore[no-untyped-def]
        shape = _shape(self, "output_shape", boto_service_name, service_action_name)
        if shape is not None:
            self._from_boto_response(response, shape)

    stack = contextlib.ExitStack()
    stack.enter_context(_patched(sts.StateTaskService, "_normalise_parameters", normalise_parameters))
    stack.enter_context(_patched(sts.StateTaskService, "_normalise_response", normalise_response))
    return stack


# A path of only .field / ['field'] / [N] steps selects at most one value.
_DEFINITE_PATH = re.compile(r"^\$(?:\.[^.\[\]*?()@]+|\['[^']*'\]|\[\d+\])*$")


def definite_jsonpath() -> contextlib.AbstractContextManager[None]:
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

    # The interpreter modules did `from ...json_path import extract_json`.
    stack = contextlib.ExitStack()
    for name, module in list(sys.modules.items()):
        if name.startswith(_PARSER) and getattr(module, "extract_json", None) is original:
            stack.enter_context(_patched(module, "extract_json", extract_json))
    return stack


def ecs_run_task_parameters(*extra: str) -> contextlib.AbstractContextManager[None]:
    """Let ``CapacityProviderStrategy`` (and ``extra``) through to RunTask."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_ecs as ecs_service,
    )

    bindings = dict(ecs_service._SUPPORTED_API_PARAM_BINDINGS)
    bindings["runtask"] = bindings["runtask"] | {"CapacityProviderStrategy", *extra}
    return _patched(ecs_service, "_SUPPORTED_API_PARAM_BINDINGS", bindings)


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

    def from_error(self, env, ex):  # type: ignore[no-untyped-def]
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

    return _patched(StateTaskServiceEcs, "_from_error", from_error)


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

    def build_sync_resolver(self, env, *args, **kwargs):  # type: ignore[no-untyped-def]
        resolve = original(self, env, *args, **kwargs)

        def resolver():  # type: ignore[no-untyped-def]
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

    return _patched(StateTaskServiceEcs, "_build_sync_resolver", build_sync_resolver)


def recorded_retry_sleeps(sleeps: list[float]) -> contextlib.AbstractContextManager[None]:
    """Append each retry interval to ``sleeps`` instead of sleeping it."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    return _patched(retrier_decl, "time", types.SimpleNamespace(sleep=sleeps.append))


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
    exit_code: int | None = 0,
    stop_code: str = "EssentialContainerExited",
    stopped_reason: str = "Essential container in task exited",
) -> contextlib.AbstractContextManager[None]:
    """Make every task RunTask starts report this exit code once it stopped.

    ``exit_code=None``: the container reports no ExitCode, as when the task
    stops before it runs (StopCode ``TaskFailedToStart``).
    """
    if exit_code is None and stop_code == "EssentialContainerExited":
        stop_code, stopped_reason = "TaskFailedToStart", "CannotPullContainerError: test"
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.run_task

    def run_task(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        tasks = original(self, *args, **kwargs)
        for task in tasks:
            task.stop_code = stop_code
            task.stopped_reason = stopped_reason
            for container in task.containers:
                container.exitCode = exit_code
                container.last_status = "STOPPED"
        return tasks

    return _patched(EC2ContainerServiceBackend, "run_task", run_task)


def ecs_run_task_error(
    calls: list[dict[str, Any]],
    code: str = "InvalidParameterException",
    message: str = "No Container Instances were found in your cluster.",
) -> contextlib.AbstractContextManager[None]:
    """Make RunTask fail with a 400 client error; each call is appended to ``calls``."""
    from moto.core.exceptions import JsonRESTError
    from moto.ecs.models import EC2ContainerServiceBackend

    def run_task(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(_run_task_arguments(self, args, kwargs))
        raise JsonRESTError(code, message)

    return _patched(EC2ContainerServiceBackend, "run_task", run_task)


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

    def run_task(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(_run_task_arguments(self, args, kwargs))
        return original(self, *args, **kwargs)

    return _patched(EC2ContainerServiceBackend, "run_task", run_task)


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


# --------------------------------------------------------------------------
# Resources and execution
# --------------------------------------------------------------------------


@dataclass
class Resources:
    """What :func:`create_resources` made in the mocked account."""

    cluster_arn: str
    task_definition_arn: str
    subnet_ids: list[str]
    security_group_id: str
    completion_topic_arn: str
    error_topic_arn: str
    queue_urls: dict[str, str]  # "completion" / "error" -> SQS queue URL
    role_arn: str

    def default_substitutions(self) -> dict[str, str]:
        """Placeholder names :func:`run_execution` fills in by default."""
        return {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "ClusterArn": self.cluster_arn,
            "TaskDefinitionArn": self.task_definition_arn,
            # the names generator/state_machine.py uses
            "PrivateSubnet1": self.subnet_ids[0],
            "PrivateSubnet2": self.subnet_ids[1],
            "TaskSecurityGroupId": self.security_group_id,
            "CompletionTopicArn": self.completion_topic_arn,
            "ErrorTopicArn": self.error_topic_arn,
        }


def create_resources(*, raw_message_delivery: bool = False) -> Resources:
    """Create cluster, Fargate task definition, VPC, topics+queues, role.

    Must run inside ``mock_aws``.
    """
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # Without DNS hostnames moto's ENI lacks private_dns_name and RunTask fails.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    subnet_ids = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"]
        for i in (1, 2)
    ]
    sg_id = ec2.create_security_group(
        GroupName="video-processing", Description="tasks", VpcId=vpc_id
    )["GroupId"]

    ecs = boto3.client("ecs", region_name=REGION)
    cluster_arn = ecs.create_cluster(clusterName="video-processing")["cluster"]["clusterArn"]
    task_definition_arn = ecs.register_task_definition(
        family="video-processing",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="2048",
        containerDefinitions=[
            # moto needs a container-level memory to place the task.
            {"name": CONTAINER_NAME, "image": "video-processing:test", "essential": True, "memory": 2048}
        ],
    )["taskDefinition"]["taskDefinitionArn"]

    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topics: dict[str, str] = {}
    queues: dict[str, str] = {}
    for kind in ("completion", "error"):
        topics[kind] = sns.create_topic(Name=f"video-{kind}")["TopicArn"]
        queues[kind] = sqs.create_queue(QueueName=f"video-{kind}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=queues[kind], AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        sns.subscribe(
            TopicArn=topics[kind],
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": str(raw_message_delivery).lower()},
        )

    iam = boto3.client("iam", region_name=REGION)
    role_arn = iam.create_role(
        RoleName="video-pipeline-states",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "states.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    return Resources(
        cluster_arn=cluster_arn,
        task_definition_arn=task_definition_arn,
        subnet_ids=subnet_ids,
        security_group_id=sg_id,
        completion_topic_arn=topics["completion"],
        error_topic_arn=topics["error"],
        queue_urls=queues,
        role_arn=role_arn,
    )


@dataclass
class Notification:
    """One SNS message as it reached the subscribed queue."""

    subject: str | None
    message: Any  # the Message, parsed as JSON when it is JSON
    raw: str


@dataclass
class ExecutionResult:
    status: str  # SUCCEEDED / FAILED / TIMED_OUT / ABORTED
    output: Any  # parsed execution output (None unless SUCCEEDED)
    error: str | None
    cause: str | None
    messages: dict[str, list[Notification]]  # "completion" / "error"
    history: list[dict[str, Any]]
    execution_arn: str
    run_task_calls: list[dict[str, Any]] = field(default_factory=list)
    retry_sleeps: list[float] = field(default_factory=list)

    def task_failures(self) -> list[str]:
        """Error names of the TaskFailed events, in order (one per attempt)."""
        return [
            e["taskFailedEventDetails"]["error"]
            for e in self.history
            if e["type"] == "TaskFailed"
        ]


def drain_queue(queue_url: str, *, raw_message_delivery: bool = False) -> list[Notification]:
    sqs = boto3.client("sqs", region_name=REGION)
    notes: list[Notification] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return notes
        for message in batch:
            body = message["Body"]
            subject = None
            if not raw_message_delivery:
                envelope = json.loads(body)
                body, subject = envelope["Message"], envelope.get("Subject")
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = body
            notes.append(Notification(subject=subject, message=parsed, raw=body))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@contextlib.contextmanager
def moto_patches(
    *,
    task_exit_code: int | None = 0,
    run_task_fails: bool = False,
    run_task_calls: list[dict[str, Any]] | None = None,
    retry_sleeps: list[float] | None = None,
    sync_fails_on_exit_code: bool = True,
) -> Iterator[None]:
    """All workarounds at once; use inside or outside ``mock_aws``.

    ``sync_fails_on_exit_code=False`` keeps moto's own ``.sync`` (a stopped task is a success whatever its
    exit code), to prove the definition's own exit-code guard.
    """
    require_moto_version()
    _run_task_signature()  # read moto's own signature before any patch replaces run_task
    calls = run_task_calls if run_task_calls is not None else []
    sleeps = retry_sleeps if retry_sleeps is not None else []
    with contextlib.ExitStack() as stack:
        stack.enter_context(service_normalisation())
        stack.enter_context(definite_jsonpath())
        stack.enter_context(ecs_run_task_parameters())
        stack.enter_context(ecs_client_errors_as_task_failures())
        stack.enter_context(recorded_retry_sleeps(sleeps))
        if sync_fails_on_exit_code:
            stack.enter_context(ecs_sync_fails_like_aws())
        stack.enter_context(fast_ecs_tasks())
        if run_task_fails:
            stack.enter_context(ecs_run_task_error(calls))
        else:
            stack.enter_context(ecs_task_outcome(task_exit_code))
            stack.enter_context(counted_run_task(calls))
        yield


def start_and_wait(
    state_machine_arn: str,
    execution_input: Any,
    *,
    name: str | None = None,
    timeout: float = 30.0,
) -> tuple[str, dict[str, Any]]:
    """Start an execution and poll until it ends.

    Always passes a name: without one moto's ``$$.Execution.Id`` ends in ``:None``.
    """
    sfn = boto3.client("stepfunctions", region_name=REGION)
    execution_arn = sfn.start_execution(
        stateMachineArn=state_machine_arn,
        name=name or f"test-{uuid.uuid4().hex[:12]}",
        input=json.dumps(execution_input),
    )["executionArn"]
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return execution_arn, described
        if time.monotonic() > deadline:
            sfn.stop_execution(executionArn=execution_arn, error="Harness.Timeout")
            raise TimeoutError(f"{execution_arn} still RUNNING after {timeout}s")
        time.sleep(0.05)


def run_execution(
    definition: dict[str, Any] | str,
    execution_input: Any,
    *,
    task_exit_code: int | None = 0,
    run_task_fails: bool = False,
    substitutions: Callable[[Resources], dict[str, str]] | dict[str, str] | None = None,
    raw_message_delivery: bool = False,
    execution_name: str | None = None,
    patch: bool = True,
    sync_fails_on_exit_code: bool = True,
    timeout: float = 30.0,
) -> ExecutionResult:
    """Create the resources, the state machine, run one execution, collect messages.

    ``definition`` is a Definition object or a DefinitionString with ``${Name}``
    placeholders; ``substitutions`` (a dict, or a function of :class:`Resources`)
    is applied on top of :meth:`Resources.default_substitutions`. With
    ``patch=False`` moto runs unpatched (to see whether the patches are still needed).
    """
    run_task_calls: list[dict[str, Any]] = []
    retry_sleeps: list[float] = []
    patches = (
        moto_patches(
            task_exit_code=task_exit_code,
            run_task_fails=run_task_fails,
            sync_fails_on_exit_code=sync_fails_on_exit_code,
            run_task_calls=run_task_calls,
            retry_sleeps=retry_sleeps,
        )
        if patch
        else contextlib.nullcontext()
    )
    with mock_aws(config=EXECUTE), patches:
        resources = create_resources(raw_message_delivery=raw_message_delivery)
        mapping = resources.default_substitutions()
        if callable(substitutions):
            mapping.update(substitutions(resources))
        elif substitutions:
            mapping.update(substitutions)
        asl = substitute(definition, mapping)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        state_machine_arn = sfn.create_state_machine(
            name="video-pipeline",
            definition=asl if isinstance(asl, str) else json.dumps(asl),
            roleArn=resources.role_arn,
        )["stateMachineArn"]
        execution_arn, described = start_and_wait(
            state_machine_arn, execution_input, name=execution_name, timeout=timeout
        )
        history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        messages = {
            kind: drain_queue(url, raw_message_delivery=raw_message_delivery)
            for kind, url in resources.queue_urls.items()
        }
    output = described.get("output")
    return ExecutionResult(
        status=described["status"],
        output=json.loads(output) if output is not None else None,
        error=described.get("error"),
        cause=described.get("cause"),
        messages=messages,
        history=history,
        execution_arn=execution_arn,
        run_task_calls=run_task_calls,
        retry_sleeps=retry_sleeps,
    )
