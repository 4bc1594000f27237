"""The one moto layer: what this project patches into moto, for one pinned moto version.

    cloudformation   workarounds for `./deploy.sh --local`'s embedded emulator (deploytools.local_aws)
    stepfunctions    patches that let moto's Step Functions interpreter run the generated state machine
                     (tests/moto_sfn.py, tests/test_workflow_behaviour.py), and job control's instruments
                     (tests/jobs_harness.py: scripted tasks, the .sync poll, the status-change events)
    threads          locks around moto's DynamoDB and ECS backends, which lose races AWS does not
                     (tests/jobs_harness.py runs API, scheduler and executions on threads of one process)

No test or script patches moto outside this package (tests/test_moto_layer.py looks); each patch has a canary
that fails once moto no longer needs it. Every patch reaches into moto internals, so every entry point refuses
any moto but MOTO_VERSION, the same version setup.cfg's dev extra pins (tests/test_moto_layer.py keeps the two
equal). moto is a dev-only dependency: only local_aws's server path and the tests import this package, never
generator/ or deploytools/cfn.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import moto

MOTO_VERSION = "5.2.5"


class MotoVersionError(RuntimeError):
    """The installed moto is not the one the patches were written and tested for."""


def require_moto_version() -> None:
    """Fail loudly, in one line, before a patch touches the internals of another moto."""
    if moto.__version__ != MOTO_VERSION:
        raise MotoVersionError(
            f"moto {moto.__version__} is installed, deploytools/moto_layer is written for moto {MOTO_VERSION}: "
            "install setup.cfg's pin (.venv/bin/pip install -e '.[dev]'), or, to upgrade, re-run "
            "tests/test_moto_workarounds.py and tests/test_moto_sfn_harness.py (their canaries show which "
            "workarounds are still needed) and update MOTO_VERSION with setup.cfg's pin")


_ABSENT = object()


@contextlib.contextmanager
def patched(target: Any, name: str, value: Any) -> Iterator[None]:
    """``target.name`` (a class or module of moto's) is ``value`` for a while. Puts back what ``target`` itself
    held: ``getattr`` would hand back a staticmethod's bare function, which then binds as a method."""
    getattr(target, name)  # a name moto no longer has fails here, loudly
    own = vars(target).get(name, _ABSENT)
    setattr(target, name, value)
    try:
        yield
    finally:
        if own is _ABSENT:
            delattr(target, name)  # it was inherited: the base class's serves again
        else:
            setattr(target, name, own)
