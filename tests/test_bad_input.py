"""Bad input, end to end through `python -m generator` and `./deploy.sh`: exit 2, one line on stderr naming the
field and what is accepted, and the output directory byte-for-byte as it was (hashed before and after)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from test_cli import tree_digest

# (case, --config content or None, extra arguments, what stderr must name: the field, the accepted values)
BAD_INPUT = [
    ("unknown environment", None, ["--env", "qa"], ["environment 'qa'", "dev, prod, staging"]),
    ("unknown environment in --config", {"qa": {"az_count": 2}}, [], ["environment 'qa'", "dev, prod, staging"]),
    ("CIDR that is not a network", {"dev": {"vpc_cidr": "10.10.0.0/33"}}, [], ["vpc_cidr", "/16"]),
    ("public CIDR", {"prod": {"vpc_cidr": "8.8.0.0/16"}}, [], ["vpc_cidr", "private IPv4 /16"]),
    ("overlapping environment CIDRs", {"staging": {"vpc_cidr": "10.10.0.0/16"}}, [],
     ["vpc_cidr", "overlaps", "non-overlapping"]),
    ("AZ count above range", {"dev": {"az_count": 5}}, [], ["az_count 5", "2 or 3"]),
    ("AZ count below range", {"prod": {"az_count": 1}}, [], ["az_count 1", "2 or 3"]),
    ("task cpu out of range", {"dev": {"task_cpu": 3000}}, [], ["task_cpu 3000", "256, 512, 1024"]),
    ("task memory out of range", {"dev": {"task_memory": 100000}}, [], ["task_memory 100000", "4096-16384"]),
    ("a value of the wrong type", {"dev": {"az_count": "3"}}, [], ["az_count '3'", "a JSON integer such as 2"]),
    ("an unknown setting", {"dev": {"nat_per_region": True}}, [], ["nat_per_region", "known:"]),
    ("a setting that is not an override", {"dev": {"name": "qa"}}, [], ["name", "any setting but name"]),
    ("a file that is not JSON", "{not json", [], ["--config", "a JSON object"]),
    ("a --config nested too deeply for the parser", "[" * 100_000 + "]" * 100_000, [],
     ["--config", "nested too deeply"]),
    ("an instance class with a trailing newline", {"dev": {"db_instance_class": "db.t4g.micro\n"}}, [],
     ["db_instance_class 'db.t4g.micro\\n'", "db.t4g.micro"]),
    ("a node type with a trailing newline", {"prod": {"cache_node_type": "cache.m7g.large\n"}}, [],
     ["cache_node_type", "cache.t4g.micro"]),
    ("a 10 MB value", {"dev": {"db_instance_class": "x" * 10_000_000}}, [],
     ["db_instance_class 'xxxx", "(10000002 characters)"]),
    ("a missing file", Path("missing.json"), [], ["--config", "a readable JSON file"]),
    ("an environment twice", '{"dev": {"az_count": 3}, "dev": {"az_count": 2}}', [],
     ["--config", "'dev' appears twice", "each environment and each setting once"]),
    ("a setting twice", '{"dev": {"az_count": 3, "az_count": 2}}', [], ["'az_count' appears twice"]),
    ("more videos at once than the assumed vCPU quota holds", {"staging": {"max_concurrent_videos": 4}}, [],
     ["staging: invalid max_concurrent_videos 4", "1-3 videos", "fargate_vcpu_quota 6", "On-Demand"]),
    ("an assumed vCPU quota that cannot run one task", {"dev": {"fargate_vcpu_quota": 0}}, [],
     ["dev: invalid fargate_vcpu_quota 0", "a whole number of vCPU from 2", "Spot"]),
]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    result = run("--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def run(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "generator", *args] if code is None else [sys.executable, "-c", code, *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def assert_refused(result: subprocess.CompletedProcess, names: list[str], out: Path, before: dict) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[:2000]
    assert len(lines[0]) <= 1000, "a message is one readable line, never a whole input echoed"
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert tree_digest(out) == before, "the output directory changed"


@pytest.mark.parametrize("case, overrides, args, names", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_exits_2_with_one_line_and_leaves_the_output_untouched(generated, tmp_path, case, overrides,
                                                                           args, names):
    out = tmp_path / "templates"
    shutil.copytree(generated, out)
    (out / "dev" / "network.json").write_text("edited by hand\n")  # even a stale file stays as it is
    before = tree_digest(out)
    if isinstance(overrides, Path):
        args = [*args, "--config", str(tmp_path / overrides)]
    elif overrides is not None:
        config_file = tmp_path / "overrides.json"
        config_file.write_text(overrides if isinstance(overrides, str) else json.dumps(overrides))
        args = [*args, "--config", str(config_file)]
    assert_refused(run("--out", str(out), *args), names, out, before)


# The review diff's bad input: (case, arguments, what the one line names). In-process, through the same
# entry point as `python -m generator diff`, with git and AWS (moto) as they are or made to fail.
DIFF_BAD_INPUT = [
    ("an invalid --region with --env", ["--stack", "video-pipeline-dev", "--env", "dev", "--region", "moon-1"],
     ["invalid --region 'moon-1'", "ap-northeast-1"]),
    ("a --region with a trailing newline", ["--stack", "s", "--region", "ap-northeast-1\n"], ["invalid --region"]),
    ("another environment's stack", ["--stack", "video-pipeline-dev", "--env", "prod"],
     ["belongs to environment dev, not prod", "--stack-env-override dev:prod"]),
    ("an override that does not name the stack's environment",
     ["--stack", "video-pipeline-dev", "--env", "prod", "--stack-env-override", "staging:prod"],
     ["belongs to environment dev, not prod"]),
    ("--base outside a git repository", ["--base", "HEAD", "--env", "dev"],
     ["is not in a git repository", "--stack NAME"]),
    ("an unknown revision", ["--base", "no-such-branch", "--env", "dev"], ["unknown git revision 'no-such-branch'"]),
]


@pytest.fixture()
def deployed_dev_stack(monkeypatch):
    """moto holding a parent stack tagged as dev, as deploy.sh tags the stacks it creates."""
    import boto3
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "ap-northeast-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        boto3.client("cloudformation", region_name="ap-northeast-1").create_stack(
            StackName="video-pipeline-dev", Tags=[{"Key": "Environment", "Value": "dev"}],
            TemplateBody=json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}))
        yield


@pytest.mark.parametrize("case, args, names", DIFF_BAD_INPUT, ids=[c[0] for c in DIFF_BAD_INPUT])
def test_diff_bad_input_exits_2_with_one_line(deployed_dev_stack, tmp_path, monkeypatch, capsys, case, args, names):
    from generator.__main__ import main
    from generator.diff import cli as diff_cli

    if "outside" in case:
        monkeypatch.setattr(diff_cli, "REPO", tmp_path)  # an empty directory: no repository above it
        monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert main(["diff", *args]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert all(name in lines[0] for name in names), lines[0]


def test_diff_compares_another_environments_stack_when_the_override_names_both(deployed_dev_stack, capsys):
    from generator.__main__ import main

    code = main(["diff", "--stack", "video-pipeline-dev", "--env", "prod", "--stack-env-override", "dev:prod"])
    assert code == 0, capsys.readouterr().err


# Run the real CLI with one CloudFormation limit lowered, so that a real template exceeds it.
WITH_LIMIT = ("import runpy, sys; import generator.render as r; r.{limit} = {value}; sys.argv[0] = 'generator'; "
              "runpy.run_module('generator', run_name='__main__', alter_sys=True)")


@pytest.mark.parametrize("limit, value, names", [
    ("MAX_RESOURCES", 40, ["exceeds the CloudFormation limit of 40 resources"]),
    ("MAX_TEMPLATE_BYTES", 20_000, ["exceeds the CloudFormation limit of 20000 bytes"]),
    ("MAX_PARAMETERS", 5, ["exceeds the CloudFormation limit of 5 parameters"]),
    ("MAX_OUTPUTS", 3, ["exceeds the CloudFormation limit of 3 outputs"]),
])
def test_a_template_beyond_a_cloudformation_limit_fails_naming_template_and_limit(generated, tmp_path, limit, value,
                                                                                    names):
    out = tmp_path / "templates"
    shutil.copytree(generated, out)
    before = tree_digest(out)
    result = run("--out", str(out), code=WITH_LIMIT.format(limit=limit, value=value))
    assert_refused(result, names, out, before)
    assert re.match(r"error: (dev|staging|prod)/[a-z]+\.json: [0-9]+ ", result.stderr), "names the template"


def test_config_overrides_generate_a_what_if_environment(tmp_path):
    """The same mechanism accepts good input: dev over three AZs has three private subnets."""
    config_file = tmp_path / "overrides.json"
    config_file.write_text(json.dumps({"dev": {"az_count": 3}}))
    result = run("--out", str(tmp_path / "out"), "--env", "dev", "--config", str(config_file))
    assert result.returncode == 0, result.stderr
    network = json.loads((tmp_path / "out" / "dev" / "network.json").read_text())
    assert sorted(k for k in network["Resources"] if k.startswith("PrivateSubnet") and k[-1].isdigit()) == [
        "PrivateSubnet1", "PrivateSubnet2", "PrivateSubnet3"]


def test_help_documents_config():
    result = run("--help")
    assert result.returncode == 0 and "--config FILE" in result.stdout and "az_count" in result.stdout


def test_the_unknown_setting_message_lists_only_settings_that_can_be_overridden(tmp_path):
    config_file = tmp_path / "overrides.json"
    config_file.write_text(json.dumps({"dev": {"nat_per_region": True}}))
    result = run("--out", str(tmp_path / "out"), "--config", str(config_file))
    known = result.stderr.split("known: ", 1)[1].strip().split(", ")
    assert "az_count" in known and "name" not in known and "tags" not in known


# --out values that cannot be an output directory: (case, how to make it from tmp_path, what stderr names)
BAD_OUT = [
    ("--out that is a file", lambda tmp: _file(tmp / "plain-file"), ["is not a directory"]),
    ("--out under a file", lambda tmp: _file(tmp / "plain-file") / "templates",
     ["cannot create --out", "Not a directory"]),
]


def _file(path: Path) -> Path:
    path.write_text("not a directory\n")
    return path


@pytest.mark.parametrize("case, make, names", BAD_OUT, ids=[c[0] for c in BAD_OUT])
def test_an_output_path_that_cannot_be_a_directory_exits_2_and_changes_nothing(tmp_path, case, make, names):
    out = make(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    result = run("--out", str(out))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert all(n in result.stderr for n in names) and str(out) in result.stderr, result.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


# ------------------------------------------------------------------------------------------------ deploy.sh
# Bad input through ./deploy.sh itself: exit 2, one line on stderr naming the value and what is accepted,
# nothing installed, started or created (its build directory untouched, no emulator state directory).
# (case, arguments, environment, what the line must name)
DEPLOY_BAD_INPUT = [
    ("a port that is not a number", ["--local"], {"LOCAL_AWS_PORT": "abc"}, ["LOCAL_AWS_PORT 'abc'", "1024 to 65535"]),
    ("a port out of range", ["--local"], {"LOCAL_AWS_PORT": "99999"}, ["LOCAL_AWS_PORT '99999'", "1024 to 65535"]),
    ("a port out of range with --stop", ["--local", "--stop"], {"LOCAL_AWS_PORT": "0"}, ["LOCAL_AWS_PORT '0'"]),
    ("a bucket name with capitals", ["--local", "--bucket", "My_Bucket"], {},
     ["--bucket 'My_Bucket'", "lowercase letters"]),
    ("a bucket name too short", ["--bucket", "ab"], {}, ["--bucket 'ab'", "3 to 63 characters"]),
    ("a bucket name like an IP address", ["--bucket", "192.168.5.4"], {}, ["--bucket '192.168.5.4'", "IP address"]),
    ("a bucket name with adjacent dots", ["--local", "--bucket", "my..bucket"], {}, ["adjacent dots"]),
    ("a bucket name with a reserved suffix", ["--bucket", "my-bucket-s3alias"], {}, ["-s3alias"]),
    ("a region that is not a region", ["--region", "mars"], {}, ["--region 'mars'", "eu-west-1"]),
    ("a region that is not a region, --local", ["--local", "--region", "us east 1"], {}, ["--region 'us east 1'"]),
    ("an unknown environment", ["--env", "qa"], {}, ["--env", "dev, staging or prod", "'qa'"]),
    ("an override that does not name both environments", ["--stack-env-override", "dev"], {},
     ["--stack-env-override 'dev'", "STACK_ENV:ENV"]),
    ("an unknown argument", ["--colour"], {}, ["unknown argument: --colour"]),
    ("an option without its value", ["--stack-name"], {}, ["--stack-name needs a value"]),
    ("--stop without --local", ["--stop"], {}, ["--stop only goes with --local"]),
    ("--plan with --delete", ["--plan", "--delete"], {}, ["--plan and --delete"]),
    # It used to stop the emulator (its stacks lost) and ignore --smoke.
    ("--stop with --smoke", ["--local", "--stop", "--smoke"], {}, ["--stop and --smoke do not go together"]),
    # It used to start an emulator, fail on its empty account, and leave it running.
    ("--smoke with no emulator running", ["--local", "--smoke"], {},
     ["no local AWS is running", "./deploy.sh --local, then --smoke"]),
]


def run_deploy(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCAL_AWS_"))}
    base.update(BUILD_DIR=str(tmp_path / "build"), LOCAL_AWS_STATE_DIR=str(tmp_path / "local-aws"), NO_COLOR="1",
                LOCAL_AWS_PORT=str(free_port()), DEPLOY_POLL_SECONDS="0.2")
    return subprocess.run(["./deploy.sh", *args], cwd=REPO, env={**base, **env}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_one_error_line(result: subprocess.CompletedProcess, names: list[str], code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "error: " in lines[0], result.stderr[-3000:]
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.mark.parametrize("case, args, env, names", DEPLOY_BAD_INPUT, ids=[c[0] for c in DEPLOY_BAD_INPUT])
def test_deploy_bad_input_exits_2_with_one_line_and_creates_nothing(tmp_path, case, args, env, names):
    build = tmp_path / "build"
    (build / "dev" / "video-pipeline-dev").mkdir(parents=True)
    (build / "dev" / "video-pipeline-dev" / "parameters.json").write_text("[]\n")  # a previous run's output stays
    before = tree_digest(build)
    assert_one_error_line(run_deploy(args, env, tmp_path), names)
    assert tree_digest(build) == before
    assert not (tmp_path / "local-aws").exists(), "no emulator was started"


def test_a_port_held_by_a_silent_listener_fails_at_once_naming_the_port(tmp_path):
    """A listener that accepts and never answers HTTP: refused before the emulator starts, not after a minute."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        started = time.monotonic()
        result = run_deploy(["--local"], {"LOCAL_AWS_PORT": str(port)}, tmp_path)
        elapsed = time.monotonic() - started
    line = assert_one_error_line(result, [f"port {port} is in use", "LOCAL_AWS_PORT="])
    assert elapsed < 10, f"took {elapsed:.0f}s: {line}"
    assert not (tmp_path / "build").exists(), "nothing was built"


# Problems of the environment, met before anything is changed: one line and exit 2, as for bad input (they used to
# exit 1, the code of a failed deployment). (case, environment, what the line names)
NO_AWS = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_CONFIG_FILE": "/nonexistent",
          "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"}
DEPLOY_ENVIRONMENT_PROBLEMS = [
    ("no credentials", NO_AWS, ["no usable AWS credentials", "AWS_PROFILE"]),
    ("no network", {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_EC2_METADATA_DISABLED": "true",
                    "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, ["cannot reach AWS in region", "the network"]),
]


@pytest.mark.slow  # deploy.sh waits for the network it cannot reach
@pytest.mark.parametrize("case, env, names", DEPLOY_ENVIRONMENT_PROBLEMS,
                         ids=[c[0] for c in DEPLOY_ENVIRONMENT_PROBLEMS])
def test_deploy_environment_problems_exit_2_with_one_line_and_create_nothing(tmp_path, case, env, names):
    assert_one_error_line(run_deploy([], env, tmp_path), names)
    assert not (tmp_path / "build").exists(), "nothing was built"
