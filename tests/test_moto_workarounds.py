"""Each CloudFormation workaround of deploytools.moto_layer is still needed (unpatched moto misbehaves) and
still works (patched moto doesn't).

When a moto upgrade fixes a behaviour, the `still_needed` case fails: delete that workaround.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploytools.moto_layer import MOTO_VERSION, cloudformation

ROOT = Path(__file__).resolve().parent.parent
NAMES = [w.__name__ for w in cloudformation.WORKAROUNDS]


def _probe(*args: str) -> dict[str, bool]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "moto_probe.py"), *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def unpatched() -> dict[str, bool]:
    return _probe()


@pytest.fixture(scope="module")
def patched() -> dict[str, bool]:
    return _probe("--patched")


def test_every_workaround_is_probed(unpatched):
    assert sorted(unpatched) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_still_needed(unpatched, name):
    assert unpatched[name] is False, f"moto now does this right: remove the workaround {name}"


@pytest.mark.parametrize("name", NAMES)
def test_fixed_by_workaround(patched, name):
    assert patched[name] is True


def test_every_workaround_says_why():
    for w in cloudformation.WORKAROUNDS:
        assert f"moto {MOTO_VERSION}" in (w.__doc__ or ""), w.__name__
