"""Each kind of error, injected where it arises, reaches the user of each generator entry point the same way:
one `error:` line and exit 2 for what the user can cause or meet, exit 70 and a log for a bug, never a
traceback, never confused with --check's "stale" (1); SIGTERM, at any moment of a run, one `interrupted:` line saying
what state things are in and exit 130, like Ctrl-C. deploytools.cfn's kinds are in test_entry_points.py,
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


# SIGTERM sent by the process to itself at a chosen moment: while a module loads (an import hook, installed by a
# sitecustomize before `python -m generator` starts), or inside a function of the run (patched to send it).
SIGTERM_ON_IMPORT = """
import os, signal, sys
class SigtermOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            os.kill(os.getpid(), signal.{signal})
        return None
sys.meta_path.insert(0, SigtermOnImport())
"""
SIGTERM_IN = ("import os, signal\nimport {module} as m\n_real = m.{function}\n"
              "def sigterm(*a, **k):\n    os.kill(os.getpid(), signal.{signal})\n    return _real(*a, **k)\n"
              "m.{function} = sigterm\n")

INTERRUPTIONS = [
    # (case, module whose import is interrupted or (module, function) interrupted, arguments, what the line says)
    ("while the generator's modules load", "generator.render", [], "stopped while starting; nothing was written"),
    ("while rendering", ("generator.render", "render_environment"), [], "nothing is half-written"),
    ("while the diff compares", ("generator.diff.cli", "diff_templates"), ["diff", "--env", "dev"],
     "python -m generator diff stopped; it changes nothing"),
    ("while capacity renders", ("generator.capacity", "render"), ["capacity"],
     "python -m generator capacity stopped; it changes nothing"),
]


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("case, where, args, says", INTERRUPTIONS, ids=[c[0] for c in INTERRUPTIONS])
def test_sigterm_or_ctrl_c_at_any_moment_is_one_line_exit_130_and_writes_nothing(tmp_path, case, where, args, says,
                                                                               sig):
    out = tmp_path / "out"
    hook = tmp_path / "hook"
    hook.mkdir()
    env = {**os.environ, "PIPELINE_LOG_DIR": str(tmp_path / "logs")}
    if isinstance(where, str):  # only `python -m generator` itself runs the code before errors.run
        (hook / "sitecustomize.py").write_text(SIGTERM_ON_IMPORT.format(module=where, signal=sig))
        env["PYTHONPATH"] = os.pathsep.join([str(hook), str(REPO)])
        command = [sys.executable, "-m", "generator"]
    else:
        patch = SIGTERM_IN.format(module=where[0], function=where[1], signal=sig)
        command = [sys.executable, "-c", RUN.format(patch=patch)]
    result = subprocess.run([*command, *args, *(["--out", str(out)] if not args else [])], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 130, (result.returncode, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith("interrupted: ") and says in line, line
    assert not out.exists() and not (tmp_path / "logs").exists()


def test_a_process_started_with_sigterm_ignored_keeps_ignoring_it():
    """deploy.sh starts the steps it reports on itself with SIGTERM ignored: they must not print a line of their own."""
    code = ("import os, signal, sys\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "from generator import errors\n"
            "def main(argv):\n    os.kill(os.getpid(), signal.SIGTERM)\n    print('went on')\n    return 0\n"
            "sys.exit(errors.run(main, [], 'test'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "went on\n", "")

