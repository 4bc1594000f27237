"""The one moto layer (deploytools/moto_layer): one pinned moto version, checked loudly, and dev-only."""

from __future__ import annotations

import ast
import configparser
import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import moto
import pytest

from deploytools.moto_layer import (
    MOTO_VERSION,
    MotoVersionError,
    cloudformation,
    require_moto_version,
    stepfunctions,
    threads,
)
from deploytools.moto_layer.stepfunctions import moto_patches

ROOT = Path(__file__).resolve().parent.parent


def setup_cfg_moto_pin() -> str:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    pins = [line for line in setup["options.extras_require"]["dev"].splitlines() if line.startswith("moto")]
    assert len(pins) == 1, pins
    return re.fullmatch(r"moto(\[[^\]]*\])?==(\S+)", pins[0]).group(2)


def test_setup_cfg_pins_the_moto_version_the_layer_is_written_for():
    assert setup_cfg_moto_pin() == MOTO_VERSION


def test_the_installed_moto_is_the_pinned_one():
    require_moto_version()
    assert moto.__version__ == MOTO_VERSION


def test_another_moto_fails_in_one_line_naming_both_versions_and_what_to_re_run(monkeypatch):
    monkeypatch.setattr(moto, "__version__", "9.9.9")
    with pytest.raises(MotoVersionError) as failure:
        require_moto_version()
    message = str(failure.value)
    assert "\n" not in message
    assert "moto 9.9.9 is installed" in message and f"written for moto {MOTO_VERSION}" in message
    assert "tests/test_moto_workarounds.py" in message and "tests/test_moto_sfn_harness.py" in message


# Every way into the layer's patches: the emulator's, the Step Functions harness's and job control's.
ENTRY_POINTS = {
    "moto_patches": moto_patches,
    "serialised_backends": threads.serialised_backends,
    "scripted_ecs_tasks": lambda: stepfunctions.scripted_ecs_tasks(started=print, exit_code_once_stopped=print),
    "sync_poll_interval": lambda: stepfunctions.sync_poll_interval(0.01),
    "execution_status_changes": lambda: stepfunctions.execution_status_changes(print, print),
}


def test_every_part_of_the_layer_refuses_another_moto(monkeypatch):
    monkeypatch.setattr(moto, "__version__", "9.9.9")
    monkeypatch.setattr(cloudformation, "_applied", False)
    with pytest.raises(MotoVersionError):
        cloudformation.apply_all()
    for name, enter in ENTRY_POINTS.items():
        with pytest.raises(MotoVersionError), enter():
            pytest.fail(f"{name} patched another moto")


def patched_in_moto() -> list:
    """The classes and modules of moto the layer's context managers patch."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
        state_task_service_callback,
        state_task_service_ecs,
    )
    from moto.stepfunctions.parser.backend import execution

    return [DynamoDBBackend, EC2ContainerServiceBackend, retrier_decl, state_task_service.StateTaskService,
            state_task_service_callback, state_task_service_callback.StateTaskServiceCallback, state_task_service_ecs,
            state_task_service_ecs.StateTaskServiceEcs, execution.Execution, execution.BaseExecutionWorkerCommunication]


def test_leaving_the_patches_puts_back_exactly_what_moto_had():
    """Down to the descriptor: a staticmethod put back as its bare function binds as a method, and the next RunTask
    outside the patches fails with a TypeError that looks like the defect ecs_task_level_memory works around."""
    before = [dict(vars(target)) for target in patched_in_moto()]
    with contextlib.ExitStack() as stack:
        for enter in ENTRY_POINTS.values():
            stack.enter_context(enter())
        assert [dict(vars(target)) for target in patched_in_moto()] != before
    after = [dict(vars(target)) for target in patched_in_moto()]
    assert [sorted(names) for names in after] == [sorted(names) for names in before]
    changed = [f"{target.__name__}.{name}" for target, old, new in zip(patched_in_moto(), before, after, strict=True)
               for name in old if new[name] is not old[name]]
    assert changed == []


def test_every_job_control_instrument_is_an_entry_point():
    assert {f.__name__ for f in stepfunctions.JOB_CONTROL_INSTRUMENTS} <= set(ENTRY_POINTS)


def moto_patches_in(source: str) -> list[str]:
    """Lines of ``source`` that assign to (or setattr/delattr) something reached from a moto import, directly or
    through a local name bound to one (``worker = execution.BaseExecutionWorkerCommunication``)."""
    tree = ast.parse(source)
    from_moto: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            from_moto |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] == "moto"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "moto":
            from_moto |= {a.asname or a.name for a in node.names}

    def root(expr: ast.expr) -> str | None:
        while isinstance(expr, (ast.Attribute, ast.Subscript, ast.Call)):
            expr = expr.func if isinstance(expr, ast.Call) else expr.value
        return expr.id if isinstance(expr, ast.Name) else None

    def targets(node: ast.AST) -> list[ast.expr]:
        found = node.targets if isinstance(node, ast.Assign) else [node.target]  # type: ignore[attr-defined]
        return [e for t in found for e in (t.elts if isinstance(t, ast.Tuple) else [t])]

    assignments = [n for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign))]
    grown = True
    while grown:  # names bound to something of moto's are moto's too
        before = len(from_moto)
        from_moto |= {t.id for n in assignments if n.value is not None and root(n.value) in from_moto
                      for t in targets(n) if isinstance(t, ast.Name)}
        grown = len(from_moto) > before
    lines = source.splitlines()
    hits = [n.lineno for n in assignments for t in targets(n)
            if isinstance(t, (ast.Attribute, ast.Subscript)) and root(t) in from_moto]
    hits += [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and n.args
             and (getattr(n.func, "id", None) or getattr(n.func, "attr", None)) in ("setattr", "delattr")
             and root(n.args[0]) in from_moto]
    return [lines[n - 1].strip() for n in sorted(set(hits))]


# The layer's own tests reach into moto on purpose: to show its defects (canaries) and its version check.
LAYER_TESTS = {"test_moto_layer.py", "test_moto_workarounds.py", "moto_probe.py"}


def test_every_moto_patch_lives_in_the_layer():
    """Every patch of moto lives in deploytools/moto_layer, with its version check and canary: a test or script
    that assigns to moto's classes or modules bypasses both."""
    offenders = {str(path.relative_to(ROOT)): found
                 for path in sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))
                 if path.name not in LAYER_TESTS and (found := moto_patches_in(path.read_text(encoding="utf-8")))}
    assert offenders == {}


def test_the_patch_finder_sees_how_the_harness_used_to_patch_moto():
    """The shapes tests/jobs_harness.py patched moto in before its patches moved into the layer."""
    old_harness = """
def timed(seconds):
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback
    from moto.stepfunctions.parser.backend import execution as execution_module
    from moto.dynamodb.models import DynamoDBBackend

    EC2ContainerServiceBackend.run_task, EC2ContainerServiceBackend.describe_tasks = run, describe
    state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = seconds
    worker = execution_module.BaseExecutionWorkerCommunication
    worker.terminated, execution_module.Execution.start = terminated, start
    setattr(DynamoDBBackend, name, locked(original))
    monkeypatch.setattr(DynamoDBBackend, "get_item", get_item)
    ok = EC2ContainerServiceBackend.run_task == run
"""
    assert moto_patches_in(old_harness) == [
        "EC2ContainerServiceBackend.run_task, EC2ContainerServiceBackend.describe_tasks = run, describe",
        "state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = seconds",
        "worker.terminated, execution_module.Execution.start = terminated, start",
        "setattr(DynamoDBBackend, name, locked(original))",
        'monkeypatch.setattr(DynamoDBBackend, "get_item", get_item)',
    ]


def test_moto_stays_a_dev_only_dependency():
    """The generator and deploy.sh's Python side run without moto; only local_aws's `serve` imports it."""
    script = ("import sys, generator.__main__, generator.render, deploytools.cfn, deploytools.local_aws; "
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'moto' or 'moto_layer' in m))")
    out = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "[]"
