"""The video API handler against moto's Step Functions: submit, duplicate, status, and what answers 400."""

from __future__ import annotations

import itertools
import json

import boto3
import pytest
from moto import mock_aws

from generator.functions import video_api

REGION = "ap-northeast-1"
DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


@pytest.fixture(scope="module")
def moto_sfn():
    """One emulated Step Functions for the module: starting moto for every test was most of this file's time."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", REGION)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.setenv(name, "testing")
        with mock_aws():
            yield boto3.client("stepfunctions", region_name=REGION)


MACHINE_NUMBERS = itertools.count(1)


@pytest.fixture
def sfn(moto_sfn, monkeypatch):
    """A state machine of its own for each test, so no test sees another's executions."""
    machine = moto_sfn.create_state_machine(name=f"video-processing-workflow-{next(MACHINE_NUMBERS)}",
                                            definition=DEFINITION, roleArn="arn:aws:iam::123456789012:role/sfn")
    monkeypatch.setenv("STATE_MACHINE_ARN", machine["stateMachineArn"])
    monkeypatch.setattr(video_api, "_sfn", moto_sfn)  # the handler's client, created inside the mock
    yield moto_sfn


REQUEST_IDS = (f"request-{n}" for n in itertools.count(1))


def post(body: str | None) -> tuple[int, dict]:
    return call({"httpMethod": "POST", "resource": "/videos", "path": "/videos", "body": body,
                 "requestContext": {"requestId": next(REQUEST_IDS)}})


def get(video_id: str) -> tuple[int, dict]:
    return call({"httpMethod": "GET", "resource": "/videos/{videoId}", "path": f"/videos/{video_id}",
                 "pathParameters": {"videoId": video_id}, "body": None})


def call(event: dict) -> tuple[int, dict]:
    """(HTTP status, parsed JSON body) of the handler's proxy response."""
    response = video_api.lambda_handler(event, None)
    assert response["headers"] == {"Content-Type": "application/json"}
    return response["statusCode"], json.loads(response["body"])


def executions(sfn) -> list[dict]:
    return sfn.list_executions(stateMachineArn=video_api.os.environ["STATE_MACHINE_ARN"])["executions"]


def test_valid_submit_starts_an_execution_named_after_the_video_and_answers_202(sfn):
    code, body = post(json.dumps({"videoId": "clip-2024_01"}))
    [execution] = executions(sfn)
    assert (code, body) == (202, {"videoId": "clip-2024_01", "executionArn": execution["executionArn"]})
    assert execution["name"] == "clip-2024_01"
    machine = video_api.os.environ["STATE_MACHINE_ARN"].split(":stateMachine:")[1]
    assert execution["executionArn"].endswith(f":execution:{machine}:clip-2024_01")
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    submitted = json.loads(described["input"])
    assert submitted["videoId"] == "clip-2024_01" and submitted["requestId"].startswith("request-")


def test_a_videoid_of_exactly_80_characters_is_accepted(sfn):
    assert post(json.dumps({"videoId": "v" * 80}))[0] == 202


@pytest.mark.parametrize("body, message", [
    (None, "request body is required"),
    ("", "request body is required"),
    ("   ", "request body is required"),
    ("{not json", "not valid JSON"),
    ('["clip"]', "must be a JSON object"),
    ("{}", "videoId is required"),
    ('{"videoId": ""}', "1-80 characters long (got 0)"),
    (json.dumps({"videoId": "v" * 81}), "1-80 characters long (got 81)"),
    ('{"videoId": "clip 1"}', "only letters, digits, '-' and '_'"),
    ('{"videoId": "clip/../1"}', "only letters, digits, '-' and '_'"),
    ('{"videoId": "clip\\n"}', "only letters, digits, '-' and '_'"),
    ('{"videoId": "vid\u00e9o"}', "only letters, digits, '-' and '_'"),
    ('{"videoId": 42}', "videoId must be a string"),
    ('{"videoId": null}', "videoId must be a string"),
    ('{"videoId": "clip", "priority": 1}', "unexpected field(s): priority"),
])
def test_invalid_bodies_answer_400_saying_what_is_wrong_and_start_nothing(sfn, body, message):
    code, answer = post(body)
    assert code == 400 and message in answer["message"], answer
    assert executions(sfn) == []


def test_a_duplicate_answers_409_with_the_existing_execution_and_starts_no_second_run(sfn):
    _, first = post(json.dumps({"videoId": "clip-1"}))
    code, again = post(json.dumps({"videoId": "clip-1"}))
    assert code == 409 and again["message"] == "videoId clip-1 was already submitted"
    assert again["executionArn"] == first["executionArn"] and again["videoId"] == "clip-1"
    assert again["status"] == "RUNNING" and again["startDate"]
    assert len(executions(sfn)) == 1


def test_a_finished_video_is_not_processed_again(sfn):
    _, first = post(json.dumps({"videoId": "clip-1"}))
    sfn.stop_execution(executionArn=first["executionArn"])
    code, again = post(json.dumps({"videoId": "clip-1"}))
    assert (code, again["executionArn"], again["status"]) == (409, first["executionArn"], "ABORTED")
    assert len(executions(sfn)) == 1


def with_aws_start_semantics(sfn, monkeypatch):
    """StartExecution as AWS documents it (moto always raises): a name already used with the SAME input
    while RUNNING returns the existing execution; with another input it raises ExecutionAlreadyExists."""
    client, real = video_api.sfn(), video_api.sfn().start_execution

    def start(**kwargs):
        arn = kwargs["stateMachineArn"].replace(":stateMachine:", ":execution:") + ":" + kwargs["name"]
        try:
            existing = client.describe_execution(executionArn=arn)
        except client.exceptions.ExecutionDoesNotExist:
            return real(**kwargs)
        if existing["status"] == "RUNNING" and existing["input"] == kwargs["input"]:
            return {"executionArn": arn, "startDate": existing["startDate"]}
        raise client.exceptions.ExecutionAlreadyExists(
            {"Error": {"Code": "ExecutionAlreadyExists", "Message": "different input"}}, "StartExecution")

    monkeypatch.setattr(client, "start_execution", start)


def test_a_concurrent_duplicate_that_wins_the_race_still_answers_409(sfn, monkeypatch):
    with_aws_start_semantics(sfn, monkeypatch)
    post(json.dumps({"videoId": "clip-1"}))
    real = video_api.describe
    looks = iter([None])  # the first look misses the other submit's execution
    monkeypatch.setattr(video_api, "describe", lambda v: next(looks, None) or real(v))
    code, again = post(json.dumps({"videoId": "clip-1"}))
    assert code == 409 and again["videoId"] == "clip-1"
    assert len(executions(sfn)) == 1


def test_get_of_a_known_video_answers_200_with_status_and_times(sfn):
    _, submitted = post(json.dumps({"videoId": "clip-1"}))
    code, answer = get("clip-1")
    assert code == 200
    assert answer["videoId"] == "clip-1" and answer["executionArn"] == submitted["executionArn"]
    assert answer["status"] == "RUNNING" and answer["startDate"] and answer["stopDate"] is None


def test_get_reports_the_final_status_and_stop_time_once_the_execution_ended(sfn):
    _, submitted = post(json.dumps({"videoId": "clip-1"}))
    sfn.stop_execution(executionArn=submitted["executionArn"])
    code, answer = get("clip-1")
    assert code == 200 and answer["status"] == "ABORTED" and answer["stopDate"] >= answer["startDate"]


def test_get_of_an_unknown_video_answers_404(sfn):
    assert get("never-submitted") == (404, {"message": "no video never-submitted was submitted"})


def test_get_of_an_impossible_video_id_answers_400(sfn):
    assert get("v" * 81)[0] == 400


def test_an_unknown_route_answers_404(sfn):
    assert call({"httpMethod": "DELETE", "resource": "/videos/{videoId}"})[0] == 404


def test_an_unexpected_failure_answers_500_without_a_traceback(sfn, monkeypatch):
    monkeypatch.delenv("STATE_MACHINE_ARN")
    assert get("clip-1") == (500, {"message": "internal error; see the function's log"})
