"""`python -m generator`: what it writes, what --check reports, and that bad input changes nothing."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from generator import __main__ as cli
from generator import render

from conftest import REPO


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_writes_every_environment_and_prints_a_summary(fresh_generator_runs):
    """What it writes is the golden test's business (test_golden.py compares these files byte for byte)."""
    out, stdout = fresh_generator_runs["1"]
    assert "environment" in stdout and "resources" in stdout
    assert any(line.split()[:2] == ["prod", "workflow.json"] for line in stdout.splitlines())
    assert sorted(p.name for p in out.iterdir()) == ["dev", "prod", "staging"], "no temporary leftovers"


def test_env_limits_the_environments(tmp_path):
    assert cli.main(["--out", str(tmp_path), "--env", "staging"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["staging"]


def test_check_passes_when_output_matches(tmp_path):
    assert cli.main(["--out", str(tmp_path)]) == 0
    assert cli.main(["--out", str(tmp_path), "--check"]) == 0


def test_check_lists_stale_missing_and_extra_files_and_writes_nothing(tmp_path, capsys):
    assert cli.main(["--out", str(tmp_path), "--env", "dev"]) == 0
    (tmp_path / "dev" / "network.json").write_text("{}\n")
    (tmp_path / "dev" / "compute.json").unlink()
    (tmp_path / "dev" / "old-tier.json").write_text("{}\n")
    before = tree_digest(tmp_path)
    capsys.readouterr()
    assert cli.main(["--out", str(tmp_path), "--env", "dev", "--check"]) == 1
    err = capsys.readouterr().err
    assert f"stale:   {tmp_path / 'dev' / 'network.json'}" in err
    assert f"missing: {tmp_path / 'dev' / 'compute.json'}" in err
    assert f"extra:   {tmp_path / 'dev' / 'old-tier.json'}" in err
    assert tree_digest(tmp_path) == before


def test_check_without_env_reports_entries_beside_the_environments(tmp_path, capsys):
    assert cli.main(["--out", str(tmp_path)]) == 0
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "main.json").write_text("{}\n")
    (tmp_path / "stray.json").write_text("{}\n")
    capsys.readouterr()
    assert cli.main(["--out", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"extra:   {tmp_path / 'qa'}" in err and f"extra:   {tmp_path / 'stray.json'}" in err
    assert cli.main(["--out", str(tmp_path), "--check", "--env", "dev"]) == 0, "--env compares only that one"


def test_check_reports_a_missing_environment_directory(tmp_path, capsys):
    assert cli.main(["--out", str(tmp_path), "--env", "prod", "--check"]) == 1
    assert "missing:" in capsys.readouterr().err


def test_regeneration_replaces_files_that_no_longer_belong(tmp_path):
    assert cli.main(["--out", str(tmp_path), "--env", "dev"]) == 0
    (tmp_path / "dev" / "old-tier.json").write_text("{}\n")
    assert cli.main(["--out", str(tmp_path), "--env", "dev"]) == 0
    assert not (tmp_path / "dev" / "old-tier.json").exists()


def test_unknown_environment_exits_2_naming_the_valid_ones_and_writes_nothing(tmp_path):
    assert cli.main(["--out", str(tmp_path), "--env", "dev"]) == 0
    before = tree_digest(tmp_path)
    result = run("--out", str(tmp_path), "--env", "qa")
    assert result.returncode == 2
    assert "unknown environment 'qa'" in result.stderr and "dev, prod, staging" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree_digest(tmp_path) == before


def test_an_error_in_a_later_environment_leaves_earlier_ones_untouched(tmp_path, monkeypatch):
    assert cli.main(["--out", str(tmp_path)]) == 0
    (tmp_path / "dev" / "network.json").write_text("edited by hand\n")
    before = tree_digest(tmp_path)
    real = render.render_environment

    def failing(cfg):
        if cfg.name == "prod":
            raise render.LimitError("prod/workflow.json: 501 resources exceeds the CloudFormation limit")
        return real(cfg)

    monkeypatch.setattr(cli, "render_environment", failing)
    assert cli.main(["--out", str(tmp_path)]) == 2
    assert tree_digest(tmp_path) == before, "dev must not be rewritten when prod fails"


def test_help_describes_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for option in ("--env", "--out", "--check", "--config", "Exit status"):
        assert option in out


# Spellings argparse reads alike: a user (or deploy.sh) may write any of them.
@pytest.mark.parametrize("argv", [["--out", "x", "--env", "dev", "--env", "prod"], ["--out=x", "--env=dev", "--env",
                                   "prod"], ["--ou", "x", "--en", "dev", "--env", "prod"]], ids=" ".join)
def test_each_spelling_of_the_options_is_read_alike(argv):
    args = cli.parse_args(argv)
    assert (args.out, args.env, args.check, args.config) == (Path("x"), ["dev", "prod"], False, None)


@pytest.mark.parametrize("argv", [["x"], ["--out"], ["--bogus"], ["--check", "--env"]], ids=" ".join)
def test_a_malformed_command_line_exits_2_with_usage_and_writes_nothing(argv, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        cli.main(["--out", str(tmp_path / "t"), *argv])
    assert e.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m generator") and "error: " in err and "Traceback" not in err
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("name", ["main.json", "network.json", "compute.json", "notification.json",
                                  "workflow.json"])
def test_parent_refers_to_children_by_relative_local_path(templates, name):
    if name == "main.json":
        urls = sorted(r["Properties"]["TemplateURL"] for r in templates["dev"]["main"]["Resources"].values())
        assert all("/" not in u and u.endswith(".json") for u in urls)
    else:
        assert name in [r["Properties"]["TemplateURL"] for r in templates["dev"]["main"]["Resources"].values()]
