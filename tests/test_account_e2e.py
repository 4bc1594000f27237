"""Issue #11 end to end: deploy.sh's account bootstrap and preflight against its own emulator.

Self-contained like tests/test_deploy_e2e.py: a free port, its own state and build directories, `--local --stop`
at the end. The emulator lacks Lambda's account settings, Service Quotas for Fargate and RDS's engine versions:
those checks print "not checked" warnings here (tests/test_preflight.py covers them with botocore's Stubber).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import boto3
import pytest

from deploytools import preflight

from conftest import emulator_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
REGION = "ap-northeast-1"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    env = emulator_env(tmp_path_factory.mktemp("account"))
    yield env
    deploy(env, "--local", "--stop")


def deploy(env, *args):
    r = subprocess.run(["./deploy.sh", *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=600)
    return r.returncode, r.stdout + r.stderr


def client(env, service):
    return boto3.client(service, region_name=REGION, endpoint_url=f"http://localhost:{env['LOCAL_AWS_PORT']}",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_bootstrap_creates_the_account_pieces_once(emulator):
    code, out = deploy(emulator, "--local", "--bootstrap")
    assert code == 0, out
    assert "bootstrap: AWSServiceRoleForECS: created" in out and "bootstrap: done" in out
    assert "Preflight" not in out and "change set" not in out.lower(), "--bootstrap does only that"
    assert client(emulator, "apigateway").get_account()["cloudwatchRoleArn"]
    code, out = deploy(emulator, "--local", "--bootstrap")
    assert code == 0 and "bootstrap: nothing to change" in out, out


def test_every_deploy_runs_the_preflight_before_the_change_set(emulator):
    code, out = deploy(emulator, "--local", "--plan")
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith("preflight: ")]
    assert [line.split()[2] for line in lines] == [f"{name}:" for name, _ in preflight.CHECKS]
    assert "preflight: ok       bootstrap:" in out
    assert out.index("==> Preflight") < out.index("==> Creating change set")


def test_a_retained_log_group_blocks_a_re_create_until_removed(emulator):
    retained = preflight.retained_log_group_names(preflight.read_templates(str(ROOT / "templates" / "prod")))
    logs = client(emulator, "logs")
    logs.create_log_group(logGroupName=retained[0])
    digest = "public.ecr.aws/aws-cli/aws-cli@sha256:" + "0" * 64  # prod takes only a pinned digest
    code, out = deploy(emulator, "--local", "--env", "prod", "--plan", "--param", f"ProcessorImage={digest}")
    assert code == 2, out
    assert "preflight: BLOCKING retained-names:" in out and retained[0] in out and "--remove-retained" in out
    assert "Creating change set" not in out and "Artifact bucket" not in out, "blocked before anything changed"
    assert not [s for s in client(emulator, "cloudformation").list_stacks()["StackSummaries"]
                if s["StackName"] == "video-pipeline-prod"]
    code, out = deploy(emulator, "--local", "--env", "prod", "--remove-retained")
    assert code == 0 and f"deleted {retained[0]}" in out, out
    assert not logs.describe_log_groups(logGroupNamePrefix=retained[0])["logGroups"]
    code, out = deploy(emulator, "--local", "--env", "prod", "--remove-retained")
    assert code == 0 and "none: nothing to remove" in out, out
