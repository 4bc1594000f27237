"""Tests of the Step Functions harness (tests/moto_sfn.py) and of the patches it applies
(deploytools/moto_layer/stepfunctions.py).

Every execution runs the generated state machine (generator/state_machine.py), never a hand-written copy.
What the pipeline does is tested in test_workflow_behaviour.py; here: that the patches make moto behave as
AWS does, and (the `unpatched` canaries) that moto still needs each workaround: when a moto upgrade fixes
one, its canary fails and the workaround can go.
"""

from __future__ import annotations

import copy
import json
import sys
import time

import pytest

from deploytools.moto_layer import stepfunctions
from deploytools.moto_layer.stepfunctions import moto_patches, substitute
from generator import state_machine

from jobs_harness import Pipeline, table_properties
from moto_sfn import CONTAINER_NAME, generated_definition, run_execution

pytestmark = pytest.mark.slow  # seconds in moto's harness: CI runs it, the fast loop leaves it out

VIDEO_ID = "video-123"


@pytest.fixture(scope="module")
def definition(templates) -> dict:
    return generated_definition(templates)


@pytest.fixture(scope="module")
def success(definition):
    return run_execution(definition, {"videoId": VIDEO_ID})


def task_failure_causes(result) -> list[str]:
    return [e["taskFailedEventDetails"]["cause"] for e in result.history if e["type"] == "TaskFailed"]


def test_the_sync_task_result_is_the_stopped_task_in_pascal_case(success):
    assert success.status == "SUCCEEDED", (success.error, success.cause)
    task = success.output["taskResult"]  # DescribeTasks' task, as AWS's runTask.sync returns it
    assert task["LastStatus"] == "STOPPED"
    assert task["StopCode"] == "EssentialContainerExited"
    assert task["TaskArn"].startswith("arn:aws:ecs:")
    assert task["Containers"][0]["Name"] == CONTAINER_NAME and task["Containers"][0]["ExitCode"] == 0


def test_run_task_receives_the_parameters_and_calls_are_recorded_by_moto_names(success):
    [call] = success.run_task_calls
    assert call["cluster_str"].startswith("arn:aws:ecs:") and ":cluster/" in call["cluster_str"]
    assert ":task-definition/" in call["task_definition_str"]
    assert call["launch_type"] is None, "CapacityProviderStrategy reached RunTask, no launch type fallback"
    assert call["capacity_provider_strategy"]
    assert call["overrides"]["containerOverrides"][0]["name"] == CONTAINER_NAME


def test_a_non_zero_exit_fails_every_sync_attempt_with_the_stopped_task_as_cause(definition):
    result = run_execution(definition, {"videoId": VIDEO_ID}, task_exit_code=1)  # 3 is invalid media: no retry

    assert result.task_failures() == ["States.TaskFailed"] * 4
    for cause in task_failure_causes(result):
        assert json.loads(cause)["Containers"][0]["ExitCode"] == 1


def test_a_task_that_never_ran_reports_a_stop_code_and_no_exit_code(definition):
    result = run_execution(definition, {"videoId": VIDEO_ID}, task_exit_code=None)

    task = json.loads(task_failure_causes(result)[0])
    assert task["StopCode"] == "TaskFailedToStart"
    assert task["StoppedReason"] == "CannotPullContainerError: test"
    assert "ExitCode" not in task["Containers"][0]


def test_a_run_task_client_error_is_a_task_failure_named_after_its_ecs_error_code(definition):
    started = time.monotonic()
    result = run_execution(definition, {"videoId": VIDEO_ID}, run_task_fails=True)

    assert result.task_failures() == ["ECS.InvalidParameterException"] * 4
    assert task_failure_causes(result)[0] == (
        "No Container Instances were found in your cluster. "
        "(Service: AmazonECS; Status Code: 400; Error Code: InvalidParameterException)")
    assert time.monotonic() - started < sum(result.retry_sleeps), "retry intervals are recorded, not slept"


def test_a_definition_string_runs_and_raw_delivery_has_no_subject(definition):
    result = run_execution(json.dumps(definition), {"videoId": VIDEO_ID}, raw_message_delivery=True)

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    [note] = result.messages["completion"]
    assert note.subject is None
    assert note.message["videoId"] == VIDEO_ID


def test_substitute_replaces_placeholders_everywhere():
    obj = {"a": "${X}", "b": ["arn:${AWS::Region}:${X}", 3, None], "${X}": "${!Literal}"}
    assert substitute(obj, {"X": "x", "AWS::Region": "r"}) == {
        "a": "x",
        "b": ["arn:r:x", 3, None],
        "${X}": "${Literal}",
    }
    assert substitute('{"k": "${X}"}', {"X": "v"}) == '{"k": "v"}'
    with pytest.raises(KeyError, match="Missing"):
        substitute("${Missing}", {})


def test_moto_patches_refuses_to_leave_out_what_is_not_a_workaround():
    with pytest.raises(ValueError, match="fast_ecs_tasks"), moto_patches(leave_out=("fast_ecs_tasks",)):
        pass


# ---- canaries: each runs the generated definition without one workaround, and fails when moto no longer
# ---- needs it (then delete the workaround from deploytools/moto_layer/stepfunctions.py)


def test_unpatched_moto_cannot_pass_the_task_parameters_to_run_task(definition):
    """If this fails, moto normalises parameters itself: drop service_normalisation."""
    result = run_execution(definition, {"videoId": VIDEO_ID}, leave_out=("service_normalisation",))

    assert result.task_failures() == ["States.Runtime"]
    assert result.run_task_calls == []


def test_unpatched_moto_wraps_indexed_paths_in_a_list(definition):
    """If this fails, moto fixed extract_json: drop definite_jsonpath.

    moto's own .sync is kept, so that the exit code reaches the definition's DescribeNonZeroExit."""
    result = run_execution(definition, {"videoId": VIDEO_ID}, task_exit_code=3,
                           leave_out=("definite_jsonpath", "ecs_sync_fails_like_aws"))

    [note] = result.messages["error"]
    assert note.message["cause"] == "The processing container exited with code [3]"


def test_unpatched_moto_drops_capacity_provider_strategy(definition):
    """If this fails, moto passes the parameter on: drop ecs_run_task_parameters."""
    result = run_execution(definition, {"videoId": VIDEO_ID}, leave_out=("ecs_run_task_parameters",))

    [call] = result.run_task_calls
    assert call["capacity_provider_strategy"] is None
    assert task_failure_causes(result)[0].startswith("No instances found in cluster")


def test_unpatched_moto_reports_a_run_task_client_error_as_an_unretried_runtime_error(definition):
    """If this fails, moto names ECS errors as AWS does: drop ecs_client_errors_as_task_failures."""
    result = run_execution(definition, {"videoId": VIDEO_ID}, run_task_fails=True,
                           leave_out=("ecs_client_errors_as_task_failures",))

    assert result.task_failures() == ["States.Runtime"]
    assert len(result.run_task_calls) == 1


def test_moto_own_sync_treats_a_non_zero_exit_as_success(definition):
    """If this fails, moto's runTask.sync fails on a non-zero exit: drop ecs_sync_fails_like_aws."""
    result = run_execution(definition, {"videoId": VIDEO_ID}, task_exit_code=3,
                           leave_out=("ecs_sync_fails_like_aws",))

    assert result.task_failures() == []
    assert len(result.run_task_calls) == 1
    assert result.messages["error"][0].message["error"] == "NonZeroExitCode", "the definition's own guard"


def test_unpatched_a_retried_sync_task_times_out_at_once(templates, monkeypatch):
    """A retry of a .sync task whose task does not stop on the first DescribeTasks ends States.Timeout without
    the workaround. When this fails, moto runs the retry: drop retried_sync_task_waits_again. The generated
    definition retries a failed task by states (which enter the task afresh) and its capacity retrier mostly meets
    RunTask's refusals (no wait yet), but a retrier may follow a waited attempt (DescribeTasks throttled while
    polling): shown here with the sketch's retrier on the task."""
    definition = copy.deepcopy(generated_definition(templates))
    definition["States"]["ProcessVideo"]["Retry"].append(state_machine.PROCESS_RETRY)
    # Tasks of half a second: the first DescribeTasks of each attempt surely finds its task running, however
    # loaded the machine (with 50 ms tasks, a slow first poll stopped the retry's task and the canary failed).
    with Pipeline(definition, table_properties(templates), cap=1, monkeypatch=monkeypatch,
                  task_seconds=0.5, exit_code=lambda video_id, nth: 1,
                  leave_out=("retried_sync_task_waits_again",)) as p:
        p.post("canary")
        p.settle()
        assert p.job("canary", 1)["lastError"]["error"] == "States.Timeout"


def test_every_workaround_has_a_canary():
    canaries = [f.__doc__ or "" for name, f in vars(sys.modules[__name__]).items()
                if name.startswith(("test_unpatched_", "test_moto_own_"))]
    for workaround in stepfunctions.WORKAROUNDS:
        assert any(f"drop {workaround.__name__}." in doc for doc in canaries), workaround.__name__


def _run_fargate_task_without_container_memory() -> list:
    """RunTask of a Fargate task definition with only the task-level memory (the generated one is such)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        ecs = boto3.client("ecs", region_name="us-east-1")
        ecs.create_cluster(clusterName="memory")
        ecs.register_task_definition(family="memory", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                                     cpu="256", memory="512",
                                     containerDefinitions=[{"name": CONTAINER_NAME, "image": "x", "essential": True}])
        return ecs.run_task(cluster="memory", taskDefinition="memory", launchType="FARGATE", networkConfiguration={
            "awsvpcConfiguration": {"subnets": [subnet], "securityGroups": []}})["tasks"]


def test_unpatched_moto_cannot_run_a_task_whose_containers_give_no_memory():
    """If this fails, moto places such a task: drop ecs_task_level_memory."""
    with pytest.raises(TypeError, match=r"unsupported operand type\(s\) for \+=: 'int' and 'NoneType'"):
        _run_fargate_task_without_container_memory()


def test_a_task_whose_containers_give_no_memory_runs_with_the_workaround():
    with stepfunctions.ecs_task_level_memory():
        assert len(_run_fargate_task_without_container_memory()) == 1


def test_the_emulator_fails_only_the_task_of_a_video_whose_id_starts_fail():
    from deploytools import smoke

    def call(video_id: str) -> dict:
        return {"overrides": {"containerOverrides": [
            {"name": CONTAINER_NAME, "environment": [{"name": "VIDEO_ID", "value": video_id}]}]}}

    assert stepfunctions.exit_code_by_video_id(call("fail-1")) == stepfunctions.FAILING_EXIT_CODE == 1
    assert stepfunctions.exit_code_by_video_id(call("clip-fail-1")) == 0
    assert stepfunctions.exit_code_by_video_id({"overrides": None}) == 0
    assert smoke.FAILING_VIDEO_PREFIX == stepfunctions.FAILING_VIDEO_PREFIX
