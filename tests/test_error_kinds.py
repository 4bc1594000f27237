"""Each kind of error, injected where it arises, reaches the user of each generator entry point the same way:
one `error:` line and exit 2 for what the user can cause or meet, exit 70 and a log for a bug, never a
traceback, never confused with --check's "stale" (1). deploytools.cfn's kinds are in test_entry_points.py,
deploy.sh's in test_bad_input.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO

# Python run in a fresh interpreter: `patch` runs first, then the entry point with the given arguments.
RUN = "import sys\n{patch}\nfrom generator.__main__ import main\nsys.exit(main(sys.argv[1:]))"

API_FIRST = ("import generator.render as r\n"
             "r.TIERS = tuple(sorted(r.TIERS, key=lambda t: t.name != 'api'))  # api before what it consumes")
BAD_SKIP = ("import dataclasses, generator.render as r\n"
            "from generator import blocks\n"
            "def build(cfg, _build=r.TIERS[0].build):\n"
            "    t = _build(cfg)\n"
            "    blocks.checkov_skip(('CKV_AWS_7', 'first line\\nsecond line'))\n"
            "    return t\n"
            "r.TIERS = (dataclasses.replace(r.TIERS[0], build=build), *r.TIERS[1:])")
BUG_IN_TIER = ("import dataclasses, generator.render as r\n"
               "def build(cfg): return {}['no such key']\n"
               "r.TIERS = (dataclasses.replace(r.TIERS[0], build=build), *r.TIERS[1:])")
BUG_IN_DIFF = ("import generator.diff.cli as c\n"
               "def diff_templates(*a, **k): raise AttributeError('simulated bug in the diff')\n"
               "c.diff_templates = diff_templates")
BUG_IN_CAPACITY = ("import generator.capacity as c\n"
                   "def render(*a, **k): raise ZeroDivisionError('simulated bug in capacity')\n"
                   "c.render = render")

CASES = [
    # (case, patch, arguments, exit code, what the one line names)
    ("wiring: a tier before the tier it consumes", API_FIRST, ["--check"], 2,
     ["parameter ApiFunctionSecurityGroupId of tier api", "found: none"]),
    ("checkov skip misuse", BAD_SKIP, ["--check"], 2, ["checkov skip CKV_AWS_7", "one non-empty line"]),
    ("a bug in a tier", BUG_IN_TIER, ["--check"], 70, ["internal error", "KeyError", "traceback in"]),
    ("config in diff", "", ["diff", "--env", "qa"], 2, ["unknown environment 'qa'"]),
    ("git in diff: an unknown revision", "", ["diff", "--base", "no-such-revision"], 2,
     ["unknown git revision 'no-such-revision'"]),
    ("wiring in diff", API_FIRST, ["diff"], 2, ["of tier api needs exactly one earlier tier"]),
    ("a bug in diff", BUG_IN_DIFF, ["diff"], 70, ["internal error", "simulated bug in the diff", "traceback in"]),
    ("bad input in capacity", "", ["capacity", "--minutes", "0"], 2, ["invalid --minutes '0'", "accepted:"]),
    ("config in capacity", "", ["capacity", "--env", "qa"], 2, ["unknown environment 'qa'"]),
    ("a bug in capacity", BUG_IN_CAPACITY, ["capacity"], 70,
     ["internal error in python -m generator capacity", "simulated bug in capacity", "traceback in"]),
]


@pytest.mark.parametrize("case, patch, args, code, names", CASES, ids=[c[0] for c in CASES])
def test_each_error_kind_is_one_line_with_its_exit_code(tmp_path, case, patch, args, code, names):
    env = {**os.environ, "PIPELINE_LOG_DIR": str(tmp_path / "logs")}
    result = subprocess.run([sys.executable, "-c", RUN.format(patch=patch), *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(name in lines[0] for name in names), lines[0]
    if code == 70:
        log, = (tmp_path / "logs").iterdir()
        assert str(log) in lines[0] and "Traceback (most recent call last)" in log.read_text()
    else:
        assert not (tmp_path / "logs").exists(), "user errors leave no log behind"
