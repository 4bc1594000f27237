"""deploy.sh end to end against the embedded emulator: the script itself, not a Python shortcut.

Self-contained: the emulator runs on a free port with its own state and build directories, and is stopped at
the end. The same calls with real credentials (no --local) deploy to AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from generator import config

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
    # The image names the repository the execution role may pull from (compute) and runs in the task (workflow).
    assert "+0 ~2 -0 replaced 0" in out and "~ ComputeStack" in out and "~ WorkflowStack" in out
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


# ----------------------------------------------------------------------------- faults (issue #10, deploy side)

def fresh_env(tmp_path: Path) -> dict[str, str]:
    """An emulator of its own: own port, state and build directories."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(LOCAL_AWS_PORT=str(_free_port()), LOCAL_AWS_STATE_DIR=str(tmp_path / "local-aws"),
               BUILD_DIR=str(tmp_path / "build"), DEPLOY_POLL_SECONDS="0.2", NO_COLOR="1")
    return env


def servers(state_dir: Path) -> list[int]:
    """Pids of this user's emulators serving state_dir, by their command line."""
    from deploytools import local_aws

    return local_aws._servers(state_dir)


def services_record(state_dir: Path) -> dict:
    """The pids and data directory of the local PostgreSQL and Redis the emulator started (once they are up)."""
    from deploytools import local_services

    deadline = time.monotonic() + 60
    while not (state_dir / local_services.COORDINATES_FILE).exists():
        assert time.monotonic() < deadline, "the local services did not start: see server.log"
        time.sleep(0.1)
    record = json.loads((state_dir / local_services.PROCESSES_FILE).read_text())
    assert len(services_left(record)) == 2, "a PostgreSQL and a redis-server"
    return record


def services_left(record: dict) -> list[int]:
    """Those of the record's servers still running."""
    from deploytools import local_services

    return [p["pid"] for p in record["processes"] if local_services._alive(p["pid"], p["exe"])]


@pytest.fixture
def own_emulator(tmp_path):
    env = fresh_env(tmp_path)
    yield env
    deploy(env, "--local", "--stop")


def test_concurrent_local_deploys_share_one_emulator_and_stop_stops_it(own_emulator, tmp_path):
    runs = [subprocess.Popen(["./deploy.sh", "--local", "--template-dir", FIXTURES, "--stack-name", f"fx{i}"],
                             cwd=ROOT, env=own_emulator, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for i in (1, 2)]
    outputs = [r.communicate(timeout=600)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    state = tmp_path / "local-aws"
    assert len(servers(state)) == 1, "one emulator per state directory"
    assert {"fx1", "fx2"} <= set(live_stacks(own_emulator))
    services = services_record(state)

    rc, out = deploy(own_emulator, "--local", "--stop")
    assert rc == 0 and not servers(state), out
    assert services_left(services) == [] and not Path(services["root"]).exists(), "its PostgreSQL and Redis too"


def test_stop_finds_an_emulator_whose_state_directory_was_removed(own_emulator, tmp_path):
    rc, out = deploy(own_emulator, "--local", "--stop")  # nothing yet
    assert rc == 0, out
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "deploytools.local_aws", "start"], cwd=ROOT,
                   env=own_emulator, check=True, capture_output=True)
    state = tmp_path / "local-aws"
    assert len(servers(state)) == 1
    services = services_record(state)
    shutil.rmtree(state)
    rc, out = deploy(own_emulator, "--local", "--stop")
    assert rc == 0 and not servers(state), out
    with socket.socket() as s:
        s.bind(("127.0.0.1", int(own_emulator["LOCAL_AWS_PORT"])))  # the port is free again
    assert services_left(services) == [] and not Path(services["root"]).exists(), "the emulator ended its services"


def test_stop_after_the_emulator_was_killed_leaves_no_postgresql_or_redis_and_no_data(own_emulator, tmp_path):
    """A killed emulator cannot stop its services: the kernel's parent-death signal does, and --stop removes what
    is left (their data, their passwords in services.json) from services.pids."""
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "deploytools.local_aws", "start"], cwd=ROOT,
                   env=own_emulator, check=True, capture_output=True)
    state = tmp_path / "local-aws"
    services = services_record(state)
    [pid] = servers(state)
    os.kill(pid, signal.SIGKILL)
    rc, out = deploy(own_emulator, "--local", "--stop")
    assert rc == 0, out
    assert services_left(services) == [] and not Path(services["root"]).exists()
    assert not {"services.json", "services.pids"} & {p.name for p in state.iterdir()}


def test_another_environments_stack_is_refused_even_locally(own_emulator):
    rc, out = deploy(own_emulator, "--local", "--template-dir", FIXTURES, "--stack-name", "fx")
    assert rc == 0, out
    tags = {t["Key"]: t["Value"] for t in live_stacks(own_emulator)["fx"].get("Tags", [])}
    assert tags == {"Environment": "dev", "Project": config.PROJECT}

    for args in (["--template-dir", FIXTURES], ["--yes", "--template-dir", FIXTURES], ["--delete"]):
        r = subprocess.run(["./deploy.sh", "--local", "--env", "staging", "--stack-name", "fx", *args], cwd=ROOT,
                           env=own_emulator, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        line, = r.stderr.splitlines()
        assert "belongs to environment dev, not staging" in line and "--stack-env-override dev:staging" in line
        assert "Packaging" not in r.stdout and "Deleting" not in r.stdout
    assert live_stacks(own_emulator)["fx"]["StackStatus"] == "CREATE_COMPLETE"

    rc, out = deploy(own_emulator, "--local", "--env", "staging", "--stack-name", "fx", "--plan",
                     "--template-dir", FIXTURES, "--stack-env-override", "dev:staging")
    assert rc == 0 and "deploying staging over it (override)" in out, out


def test_a_rollback_that_leaves_a_vpc_names_it_and_never_says_nothing_is_half_deployed(own_emulator, tmp_path):
    from test_moto_workarounds import LEAKY_VPC

    template = {"Parameters": {"QueueName": {"Type": "String"}},
                "Resources": {**LEAKY_VPC, "Queue": {**LEAKY_VPC["Queue"],
                                                     "Properties": {"QueueName": {"Ref": "QueueName"}}}}}
    (tmp_path / "leaky").mkdir()
    (tmp_path / "leaky" / "main.json").write_text(json.dumps(template))
    rc, out = deploy(own_emulator, "--local", "--template-dir", str(tmp_path / "leaky"), "--stack-name", "leaky",
                     "--param", "QueueName=bad name!")
    assert rc == 1, out
    assert "nothing is half-deployed" not in out
    assert "the rollback could not remove 1 resource(s)" in out and "leaky Vpc (AWS::EC2::VPC) vpc-" in out
    assert live_stacks(own_emulator)["leaky"]["StackStatus"] == "ROLLBACK_FAILED"


# Loaded by every Python process of a deploy (sitecustomize on PYTHONPATH): one AWS call (ExecuteChangeSet,
# deploy.sh's point of no return, by default) announces itself in a file and holds until released, so a test can
# interrupt exactly there. moto executes a change set inside that one call, which is otherwise too quick to hit.
HOLD_CALL = """
import os, pathlib, time
import botocore.client

_call = botocore.client.BaseClient._make_api_call
marker = pathlib.Path(os.environ["HOLD_EXECUTE_MARKER"])
held = os.environ.get("HOLD_OPERATION", "ExecuteChangeSet")

def _make_api_call(self, operation, params):
    if operation == held and not marker.exists():
        marker.write_text("holding " + operation)
        deadline = time.monotonic() + 120
        while not marker.with_suffix(".release").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    return _call(self, operation, params)

botocore.client.BaseClient._make_api_call = _make_api_call
"""


def _deploy_held_at_execute(env: dict[str, str], tmp_path: Path,
                            operation: str = "ExecuteChangeSet") -> tuple[subprocess.Popen, Path]:
    """Start a dev deploy in its own process group; return it once it is inside `operation`."""
    hook = tmp_path / "hold-execute"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOLD_CALL)
    marker = tmp_path / "execute.marker"
    env = {**env, "PYTHONPATH": str(hook), "HOLD_EXECUTE_MARKER": str(marker), "HOLD_OPERATION": operation}
    proc = subprocess.Popen(["./deploy.sh", "--local"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    return proc, marker.with_suffix(".release")


def test_ctrl_c_during_execute_is_one_line_with_the_stack_state(own_emulator, tmp_path):
    proc, _ = _deploy_held_at_execute(own_emulator, tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C on a terminal does
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, (out, err)
    assert len(err.splitlines()) == 1, err
    line, = err.splitlines()
    assert line.startswith("interrupted: ") and "stack video-pipeline-dev is" in line and "./deploy.sh" in line


def test_stop_during_a_deploy_ends_in_one_line_saying_what_to_run(own_emulator, tmp_path):
    proc, release = _deploy_held_at_execute(own_emulator, tmp_path)
    rc, out = deploy(own_emulator, "--local", "--stop")
    assert rc == 0, out
    release.touch()  # the held call now reaches a stopped emulator
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, (out, err)
    line, = err.splitlines()
    assert line.startswith("error: cannot reach http://localhost:") and "run ./deploy.sh --local again" in line


@pytest.mark.parametrize("to_group", [False, True], ids=["sent to deploy.sh", "sent to its process group"])
def test_sigterm_during_execute_is_one_line_exit_130_with_the_stack_state(own_emulator, tmp_path, to_group):
    """It used to kill deploy.sh at once (exit 143, no line) and leave the step it ran going on alone."""
    proc, _ = _deploy_held_at_execute(own_emulator, tmp_path)
    if to_group:
        os.killpg(proc.pid, signal.SIGTERM)  # what a CI runner cancelling the job does
    else:
        proc.terminate()  # `kill <pid>`: deploy.sh alone
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, (out, err)
    line, = err.splitlines()
    assert line.startswith("interrupted: ") and "stack video-pipeline-dev is" in line and "./deploy.sh" in line


def test_sigterm_before_the_change_set_is_executed_deletes_it_and_says_the_stack_is_unchanged(own_emulator,
                                                                                             tmp_path):
    proc, _ = _deploy_held_at_execute(own_emulator, tmp_path, operation="DescribeChangeSet")
    proc.terminate()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, (out, err)
    line, = err.splitlines()
    assert line.startswith("interrupted: deploy.sh stopped; the change set deploy-") and "was deleted" in line
    assert "stack video-pipeline-dev was not changed" in line and "./deploy.sh --local --stop" in line
    assert "video-pipeline-dev" not in live_stacks(own_emulator), "the empty stack of a CREATE change set is gone"


def test_the_remove_retained_of_a_stack_that_exists_is_a_problem_of_the_environment_exit_2(own_emulator):
    rc, out = deploy(own_emulator, "--local", "--template-dir", FIXTURES, "--stack-name", "fx")
    assert rc == 0, out
    rc, out = deploy(own_emulator, "--local", "--remove-retained", "--stack-name", "fx")
    assert rc == 2 and "stack fx exists: its log groups are in use" in out, out
