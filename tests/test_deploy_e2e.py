"""deploy.sh end to end against the embedded emulator: the script itself, not a Python shortcut.

Self-contained: the emulator runs on a free port with its own state and build directories, and is stopped at
the end. The same calls with real credentials (no --local) deploy to AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import boto3
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = "tests/fixtures/deploy"
REGION = "ap-northeast-1"
NEW_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.22.36"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(LOCAL_AWS_PORT=str(port), LOCAL_AWS_STATE_DIR=str(tmp / "local-aws"), BUILD_DIR=str(tmp / "build"),
               DEPLOY_POLL_SECONDS="0.2", NO_COLOR="1")
    yield env
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "deploytools.local_aws", "stop"], cwd=ROOT,
                   env=env, check=False, capture_output=True)


def deploy(env, *args, extra_env=None):
    r = subprocess.run(["./deploy.sh", *args], cwd=ROOT, env={**env, **(extra_env or {})}, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout + r.stderr


def cfn(env):
    return boto3.client("cloudformation", region_name=REGION, endpoint_url=f"http://localhost:{env['LOCAL_AWS_PORT']}",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def live_stacks(env):
    return {s["StackName"]: s for s in cfn(env).describe_stacks()["Stacks"]}


def test_fixture_deploy_failure_and_delete(emulator):
    rc, out = deploy(emulator, "--local", "--template-dir", FIXTURES, "--stack-name", "fx")
    assert rc == 0, out
    assert "fx/QueueStack" in out and "Queue" in out  # nested events are shown
    assert "QueueUrl" in out and "TopicArn" in out

    rc, out = deploy(emulator, "--local", "--template-dir", FIXTURES, "--stack-name", "fx-bad",
                     "--param", "QueueName=bad name!")
    assert rc == 1, out
    assert "root cause (first failed resources):" in out
    assert "fx-bad/QueueStack Queue (AWS::SQS::Queue) CREATE_FAILED: Can only include alphanumeric" in out
    assert live_stacks(emulator)["fx-bad"]["StackStatus"] == "ROLLBACK_COMPLETE"

    rc, out = deploy(emulator, "--local", "--delete", "--stack-name", "fx-bad")
    assert rc == 0, out
    rc, out = deploy(emulator, "--local", "--delete", "--stack-name", "fx")
    assert rc == 0, out
    assert "fx/QueueStack Queue (AWS::SQS::Queue)" in out  # DeletionPolicy Retain is listed
    assert not {"fx", "fx-bad"} & set(live_stacks(emulator))


def test_dev_flow(emulator, tmp_path):
    stack = "video-pipeline-dev"
    rc, out = deploy(emulator, "--local", "--plan")
    assert rc == 0, out
    assert "--plan: change set deleted, nothing changed." in out
    assert stack not in live_stacks(emulator)

    rc, out = deploy(emulator, "--local")
    assert rc == 0, out
    stacks = live_stacks(emulator)
    nested = [s for name, s in stacks.items() if name.startswith(f"{stack}-")]
    assert {s["StackStatus"] for s in nested} == {"CREATE_COMPLETE"}
    assert len(nested) == len(list((ROOT / "templates" / "dev").glob("*.json"))) - 1
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[stack].get("Outputs", [])}
    assert {"StateMachineArn", "CompletionTopicArn", "ErrorTopicArn"} <= outputs.keys()
    assert all(outputs.values())
    assert f"{stack}: CREATE_COMPLETE" in out and "outputs:" in out

    rc, out = deploy(emulator, "--local")
    assert rc == 0, out
    assert "No changes" in out

    # Without --local: the real-AWS path, pointed at the emulator; no terminal and no --yes: refuse.
    aws_env = {"AWS_ENDPOINT_URL": f"http://localhost:{emulator['LOCAL_AWS_PORT']}", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing"}
    rc, out = deploy(emulator, "--param", f"ProcessorImage={NEW_IMAGE}", extra_env=aws_env)
    assert rc == 1, out
    assert "~ WorkflowStack (AWS::CloudFormation::Stack)" in out
    assert "refusing to execute this change set" in out and "pass --yes" in out
    pending = cfn(emulator).list_change_sets(StackName=stack)["Summaries"]
    assert [c["ChangeSetName"] for c in pending if c.get("ExecutionStatus") == "AVAILABLE"] == [], \
        "a refused change set is deleted"

    rc, out = deploy(emulator, "--yes", "--param", f"ProcessorImage={NEW_IMAGE}", extra_env=aws_env)
    assert rc == 0, out
    assert "+0 ~1 -0 replaced 0" in out and "~ WorkflowStack" in out
    assert f"{stack}: UPDATE_COMPLETE" in out

    # A change in one tier's template updates that tier's stack only.
    changed = tmp_path / "dev"
    shutil.copytree(ROOT / "templates" / "dev", changed)
    workflow = json.loads((changed / "workflow.json").read_text())
    workflow["Resources"]["StateMachine"]["Properties"]["Definition"]["Comment"] = "changed by the e2e test"
    (changed / "workflow.json").write_text(json.dumps(workflow, indent=2))
    rc, out = deploy(emulator, "--local", "--template-dir", str(changed), "--param", f"ProcessorImage={NEW_IMAGE}")
    assert rc == 0, out
    assert "+0 ~1 -0 replaced 0" in out and "~ WorkflowStack" in out
    assert f"{stack}: UPDATE_COMPLETE" in out

    rc, out = deploy(emulator, "--local", "--param", "ProcessorImage=repo/image:latest", "--param", "Colour=blue")
    assert rc == 2, out
    assert "bad parameter(s), nothing was deployed" in out
    assert "Colour: no such parameter" in out
    assert "ProcessorImage='repo/image:latest': must match" in out
    assert live_stacks(emulator)[stack]["StackStatus"] == "UPDATE_COMPLETE"

    rc, out = deploy(emulator, "--local", "--delete")
    assert rc == 0, out
    assert f"{stack}: DELETE_COMPLETE" in out
    assert not [name for name in live_stacks(emulator) if name.startswith(stack)]
