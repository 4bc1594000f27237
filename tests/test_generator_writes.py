"""How `python -m generator` writes: only its own files, every requested environment or none, no leftovers.

Interruptions are real where they can be (SIGTERM sent by the process to itself, a process killed with
os._exit mid-write) and injected where the machine cannot produce them on demand (a full disk)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from generator import __main__ as cli

from conftest import REPO
from test_cli import tree_digest

# Python run in a fresh interpreter: patch one filesystem call to fail after `n` calls, then run the CLI.
FAIL_AFTER = """
import os, signal, sys, pathlib
calls = [0]
original = pathlib.Path.{method}
def patched(self, *a, **k):
    calls[0] += 1
    if calls[0] == {n}:
        {action}
    return original(self, *a, **k)
pathlib.Path.{method} = patched
from generator.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def run_failing(out: Path, method: str, n: int, action: str) -> subprocess.CompletedProcess:
    code = FAIL_AFTER.format(method=method, n=n, action=action)
    return subprocess.run([sys.executable, "-c", code, "--out", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture()
def out(tmp_path) -> Path:
    """An output directory holding every environment, with one hand edit so that a rewrite is visible."""
    assert cli.main(["--out", str(tmp_path / "t")]) == 0
    (tmp_path / "t" / "prod" / "api.json").write_text("edited\n")
    return tmp_path / "t"


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def test_a_directory_holding_files_the_generator_did_not_write_is_refused_not_replaced(out, capsys):
    (out / "dev" / "notes").mkdir()
    (out / "dev" / "notes" / "important.txt").write_text("keep me\n")
    before = tree_digest(out)
    assert cli.main(["--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and str(out / "dev" / "notes") in err[0] and "refusing to replace" in err[0]
    assert tree_digest(out) == before


def test_sigterm_while_writing_replaces_nothing_and_leaves_no_temporaries(out):
    before = tree_digest(out)
    result = run_failing(out, "write_bytes", 12, "os.kill(os.getpid(), signal.SIGTERM)")
    assert result.returncode == 130, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("interrupted: python -m generator stopped; nothing is half-written"), line
    assert tree_digest(out) == before and leftovers(out) == []


def test_ctrl_c_while_writing_replaces_nothing_and_leaves_no_temporaries(out):
    before = tree_digest(out)
    result = run_failing(out, "write_bytes", 20, "raise KeyboardInterrupt")
    assert result.returncode == 130 and "Traceback" not in result.stderr
    assert tree_digest(out) == before and leftovers(out) == []


def test_a_full_disk_while_writing_the_last_environment_replaces_none(out):
    before = tree_digest(out)
    result = run_failing(out, "write_bytes", 22,
                         "raise OSError(28, 'No space left on device', str(self))")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "No space left on device" in result.stderr
    assert "nothing was replaced" in result.stderr
    assert tree_digest(out) == before and leftovers(out) == []


@pytest.mark.slow  # kills a generator run mid-swap and runs it again (seconds)
def test_a_run_killed_while_swapping_is_finished_by_the_next_run(out, rendered):
    # Killed outright (no cleanup) after the first environment moved into place.
    killed = run_failing(out, "rename", 3, "os._exit(9)")
    assert killed.returncode == 9
    assert leftovers(out), "the killed run left its transaction behind"
    assert cli.main(["--out", str(out), "--check"]) == 1, "--check reports the leftover"
    assert cli.main(["--out", str(out)]) == 0
    assert leftovers(out) == []
    assert cli.main(["--out", str(out), "--check"]) == 0


def test_a_run_killed_while_staging_is_discarded_by_the_next_run(out):
    killed = run_failing(out, "write_bytes", 5, "os._exit(9)")
    assert killed.returncode == 9 and leftovers(out)
    (out / "dev" / "api.json").write_text("edited\n")
    assert cli.main(["--out", str(out), "--env", "staging"]) == 0
    assert leftovers(out) == []
    assert (out / "dev" / "api.json").read_text() == "edited\n", "the discarded run replaced nothing"


def test_leftovers_of_the_earlier_per_environment_writer_are_recovered(out):
    (out / "prod").rename(out / ".prod.old")
    (out / ".prod.new-abc").mkdir()
    assert cli.main(["--out", str(out)]) == 0
    assert leftovers(out) == [] and cli.main(["--out", str(out), "--check"]) == 0


def test_check_reports_a_stray_subdirectory_and_a_non_utf8_file(out, capsys):
    (out / "dev" / "old").mkdir()
    (out / "dev" / "old" / "api.json").write_text("{}\n")
    (out / "dev" / "network.json").write_bytes(b"\xff\xfe not utf-8")
    capsys.readouterr()
    assert cli.main(["--out", str(out), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"extra:   {out / 'dev' / 'old'}" in err and f"stale:   {out / 'dev' / 'network.json'}" in err
    assert "Traceback" not in err


def test_an_unwritable_output_directory_exits_2_naming_it(out, monkeypatch, capsys):
    """Root ignores permission bits, so a read-only mount is injected at the first write."""
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
    monkeypatch.setattr(Path, "mkdir", read_only)
    before = tree_digest(out)
    assert cli.main(["--out", str(out / "sub")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "Read-only file system" in err[0] and str(out / "sub") in err[0]
    monkeypatch.undo()
    assert tree_digest(out) == before


def test_an_internal_error_is_a_distinct_exit_code_with_the_traceback_in_a_log(tmp_path):
    code = ("import sys, generator.render as r\n"
            "def boom(cfg): raise RuntimeError('simulated bug')\n"
            "import generator.__main__ as m; m.render_environment = boom\n"
            "sys.exit(m.main(sys.argv[1:]))")
    env = {**os.environ, "PIPELINE_LOG_DIR": str(tmp_path / "logs")}
    result = subprocess.run([sys.executable, "-c", code, "--out", str(tmp_path / "t")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 70
    line, = result.stderr.splitlines()
    assert "internal error" in line and "RuntimeError: simulated bug" in line
    log, = (tmp_path / "logs").iterdir()
    assert str(log) in line and "Traceback" in log.read_text() and "simulated bug" in log.read_text()
    assert not (tmp_path / "t").exists()


def test_the_repository_templates_still_regenerate_in_place(tmp_path):
    """templates/ keeps working: a copy of it regenerates with no refusal and no change."""
    copy = tmp_path / "templates"
    shutil.copytree(REPO / "templates", copy)
    before = tree_digest(copy)
    assert cli.main(["--out", str(copy)]) == 0
    assert tree_digest(copy) == before


def test_a_committed_transaction_is_removed_whatever_it_holds(tmp_path):
    """A committed transaction is removed entirely, whether it holds only what the generator staged or more."""
    for extra in (None, "old/dev/unexpected/file.txt"):
        txn = tmp_path / f"{cli.TRANSACTION_PREFIX}1"
        (txn / "new").mkdir(parents=True)
        (txn / "old" / "dev").mkdir(parents=True)
        (txn / "old" / "dev" / "network.json").write_text("{}\n")
        (txn / cli.COMPLETE).touch()
        if extra:
            (txn / extra).parent.mkdir(parents=True)
            (txn / extra).write_text("x\n")
        cli._remove_transaction(txn)
        assert not txn.exists(), extra
