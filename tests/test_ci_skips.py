"""Nothing skips in CI silently: under CI=true (GitHub Actions, .ci/run) a skip fails and names its reason
(tests/conftest.py), so a test CI cannot run (no history, no tool) is a red build, not a quiet `s`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

PROBE = '''
import pytest

def test_skips():
    pytest.skip("no widget here")

@pytest.mark.skipif(True, reason="no gadget")
def test_skipif():
    pass

@pytest.fixture
def history():
    pytest.skip("no history")

def test_fixture_skips(history):
    pass

@pytest.mark.xfail(reason="a known defect")
def test_xfail():
    raise AssertionError

def test_runs():
    pass
'''


def run_probe(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    """pytest over PROBE with this project's conftest as a plugin, outside the repository's addopts."""
    (tmp_path / "test_probe.py").write_text(PROBE, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-ra",
                           "test_probe.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_in_ci_every_kind_of_skip_fails_naming_its_reason(tmp_path):
    done = run_probe(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    for test, reason in (("test_skips", "no widget here"), ("test_skipif", "no gadget"),
                         ("test_fixture_skips", "no history")):
        assert any(test in line and f"skipped in CI, where every test must run: {reason}" in line
                   for line in done.stdout.splitlines()), (test, done.stdout)
    assert "1 passed" in done.stdout and "1 xfailed" in done.stdout, "an expected failure is not a skip"


def test_outside_ci_a_skip_stays_a_skip_listed_with_its_reason(tmp_path):
    done = run_probe(tmp_path, None)
    assert done.returncode == 0, done.stdout
    assert "3 skipped" in done.stdout
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED [1] test_probe.py")]
    assert [line.split(": ", 1)[1] for line in skipped] == ["no widget here", "no gadget", "no history"]


def test_ci_run_and_the_workflow_run_as_ci():
    """GitHub sets CI=true itself; .ci/run sets it too, so that running it anywhere is the same gate."""
    assert 'export CI="${CI:-true}"' in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    assert any(step.get("run") == "./.ci/run" for step in workflow["jobs"]["ci"]["steps"])
