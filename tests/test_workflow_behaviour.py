"""The generated state machine definition, executed in moto's Step Functions interpreter.

Messages are read from SQS queues subscribed to the completion and error topics (tests/moto_sfn.py; the moto
workarounds this needs are in deploytools/moto_layer/stepfunctions.py). Every scenario runs the definition
exactly as it is committed in templates/dev/workflow.json. These tests are about the pipeline; the harness and
its patches have their own tests in test_moto_sfn_harness.py. Success, failure and bad input are here; a timeout
and an abort end an execution without entering any state, so they are run through job control, which reports
them (test_job_control.py: the same generated definition, executing; test_scheduler.py: the report).
"""

from __future__ import annotations

import json

import pytest

from generator.functions.video_jobs import contract

from moto_sfn import generated_definition, run_execution

pytestmark = pytest.mark.slow  # seconds in moto's harness: CI runs it, the fast loop leaves it out

# moto's own runTask.sync, which reports a stopped task as a success whatever its exit code
MOTO_OWN_SYNC = ("ecs_sync_fails_like_aws",)


@pytest.fixture(scope="module")
def definition(templates) -> dict:
    return generated_definition(templates)


def test_success_publishes_one_completion_message_with_the_video_id(definition):
    result = run_execution(definition, {"videoId": "clip-42"}, execution_name="clip-42")
    assert result.status == "SUCCEEDED"
    assert result.messages["error"] == []
    [note] = result.messages["completion"]
    assert note.subject == "Video Processing Completed"
    assert note.message["videoId"] == "clip-42"
    assert note.message["executionArn"] == result.execution_arn
    assert note.message["status"] == "SUCCEEDED"
    assert note.message["taskArn"].startswith("arn:aws:ecs:")


def test_the_task_runs_with_the_video_id_on_private_subnets_without_public_ip(definition):
    """An execution started with only a videoId (by hand) processes the video's current source into attempt 0."""
    result = run_execution(definition, {"videoId": "clip-7"}, execution_name="clip-7")
    [call] = result.run_task_calls
    assert call["overrides"]["containerOverrides"] == [{"name": "VideoProcessingContainer", "environment": [
        {"name": "VIDEO_ID", "value": "clip-7"}, {"name": "ATTEMPT", "value": "0"},
        {"name": "SOURCE_BUCKET", "value": "media-bucket"}, {"name": "SOURCE_KEY", "value": "sources/clip-7"},
        {"name": "SOURCE_VERSION_ID", "value": ""}, {"name": "SOURCE_SHA256", "value": ""},
        {"name": "OUTPUTS_BUCKET", "value": "media-bucket"}, {"name": "OUTPUTS_PREFIX", "value": "outputs/clip-7/0/"}]}]
    network = call["networking_configuration"]["awsvpcConfiguration"]
    assert network["assignPublicIp"] == "DISABLED" and len(network["subnets"]) == 2
    assert call["capacity_provider_strategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]


def test_job_controls_input_reaches_the_container_as_the_media_contracts_environment(definition):
    """CONTRACT-MEDIA: the admitted source version and this attempt's outputs prefix, as job control passes them."""
    given = {"videoId": "clip-8", "attempt": 2,
             "source": {"bucket": "b", "key": "sources/clip-8", "versionId": "v2", "sha256": "ab" * 32},
             "outputs": {"bucket": "b", "prefix": "outputs/clip-8/2/"}}
    result = run_execution(definition, given, execution_name="clip-8")
    [call] = result.run_task_calls
    environment = {e["name"]: e["value"] for e in call["overrides"]["containerOverrides"][0]["environment"]}
    assert environment == {"VIDEO_ID": "clip-8", "ATTEMPT": "2", "SOURCE_BUCKET": "b", "SOURCE_KEY": "sources/clip-8",
                           "SOURCE_VERSION_ID": "v2", "SOURCE_SHA256": "ab" * 32, "OUTPUTS_BUCKET": "b",
                           "OUTPUTS_PREFIX": "outputs/clip-8/2/"}


def test_a_container_exiting_non_zero_is_retried_then_fails_with_one_error_message(definition):
    """The sketch's retry values survive the hand-written retry: 3 retries after 30, 60 and 120 s, then the failure
    path with the last attempt's error."""
    result = run_execution(definition, {"videoId": "clip-9"}, task_exit_code=1, execution_name="clip-9")
    assert result.status == "FAILED" and result.error == "ProcessingError"
    assert len(result.run_task_calls) == 4 and result.retry_sleeps == [30, 60, 120]
    assert result.messages["completion"] == []
    [note] = result.messages["error"]
    assert note.subject == "Video Processing Error"
    assert note.message["videoId"] == "clip-9" and note.message["executionArn"] == result.execution_arn
    assert note.message["error"] == "States.TaskFailed"
    assert json.loads(note.message["cause"])["Containers"][0]["ExitCode"] == 1
    assert json.loads(result.cause) == note.message, "the execution's cause is the notification (job records use it)"


def test_invalid_media_is_not_retried_and_notified_once_and_the_execution_succeeds(definition):
    """Issue #23: exit 3 is the user's error. One task, one notice that says where the processor's reason is, and a
    SUCCEEDED execution (ExecutionsFailed, and its alarm, leave it out) whose outcome job control records."""
    result = run_execution(definition, {"videoId": "clip-3"}, task_exit_code=3, execution_name="clip-3")
    assert len(result.run_task_calls) == 1 and result.retry_sleeps == [], "no retry"
    assert result.status == "SUCCEEDED"
    assert result.output[contract.OUTCOME] == contract.INVALID_MEDIA
    assert result.messages["completion"] == []
    [note] = result.messages["error"]
    assert note.subject == "Video Processing Error"
    assert note.message["error"] == "InvalidMedia" and note.message["status"] == "FAILED"
    assert note.message["videoId"] == "clip-3" and note.message["executionArn"] == result.execution_arn
    task_id = note.message["taskArn"].rsplit("/", 1)[1]
    assert note.message["logGroup"] == "/video-processing/dev/processor"
    assert note.message["logStream"] == f"video-processing/VideoProcessingContainer/{task_id}"
    assert "exit code 3" in note.message["cause"] and "processor: invalid media:" in note.message["cause"]
    assert note.message["logStream"] in note.message["cause"] and note.message["logGroup"] in note.message["cause"]
    assert result.output["cause"] == note.message["cause"], "job control records the reason the notice gave"


@pytest.mark.parametrize("codes, runs", [((1, 3), 2), ((1, 1, 1, 3), 4)])
def test_invalid_media_after_retried_failures_ends_the_retries(definition, codes, runs):
    """A retry whose task then exits 3 stops there: no further task, one notice, InvalidMedia."""
    script = iter(codes)
    result = run_execution(definition, {"videoId": "clip-4"}, task_exit_code=lambda call: next(script),
                           execution_name="clip-4")
    assert len(result.run_task_calls) == runs and result.retry_sleeps == [30, 60, 120][:runs - 1]
    assert result.status == "SUCCEEDED" and result.output[contract.OUTCOME] == contract.INVALID_MEDIA
    assert [n.message["error"] for n in result.messages["error"]] == ["InvalidMedia"]


def test_the_completion_notice_names_the_outputs(definition):
    """video-on-demand-on-aws #13: subscribers get the manifest, the MP4 and the poster without asking the API."""
    given = {"videoId": "clip-8", "attempt": 2,
             "source": {"bucket": "b", "key": "sources/clip-8", "versionId": "v2", "sha256": "ab" * 32},
             "outputs": {"bucket": "b", "prefix": "outputs/clip-8/2/"}}
    result = run_execution(definition, given, execution_name="clip-8")
    [note] = result.messages["completion"]
    assert note.message["outputs"] == {
        "bucket": "b", "prefix": "outputs/clip-8/2/", "manifest": "outputs/clip-8/2/" + contract.MANIFEST_NAME,
        "download": "outputs/clip-8/2/download.mp4", "poster": "outputs/clip-8/2/poster.jpg"}


def test_the_exit_code_guard_fails_a_non_zero_exit_even_if_the_integration_reports_success(definition):
    result = run_execution(definition, {"videoId": "clip-9"}, task_exit_code=1, execution_name="clip-9",
                           leave_out=MOTO_OWN_SYNC)
    assert result.status == "FAILED"
    assert result.messages["completion"] == []
    [note] = result.messages["error"]
    assert note.message["error"] == "NonZeroExitCode"
    assert "exited with code 1" in note.message["cause"]


def test_a_task_that_cannot_run_is_retried_then_caught_into_one_error_message(definition):
    result = run_execution(definition, {"videoId": "clip-5"}, run_task_fails=True, execution_name="clip-5")
    assert result.status == "FAILED"
    assert len(result.run_task_calls) == 4, "one attempt and three retries"
    assert result.retry_sleeps == [30, 60, 120], "every 30 s, backoff 2.0"
    [note] = result.messages["error"]
    assert note.message["videoId"] == "clip-5"
    assert note.message["error"].startswith("ECS.") and note.message["cause"]
    assert result.messages["completion"] == []


@pytest.mark.parametrize("leave_out, error", [((), "States.TaskFailed"),
                                              (MOTO_OWN_SYNC, "TaskStoppedWithoutExitCode")])
def test_a_task_stopping_without_exit_code_is_a_failure(definition, leave_out, error):
    result = run_execution(definition, {"videoId": "clip-0"}, task_exit_code=None, execution_name="clip-0",
                           leave_out=leave_out)
    assert result.status == "FAILED" and result.messages["completion"] == []
    [note] = result.messages["error"]
    assert note.message["error"] == error


@pytest.mark.parametrize("bad_input", [{}, {"videoId": ""}, {"videoId": 42}, {"video": "x"}])
def test_input_without_a_usable_video_id_publishes_an_error_and_runs_no_task(definition, bad_input):
    result = run_execution(definition, bad_input, execution_name="bad-input")
    assert result.status == "FAILED" and result.error == "ProcessingError"
    assert result.run_task_calls == []
    [note] = result.messages["error"]
    assert note.message["error"] == "InvalidInput"
    assert note.message["input"] == bad_input
    assert result.messages["completion"] == []
