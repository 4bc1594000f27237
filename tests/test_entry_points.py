"""Every entry point turns each kind of error a user can cause or meet into one line and exit 2, a bug into
exit 70 with the traceback in a log file, and an interruption into one line saying what state things are in.

Errors are injected where they arise (a bad value, a malformed file, an AWS API error from moto, a bug
raised inside the code), not by calling the error classes directly."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import boto3
import pytest
from moto import mock_aws

from deploytools import cfn
from generator import errors

from conftest import REPO

REGION = "ap-northeast-1"


def run_module(module: str, *args: str, env: dict[str, str] | None = None, code: str | None = None,
               ) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", module, *args] if code is None else [sys.executable, "-c", code, *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def one_error_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_every_user_facing_error_derives_from_one_base():
    from generator import config

    for error in (config.ConfigError, errors.LimitError, errors.WiringError, errors.SkipError, errors.GitError,
                  errors.AwsError, errors.TemplateError, errors.InputError, cfn.ParameterError):
        assert issubclass(error, errors.PipelineError), error


# ----------------------------------------------------------------------------------------- deploytools.cfn

@pytest.mark.parametrize("case, args, names", [
    ("a --param without =", ["--param", "ProcessorImage"], ["--param 'ProcessorImage'", "Key=Value"]),
    ("a template that is not JSON", ["--template", "README.md"], ["README.md", "not valid JSON"]),
    ("a template that does not exist", ["--template", "missing.json"], ["missing.json", "No such file"]),
    ("two bad parameters: both named on the one line",
     ["--param", "ProcessorImage=repo/image:latest", "--param", "Colour=blue"],
     ["nothing was deployed", "ProcessorImage='repo/image:latest': must match", "Colour: no such parameter"]),
])
def test_cfn_params_bad_input_is_one_line_exit_2(tmp_path, case, args, names):
    base = {"--template": "templates/dev/main.json", "--out": str(tmp_path / "p.json")}
    given = set(args[::2])  # options of the case replace the defaults; --param may repeat
    argv = [x for pair in base.items() if pair[0] not in given for x in pair] + args
    line = one_error_line(run_module("deploytools.cfn", "params", *argv))
    assert line.startswith("error: ") and all(n in line for n in names), line
    assert not (tmp_path / "p.json").exists()


def test_cfn_aws_error_is_one_line_exit_2(monkeypatch):
    """A stack that does not exist, asked of moto's CloudFormation in-process."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws(), pytest.raises(errors.AwsError, match=r"ListStackResources: ValidationError: .*no-such-stack"):
        cfn.aws_errors_as_pipeline_errors(cfn.cmd_retained, _ns(stack="no-such-stack"))


def test_cfn_unreachable_endpoint_says_what_to_run(monkeypatch):
    env = {"AWS_ENDPOINT_URL": "http://localhost:9", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": REGION, "AWS_MAX_ATTEMPTS": "1"}
    line = one_error_line(run_module("deploytools.cfn", "stack-status", "--stack", "s", env=env))
    assert "cannot reach http://localhost:9" in line and "./deploy.sh --local" in line


def test_cfn_malformed_deployed_template_is_a_template_error():
    with pytest.raises(errors.TemplateError, match="not valid YAML"):
        cfn.parse_template("Resources: [unclosed")


def test_cfn_internal_bug_exits_70_with_a_log(tmp_path):
    code = ("import sys; from deploytools import cfn\n"
            "cfn.check_params = lambda t, p: 1 / 0\n"
            "sys.exit(cfn.main(sys.argv[1:]))")
    result = run_module("", "params", "--template", "templates/dev/main.json", "--out", str(tmp_path / "p"),
                        env={"PIPELINE_LOG_DIR": str(tmp_path / "logs")}, code=code)
    line = one_error_line(result, 70)
    assert "internal error" in line and "ZeroDivisionError" in line
    log, = (tmp_path / "logs").iterdir()
    assert "Traceback" in log.read_text()


def test_ctrl_c_while_following_a_deploy_says_the_stack_state_and_what_to_run(monkeypatch):
    """Ctrl-C arrives while deploy.sh waits between polls; the stack's real state is read and reported."""
    with mock_aws():
        client = boto3.client("cloudformation", region_name=REGION)
        template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}
        stack_id = client.create_stack(StackName="pipeline", TemplateBody=json.dumps(template))["StackId"]
        created = client.describe_stacks(StackName=stack_id)["Stacks"][0]["CreationTime"]
        watcher = cfn.Watcher(client, stack_id, since=created, out=io.StringIO())
        monkeypatch.setattr(watcher, "root_status", lambda: "UPDATE_IN_PROGRESS")

        def ctrl_c(seconds: float) -> None:
            raise KeyboardInterrupt
        monkeypatch.setattr(cfn.time, "sleep", ctrl_c)
        with pytest.raises(errors.Interrupted) as e:
            cfn.follow_or_explain(watcher, "the deploy", "run ./deploy.sh again once it has finished")
    message = str(e.value)
    assert "stack pipeline is CREATE_COMPLETE" in message and "./deploy.sh again" in message
    assert e.value.exit_code == errors.EXIT_INTERRUPTED


def _ns(**kwargs: str):
    import argparse

    return argparse.Namespace(**kwargs)


@pytest.mark.parametrize("tags, description, env, override, refused", [
    ([{"Key": "Environment", "Value": "dev"}], "x (dev)", "staging", None, True),
    ([{"Key": "Environment", "Value": "dev"}], "x (dev)", "dev", None, False),
    ([], "Video processing pipeline (prod)", "dev", None, True),  # deployed before stacks were tagged
    ([{"Key": "Environment", "Value": "dev"}], "", "staging", "dev:staging", False),
    ([{"Key": "Environment", "Value": "dev"}], "", "staging", "staging:dev", True),  # the override names both
    ([{"Key": "Environment", "Value": "dev"}], "", "staging", "prod:staging", True),
], ids=["tag mismatch", "tag match", "description mismatch", "override naming both", "override reversed",
        "override naming another stack env"])
def test_one_environment_is_never_deployed_onto_another_environments_stack(monkeypatch, tags, description, env,
                                                                           override, refused):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("cloudformation", region_name=REGION)
        template = {"Description": description, "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}
        client.create_stack(StackName="video-pipeline-dev", TemplateBody=json.dumps(template), Tags=tags)
        if refused:
            with pytest.raises(errors.InputError) as e:
                cfn.check_stack_environment(client, "video-pipeline-dev", env, override)
            assert f"not {env}" in str(e.value) and "--stack-env-override" in str(e.value)
        else:
            assert "video-pipeline-dev" in cfn.check_stack_environment(client, "video-pipeline-dev", env, override)
        assert "does not exist yet" in cfn.check_stack_environment(client, "video-pipeline-qa", env)
