"""Each workaround of deploytools.moto_layer is still needed (unpatched moto misbehaves) and still works
(patched moto doesn't): the CloudFormation ones (the emulator's), the thread-safety ones and job control's
instruments (tests/jobs_harness.py's). The Step Functions workarounds' canaries are in test_moto_sfn_harness.py.

When a moto upgrade fixes a behaviour, its `still_needed` / `test_unpatched_` case fails: delete that workaround.
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploytools.moto_layer import MOTO_VERSION, cloudformation, local_tasks, stepfunctions, threads

from conftest import dummy_credentials

pytestmark = pytest.mark.slow  # seconds in moto's emulator and probes: CI runs it, the fast loop leaves it out

ROOT = Path(__file__).resolve().parent.parent
NAMES = [w.__name__ for w in cloudformation.WORKAROUNDS]


def _probe(*args: str) -> dict[str, bool]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "moto_probe.py"), *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def unpatched() -> dict[str, bool]:
    return _probe()


@pytest.fixture(scope="module")
def patched() -> dict[str, bool]:
    return _probe("--patched")


def test_every_workaround_is_probed(unpatched):
    assert sorted(unpatched) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_still_needed(unpatched, name):
    assert unpatched[name] is False, f"moto now does this right: remove the workaround {name}"


@pytest.mark.parametrize("name", NAMES)
def test_fixed_by_workaround(patched, name):
    assert patched[name] is True


def test_every_workaround_says_why():
    for w in cloudformation.WORKAROUNDS:
        assert f"moto {MOTO_VERSION}" in (w.__doc__ or ""), w.__name__


# A stack whose rollback cannot delete its VPC in moto (something of its network stays behind).
LEAKY_VPC = {
    "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
    "RouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
    "Endpoint": {"Type": "AWS::EC2::VPCEndpoint", "Properties": {
        "VpcId": {"Ref": "Vpc"}, "ServiceName": "com.amazonaws.ap-northeast-1.s3",
        "RouteTableIds": [{"Ref": "RouteTable"}]}},
    "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"CidrBlock": "10.0.0.0/24", "VpcId": {"Ref": "Vpc"}}},
    "Igw": {"Type": "AWS::EC2::InternetGateway"},
    "Attachment": {"Type": "AWS::EC2::VPCGatewayAttachment",
                   "Properties": {"VpcId": {"Ref": "Vpc"}, "InternetGatewayId": {"Ref": "Igw"}}},
    "Eip": {"Type": "AWS::EC2::EIP", "Properties": {"Domain": "vpc"}},
    "Nat": {"Type": "AWS::EC2::NatGateway", "Properties": {
        "SubnetId": {"Ref": "Subnet"}, "AllocationId": {"Fn::GetAtt": ["Eip", "AllocationId"]}}},
    "Queue": {"Type": "AWS::SQS::Queue", "DependsOn": ["Nat", "Attachment", "Endpoint"],
              "Properties": {"QueueName": "bad name!"}},
}

ROLLBACK_PROBE = """
import json, os, sys, boto3
from moto import mock_aws
from deploytools.moto_layer import cloudformation
os.environ.update(AWS_ACCESS_KEY_ID="t", AWS_SECRET_ACCESS_KEY="t", AWS_DEFAULT_REGION="ap-northeast-1")
cloudformation.apply_all()
with mock_aws():
    cfn = boto3.client("cloudformation")
    cs = cfn.create_change_set(StackName="leaky", ChangeSetName="c", ChangeSetType="CREATE",
                               TemplateBody=json.dumps({"Resources": json.loads(sys.argv[1])}))
    cfn.execute_change_set(ChangeSetName=cs["Id"])
    stack = cfn.describe_stacks(StackName="leaky")["Stacks"][0]
    events = cfn.describe_stack_events(StackName="leaky")["StackEvents"]
    resources = cfn.list_stack_resources(StackName="leaky")["StackResourceSummaries"]
    vpcs = [v["VpcId"] for v in boto3.client("ec2").describe_vpcs()["Vpcs"] if not v["IsDefault"]]
    print(json.dumps({"status": stack["StackStatus"], "reason": events[0].get("ResourceStatusReason"),
                      "resources": [r["LogicalResourceId"] for r in resources], "vpcs": vpcs}))
"""


def test_a_rollback_that_cannot_delete_everything_ends_rollback_failed_naming_what_is_left():
    """AWS ends ROLLBACK_FAILED when a rollback cannot delete a resource; ROLLBACK_COMPLETE would claim the
    VPC that is still there is gone."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", ROLLBACK_PROBE, json.dumps(LEAKY_VPC)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["vpcs"], "the probe's VPC must really be left behind by moto"
    assert result["status"] == "ROLLBACK_FAILED"
    assert result["reason"].startswith("The following resource(s) failed to delete: [Vpc].")
    assert result["resources"] == ["Vpc"], "the stack still lists what is left, and only that"


# --------------------------------------------------------------------------------------------------------------
# Thread safety (deploytools.moto_layer.threads), for job control's harness: each canary makes another thread's
# call land at the one moment unpatched moto mishandles it (a hook on that backend object, this test's alone),
# and fails once moto no longer loses the race.

RACE_REGION = "us-east-1"
# How long the racing call is given: unpatched it ends in milliseconds (the wait ends with it; generous against a
# loaded machine), with a workaround it waits for the lock, and the wait must end first.
UNPATCHED_SECONDS, PATCHED_SECONDS = 10.0, 0.5


@pytest.fixture
def account(monkeypatch):
    from moto import mock_aws

    dummy_credentials(monkeypatch)
    monkeypatch.setenv("AWS_DEFAULT_REGION", RACE_REGION)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


def _meanwhile(call, seconds: float) -> Callable[[], None]:
    """Start ``call`` in another thread, give it ``seconds`` to end, return what waits for it to end."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=seconds)

    def finished() -> None:
        thread.join(timeout=30)
        assert not thread.is_alive() and not errors, errors
    return finished


def _transaction_racing_a_put(seconds: float) -> list[str]:
    """A TransactWriteItems whose condition fails, while another thread puts an item into the same table after the
    transaction began. Returns the table's keys once both ended."""
    import boto3
    from botocore.exceptions import ClientError
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    ddb = boto3.client("dynamodb", region_name=RACE_REGION)
    ddb.create_table(TableName="race", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][RACE_REGION]
    get_item, waits = backend.get_item, []

    def get_item_while_another_thread_writes(*args, **kwargs):
        # The transaction has taken its copy of the table; the other thread's put arrives now.
        if not waits:
            waits.append(_meanwhile(lambda: ddb.put_item(TableName="race", Item={"k": {"S": "other"}}), seconds))
        return get_item(*args, **kwargs)

    backend.get_item = get_item_while_another_thread_writes
    try:
        with pytest.raises(ClientError, match="TransactionCanceled"):
            ddb.transact_write_items(TransactItems=[{"ConditionCheck": {
                "TableName": "race", "Key": {"k": {"S": "missing"}}, "ConditionExpression": "attribute_exists(k)"}}])
    finally:
        del backend.get_item
    waits[0]()
    return sorted(item["k"]["S"] for item in ddb.scan(TableName="race")["Items"])


def test_unpatched_moto_undoes_another_threads_write_when_a_transaction_fails(account):
    """If this fails, moto isolates a transaction from other writers: drop serialised_dynamodb."""
    keys = _transaction_racing_a_put(UNPATCHED_SECONDS)
    assert keys == [], "moto put its copy of the table back over the other thread's item"


def test_serialised_dynamodb_keeps_the_other_threads_write(account):
    with threads.serialised_dynamodb():
        assert _transaction_racing_a_put(PATCHED_SECONDS) == ["other"]


def _ecs():
    import boto3

    return boto3.client("ecs", region_name=RACE_REGION)


def _fargate_task_runner(cluster: str, **container) -> Callable[[], str]:
    """A cluster and a Fargate task definition of that name (in a VPC of their own); returns a RunTask of it."""
    import boto3

    ec2 = boto3.client("ec2", region_name=RACE_REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # else moto's ENI has no DNS name
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    _ecs().create_cluster(clusterName=cluster)
    _ecs().register_task_definition(family=cluster, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                                    cpu="256", memory="512", containerDefinitions=[
                                        {"name": "c", "image": "x", "essential": True, "memory": 512, **container}])

    def run_task(**extra: Any) -> str:
        return _ecs().run_task(cluster=cluster, taskDefinition=cluster, launchType="FARGATE", networkConfiguration={
            "awsvpcConfiguration": {"subnets": [subnet], "securityGroups": []}}, **extra)["tasks"][0]["taskArn"]
    return run_task


def _describe_racing_a_run_task(seconds: float) -> list[str]:
    """DescribeTasks of one task while another thread's RunTask starts a second one in the same cluster. Returns
    the ARNs DescribeTasks answered."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ecs.models import ecs_backends

    run_task = _fargate_task_runner("race")
    first = run_task()
    [task] = ecs_backends[DEFAULT_ACCOUNT_ID][RACE_REGION].tasks["race"].values()
    waits = []

    def advance_while_another_thread_runs_a_task() -> None:
        # DescribeTasks is inside its loop over the cluster's tasks; the other thread's RunTask arrives now.
        waits.append(_meanwhile(run_task, seconds))

    task.advance = advance_while_another_thread_runs_a_task
    try:
        described = [t["taskArn"] for t in _ecs().describe_tasks(cluster="race", tasks=[first])["tasks"]]
    finally:
        del task.advance
        if waits:
            waits[0]()
    return described


def test_unpatched_moto_fails_a_describe_tasks_that_races_a_run_task(account):
    """If this fails, moto's DescribeTasks copes with a concurrent RunTask: drop serialised_ecs_tasks."""
    with pytest.raises(RuntimeError, match="dictionary changed size during iteration"):
        _describe_racing_a_run_task(UNPATCHED_SECONDS)


def test_serialised_ecs_tasks_answers_the_describe(account):
    with threads.serialised_ecs_tasks():
        assert len(_describe_racing_a_run_task(PATCHED_SECONDS)) == 1


def test_every_thread_workaround_has_a_canary_and_says_why():
    canaries = [f.__doc__ or "" for name, f in globals().items() if name.startswith("test_unpatched_")]
    for workaround in threads.WORKAROUNDS:
        assert any(f"drop {workaround.__name__}." in doc for doc in canaries), workaround.__name__
        assert f"moto {MOTO_VERSION}" in (workaround.__doc__ or ""), workaround.__name__


# --------------------------------------------------------------------------------------------------------------
# Job control's instruments (deploytools.moto_layer.stepfunctions.JOB_CONTROL_INSTRUMENTS): what moto lacks, so
# that each canary fails once moto offers it (then use moto's way and drop the instrument).

PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


def _run_pass_execution(name: str) -> str:
    """Run a one-state machine to its end in moto's interpreter; returns the execution ARN."""
    import boto3

    sfn = boto3.client("stepfunctions", region_name=RACE_REGION)
    machine = sfn.create_state_machine(name="pass", definition=PASS_MACHINE,
                                       roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input='{"videoId": "v"}')["executionArn"]
    deadline = time.monotonic() + 30
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not end"
        time.sleep(0.02)
    return arn


def test_unpatched_moto_sends_no_status_change_event_when_an_execution_ends(account):
    """If this fails, moto sends AWS's status-change event to EventBridge: drop execution_status_changes (let a rule
    deliver it)."""
    import boto3

    events, sqs = boto3.client("events", region_name=RACE_REGION), boto3.client("sqs", region_name=RACE_REGION)
    queue = sqs.create_queue(QueueName="ended")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="ended", EventPattern=json.dumps({"source": ["aws.states", "canary"]}))
    events.put_targets(Rule="ended", Targets=[{"Id": "queue", "Arn": queue_arn}])
    events.put_events(Entries=[{"Source": "canary", "DetailType": "probe", "Detail": "{}"}])
    _run_pass_execution("ended")
    time.sleep(0.2)  # an event sent when the execution ended has arrived by now
    sources = [json.loads(m["Body"])["source"]
               for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])]
    assert sources == ["canary"], "the rule delivers (the canary's own event), and moto sent nothing of its own"


def test_execution_status_changes_hands_over_the_event_aws_would_send(account):
    started, ended = [], []
    with stepfunctions.execution_status_changes(started.append, ended.append):
        arn = _run_pass_execution("hooked")
        deadline = time.monotonic() + 10
        while not ended and time.monotonic() < deadline:
            time.sleep(0.01)
    assert started == ["hooked"]
    [detail] = ended
    assert detail["executionArn"] == arn and detail["name"] == "hooked" and detail["status"] == "SUCCEEDED"
    assert json.loads(detail["input"]) == {"videoId": "v"} and detail["error"] is None
    assert set(detail) >= {"stateMachineArn", "cause"}


def test_unpatched_moto_has_no_setting_for_the_sync_poll_interval():
    """If this fails, moto offers a setting: drop sync_poll_interval (use the setting)."""
    from moto.core.config import default_user_config
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback

    assert set(default_user_config["stepfunctions"]) == {"execute_state_machine"}
    assert state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK == 0.5


def test_sync_poll_interval_sets_it_for_a_while():
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback

    with stepfunctions.sync_poll_interval(0.01):
        assert state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK == 0.01
    assert state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK == 0.5


def test_unpatched_moto_stops_every_task_with_exit_code_0(account):
    """If this fails, moto's task has an outcome of its own: drop scripted_ecs_tasks (and look again at
    ecs_task_outcome)."""
    from moto.moto_api import state_manager

    run_task = _fargate_task_runner("outcome", command=["false"])
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "immediate"})
    try:
        [task] = _ecs().describe_tasks(cluster="outcome", tasks=[run_task()])["tasks"]
    finally:
        state_manager.unset_transition("ecs::task")
    assert task["lastStatus"] == "STOPPED"
    assert [c.get("exitCode") for c in task["containers"]] == [0], "`false` exits 1; moto reports 0"
    assert "stopCode" not in task


def test_scripted_ecs_tasks_run_until_the_script_stops_them(account):
    from botocore.exceptions import ClientError

    run_task = _fargate_task_runner("scripted")
    started, refusals, stopping = [], iter(["ClientException", None]), []
    with stepfunctions.scripted_ecs_tasks(started=lambda arn, overrides: started.append(arn),
                                          exit_code_once_stopped=lambda arn: 3 if stopping else None,
                                          refuse=lambda: next(refusals)):
        with pytest.raises(ClientError, match="ClientException"):
            run_task()
        arn = run_task()
        assert started == [arn]
        [task] = _ecs().describe_tasks(cluster="scripted", tasks=[arn])["tasks"]
        assert task["lastStatus"] == "RUNNING", "until the script stops it"
        stopping.append(True)
        [task] = _ecs().describe_tasks(cluster="scripted", tasks=[arn])["tasks"]
    assert task["lastStatus"] == "STOPPED" and task["stopCode"] == "EssentialContainerExited"
    assert [c["exitCode"] for c in task["containers"]] == [3]


def test_every_job_control_instrument_has_a_canary_and_checks_the_moto_version():
    canaries = [f.__doc__ or "" for name, f in globals().items() if name.startswith("test_unpatched_")]
    for instrument in stepfunctions.JOB_CONTROL_INSTRUMENTS:
        assert any(f"drop {instrument.__name__} " in doc for doc in canaries), instrument.__name__
        assert f"moto {MOTO_VERSION}" in (instrument.__doc__ or ""), instrument.__name__


# The emulator's local task runner (deploytools/moto_layer/local_tasks.py).

def test_unpatched_moto_runs_no_container(account, tmp_path):
    """If this fails, moto runs a task's command: look at dropping local_processor_tasks (the emulator's runner)."""
    from moto.moto_api import state_manager

    marker = tmp_path / "ran"
    run_task = _fargate_task_runner("no-container", command=["sh", "-c", f"touch {marker}; exit 3"])
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "immediate"})
    try:
        [task] = _ecs().describe_tasks(cluster="no-container", tasks=[run_task()])["tasks"]
        time.sleep(0.5)
    finally:
        state_manager.unset_transition("ecs::task")
    assert task["lastStatus"] == "STOPPED" and [c.get("exitCode") for c in task["containers"]] == [0]
    assert not marker.exists(), "the command never ran"


# Stands in for `python -m processor`: writes its environment where ENV_FILE says, then exits with EXIT (or, with
# WAIT set, waits to be stopped: SIGTERM's default action ends it).
_STAND_IN = ("import json, os, sys, time; json.dump(dict(os.environ), open(os.environ['ENV_FILE'], 'w')); "
             "time.sleep(60 if os.environ.get('WAIT') else 0.3); sys.exit(int(os.environ['EXIT']))")


def _until_stopped(cluster: str, arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        [task] = _ecs().describe_tasks(cluster=cluster, tasks=[arn])["tasks"]
        if task["lastStatus"] == "STOPPED" or time.monotonic() > deadline:
            return task
        time.sleep(0.05)


def _overrides(video_id: str, **environment: str) -> dict[str, Any]:
    pairs = {"VIDEO_ID": video_id, "SOURCE_BUCKET": "media", "SOURCE_KEY": f"sources/{video_id}", **environment}
    return {"containerOverrides": [{"name": "c", "environment": [{"name": k, "value": v} for k, v in pairs.items()]}]}


# What deploytools/local_services.py writes to services.json (the parts the runner reads).
LOCAL_SERVICES = {"ca_file": "/tmp/local-ca.pem",
                  "postgres": {"host": "localhost", "port": 15432, "users": {"video_processor": "db-secret"}},
                  "redis": {"host": "localhost", "port": 16379,
                            "users": {"video-processing-dev-processor": "r-secret"}}}
# The processor's task definition's variables for AWS (generator/tiers/workflow.py): endpoints and IAM sign-in.
AWS_SERVICE_VARIABLES = {"DATABASE_AUTH": "iam", "DATABASE_HOST": "db.example", "DATABASE_NAME": "videoprocessing",
                         "DATABASE_PORT": "5432", "DATABASE_USERNAME": "video_processor", "REDIS_AUTH": "iam",
                         "REDIS_HOST": "redis.example", "REDIS_PORT": "6379", "REDIS_REPLICATION_GROUP_ID": "group",
                         "REDIS_TLS": "true", "REDIS_USERNAME": "video-processing-dev-processor"}


@pytest.fixture(params=["services", "no services"])
def local_runner(request, account, tmp_path):
    """A task definition like the processor's, a source in S3 for video v1, and the runner with the stand-in, with
    the local services' coordinates or without them (they did not start); yields (run_task, the stand-in's
    environment file, the coordinates)."""
    import boto3

    s3 = boto3.client("s3", region_name=RACE_REGION)
    s3.create_bucket(Bucket="media", **({} if RACE_REGION == "us-east-1" else
                                        {"CreateBucketConfiguration": {"LocationConstraint": RACE_REGION}}))
    s3.put_object(Bucket="media", Key="sources/v1", Body=b"video")
    env_file = tmp_path / "environment.json"
    run_task = _fargate_task_runner("local", environment=[
        {"name": "ENVIRONMENT", "value": "dev"}, {"name": "EXIT", "value": "0"},
        {"name": "ENV_FILE", "value": str(env_file)},
        *({"name": k, "value": v} for k, v in AWS_SERVICE_VARIABLES.items())])
    coordinates = LOCAL_SERVICES if request.param == "services" else None
    with local_tasks.local_processor_tasks("http://localhost:1", "fail-", command=(sys.executable, "-c", _STAND_IN),
                                           services=lambda: coordinates):
        yield run_task, env_file, coordinates


def test_the_local_runner_runs_the_task_with_its_environment_and_reports_its_exit_code(local_runner):
    run_task, env_file, coordinates = local_runner
    arn = run_task(overrides=_overrides("v1", EXIT="3"))
    [task] = _ecs().describe_tasks(cluster="local", tasks=[arn])["tasks"]
    assert task["lastStatus"] == "RUNNING", "until the process ends"
    task = _until_stopped("local", arn)
    assert task["lastStatus"] == "STOPPED" and task["stopCode"] == "EssentialContainerExited"
    assert [c["exitCode"] for c in task["containers"]] == [3], "the process's exit code, not moto's 0"
    environment = json.loads(env_file.read_text())
    assert environment["VIDEO_ID"] == "v1" and environment["ENVIRONMENT"] == "dev", "overrides and definition"
    assert environment["AWS_ENDPOINT_URL"] == "http://localhost:1" and environment["AWS_ACCESS_KEY_ID"] == "testing"
    services = {k: v for k, v in environment.items() if k.startswith(("DATABASE_", "REDIS_"))}
    if coordinates is None:
        assert services == {}, "services that did not start: nothing to sign in to, AWS's endpoints left out"
        return
    # The local services in place of AWS's: the template's database, role and user; a password instead of IAM;
    # verified TLS against the local CA (the names the processor reads, docs/processor.md).
    assert services == {
        "DATABASE_HOST": "localhost", "DATABASE_PORT": "15432", "DATABASE_NAME": "videoprocessing",
        "DATABASE_USERNAME": "video_processor", "DATABASE_AUTH": "password", "DATABASE_PASSWORD": "db-secret",
        "DATABASE_CA_FILE": "/tmp/local-ca.pem",
        "REDIS_HOST": "localhost", "REDIS_PORT": "16379", "REDIS_USERNAME": "video-processing-dev-processor",
        "REDIS_AUTH": "password", "REDIS_PASSWORD": "r-secret", "REDIS_TLS": "true",
        "REDIS_CA_FILE": "/tmp/local-ca.pem"}


def test_the_local_runner_sends_sigterm_on_stop_task(local_runner):
    run_task, env_file, _ = local_runner
    arn = run_task(overrides=_overrides("v1", WAIT="1"))
    deadline = time.monotonic() + 20
    while not env_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    _ecs().stop_task(cluster="local", task=arn, reason="execution stopped")
    task = _until_stopped("local", arn)
    assert task["stopCode"] == "UserInitiated" and task["stoppedReason"] == "execution stopped"
    assert [c["exitCode"] for c in task["containers"]] == [143], "128 + SIGTERM, as a container reports it"


@pytest.mark.parametrize("video_id", ["fail-v1", "v2"], ids=["failing prefix", "no source in S3"])
def test_the_local_runner_leaves_other_tasks_to_the_placeholder(local_runner, video_id):
    run_task, env_file, _ = local_runner
    [task] = _ecs().describe_tasks(cluster="local", tasks=[run_task(overrides=_overrides(video_id))])["tasks"]
    assert task["lastStatus"] == "STOPPED", "stopped on its first DescribeTasks"
    time.sleep(0.5)
    assert not env_file.exists(), "nothing ran"
