"""The video API handler (generator/functions/video_jobs/api.py) against moto's DynamoDB and Step Functions:
submissions become jobs, admission stops at the cap, what answers 400, 404 and 409.

The state machine here never ends (moto runs no definition without the interpreter), so every admitted job stays
RUNNING: exactly what these tests need. Endings and the scheduler are covered by test_job_control.py.
"""

from __future__ import annotations

import itertools
import json
import socket
import time

import pytest

from deploytools.local_tls import TlsProxy, make_authority, server_context

from jobs_harness import api, contract, emulated_account, fresh_jobs, lifecycle, records, table_properties
from redis_server import RedisServer

REGION = "ap-northeast-1"
REQUEST_IDS = (f"request-{n}" for n in itertools.count(1))


@pytest.fixture(scope="module")
def moto_aws(templates):
    with emulated_account(REGION):
        yield table_properties(templates)


@pytest.fixture
def sfn(moto_aws, monkeypatch):
    return fresh_jobs(monkeypatch, moto_aws, REGION, cap=2)


def post(body: str | None) -> tuple[int, dict]:
    return call({"httpMethod": "POST", "resource": "/videos", "path": "/videos", "body": body,
                 "requestContext": {"requestId": next(REQUEST_IDS)}})


def submit(video_id: str) -> tuple[int, dict]:
    return post(json.dumps({"videoId": video_id}))


def get(video_id: str) -> tuple[int, dict]:
    return call({"httpMethod": "GET", "resource": "/videos/{videoId}", "path": f"/videos/{video_id}",
                 "pathParameters": {"videoId": video_id}, "body": None})


def call(event: dict) -> tuple[int, dict]:
    """(HTTP status, parsed JSON body) of the handler's proxy response."""
    response = api.lambda_handler(event, None)
    assert response["headers"] == {"Content-Type": "application/json"}
    return response["statusCode"], json.loads(response["body"])


def executions(sfn) -> list[dict]:
    return sfn.list_executions(stateMachineArn=api.current_control().state_machine_arn)["executions"]


def store() -> records.Store:
    """The job table the API function reads (its environment, its clients)."""
    return api.current_control().store


def test_a_submission_below_the_cap_starts_attempt_1_at_once_and_answers_202_running(sfn):
    code, body = submit("clip-2024_01")
    [execution] = executions(sfn)
    assert code == 202 and body["status"] == "RUNNING" and body["attempt"] == 1
    assert body["executionArn"] == execution["executionArn"] and execution["name"] == "clip-2024_01.1.1"
    started = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    # What the state machine and scheduler read: a submission without an upload names the video's source key and no
    # version (the current one); the bucket is the function's MEDIA_BUCKET (unset here).
    assert started == {"videoId": "clip-2024_01", "attempt": 1,
                       "source": {"bucket": "", "key": "sources/clip-2024_01", "versionId": "", "sha256": ""},
                       "outputs": {"bucket": "", "prefix": "outputs/clip-2024_01/1/"}}
    assert body["submittedAt"] <= body["startedAt"] and "position" not in body


def test_beyond_the_cap_a_submission_waits_queued_and_starts_nothing(sfn):
    submit("a"), submit("b")
    code, body = submit("c")
    assert code == 202 and body["status"] == "QUEUED" and body["position"] == 0 and "executionArn" not in body
    assert len(executions(sfn)) == 2 and records.slots_taken(store()) == 2


def test_a_videoid_of_exactly_64_characters_is_accepted_and_its_execution_name_fits(sfn):
    code, body = submit("v" * contract.VIDEO_ID_MAX)
    assert code == 202 and len(body["executionArn"].rsplit(":", 1)[1]) <= 80


@pytest.mark.parametrize("body, message", [
    (None, "request body is required"),
    ("", "request body is required"),
    ("   ", "request body is required"),
    ("{not json", "not valid JSON"),
    ('["clip"]', "must be a JSON object"),
    ("{}", "videoId is required"),
    ('{"videoId": ""}', "1-64 characters long (got 0)"),
    (json.dumps({"videoId": "v" * 65}), "1-64 characters long (got 65)"),
    ('{"videoId": "clip 1"}', "only letters, digits, '-' and '_'"),
    ('{"videoId": "clip.1"}', "only letters, digits, '-' and '_'"),
    ('{"videoId": "#control"}', "only letters, digits, '-' and '_'"),
    ('{"videoId": "clip/../1"}', "only letters, digits, '-' and '_'"),
    ('{"videoId": "clip\\n"}', "only letters, digits, '-' and '_'"),
    ('{"videoId": "vid\u00e9o"}', "only letters, digits, '-' and '_'"),
    ('{"videoId": 42}', "videoId must be a string"),
    ('{"videoId": null}', "videoId must be a string"),
    ('{"videoId": "clip", "priority": 1}', "unexpected field(s): priority"),
])
def test_invalid_bodies_answer_400_saying_what_is_wrong_and_record_nothing(sfn, body, message):
    code, answer = post(body)
    assert code == 400 and message in answer["message"], answer
    assert executions(sfn) == [] and records.list_jobs(store())[0] == []


def test_a_duplicate_while_running_answers_409_with_the_job_and_starts_no_second_run(sfn):
    _, first = submit("clip-1")
    code, again = submit("clip-1")
    assert code == 409 and again["message"] == "videoId clip-1 is already queued or running (attempt 1)"
    assert again["executionArn"] == first["executionArn"] and again["status"] == "RUNNING"
    assert len(executions(sfn)) == 1


def test_a_concurrent_duplicate_that_loses_the_write_still_answers_409(sfn, monkeypatch):
    submit("clip-1")
    real = records.latest
    looks = iter([None])  # the first look misses the other submission's record
    monkeypatch.setattr(records, "latest", lambda s, v: next(looks, None) or real(s, v))
    code, again = submit("clip-1")
    assert code == 409 and again["attempt"] == 1
    assert len(executions(sfn)) == 1 and [j["videoId"] for j in records.list_jobs(store())[0]] == ["clip-1"]


def test_a_start_refused_by_step_functions_leaves_the_job_queued_and_the_slot_free(sfn, monkeypatch):
    client = api.current_control().stepfunctions  # the client the handler keeps

    def throttled(**_):
        raise client.exceptions.ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                                            "StartExecution")

    monkeypatch.setattr(client, "start_execution", throttled)
    code, body = submit("clip-1")
    assert code == 202 and body["status"] == "QUEUED", "recorded; the scheduler starts it later"
    assert records.slots_taken(store()) == 0 and records.latest(store(), "clip-1")["requeues"] == 1


def test_get_of_a_known_video_answers_200_with_its_job(sfn):
    _, submitted = submit("clip-1")
    code, answer = get("clip-1")
    assert code == 200 and answer == submitted


def test_get_of_an_unknown_video_answers_404(sfn):
    assert get("never-submitted") == (404, {"message": "no video never-submitted was submitted"})


def test_get_of_an_impossible_video_id_answers_400(sfn):
    assert get("v" * 65)[0] == 400


def test_an_unknown_route_answers_404(sfn):
    assert call({"httpMethod": "DELETE", "resource": "/videos/{videoId}"})[0] == 404


def test_an_unexpected_failure_answers_500_without_a_traceback(sfn, monkeypatch):
    monkeypatch.delenv(contract.ENV_TABLE)
    assert get("clip-1") == (500, {"message": "internal error; see the function's log"})


@pytest.mark.parametrize(("query", "named"), [
    ({"status": "DONE"}, "status must be one of QUEUED, RUNNING, SUCCEEDED, FAILED"),
    ({"limit": "0"}, "limit must be a whole number from 1 to 100"),
    ({"limit": "ten"}, "limit must be"),
    ({"limit": "101"}, "limit must be"),
    ({"next": "not-a-token"}, "next is not a token this API returned"),
    ({"page": "2"}, "unknown query parameter(s): page"),
])
def test_bad_list_parameters_get_400_naming_them(sfn, query, named):
    code, body = call({"httpMethod": "GET", "resource": "/videos", "queryStringParameters": query})
    assert code == 400 and body["message"].startswith(named)


# --- a running attempt's progress, from a real redis-server (tests/redis_server.py) behind a verifying TLS relay ---

READER, READER_PASSWORD = "video-processing-dev-api-reader", "reader-password-for-tests"


@pytest.fixture(scope="module")
def progress_cache(tmp_path_factory):
    """redis-server with the cache tier's reader user, behind TLS (a test CA) for localhost."""
    from generator.tiers import cache as cache_tier

    root = tmp_path_factory.mktemp("api-redis")
    server = RedisServer(root, {READER: (READER_PASSWORD, cache_tier.READER_ACCESS)})
    authority = make_authority(root, "Test Cache CA")
    relay = TlsProxy(server_context(root, authority, "localhost"), server.port)
    yield server, authority, relay
    relay.close()
    server.stop()


def reader_environment(monkeypatch, port: int, cafile) -> None:
    """The API function's REDIS_* variables (the api tier's, with password sign-in as in local runs)."""
    for name, value in {"REDIS_HOST": "localhost", "REDIS_PORT": str(port), "REDIS_USERNAME": READER,
                        "REDIS_AUTH": "password", "REDIS_PASSWORD": READER_PASSWORD, "REDIS_TLS": "true",
                        "REDIS_CA_FILE": str(cafile)}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def with_progress(sfn, progress_cache, monkeypatch):
    server, authority, relay = progress_cache
    reader_environment(monkeypatch, relay.port, authority.pem)
    admin = server.admin()
    admin.flushall()
    return admin


PROGRESS = {"percent": 37, "updatedAt": "2026-12-05T01:02:03Z"}


def test_get_of_a_running_job_shows_its_current_attempts_progress(with_progress):
    _, submitted = submit("clip-p")
    assert submitted["status"] == "RUNNING" and submitted["attempt"] == 1
    assert get("clip-p") == (200, submitted), "nothing written yet: the answer as without a cache"
    with_progress.set(contract.progress_key("clip-p", 2), json.dumps({**PROGRESS, "percent": 90}), ex=600)
    assert get("clip-p") == (200, submitted), "another attempt's progress is not this one's"
    with_progress.set(contract.progress_key("clip-p", 1), json.dumps(PROGRESS), ex=600)
    assert get("clip-p") == (200, {**submitted, "progress": PROGRESS})


def test_get_of_a_finished_job_shows_no_progress(with_progress):
    submit("clip-f")
    with_progress.set(contract.progress_key("clip-f", 1), json.dumps({**PROGRESS, "percent": 100}), ex=600)
    ended = lifecycle.release(api.current_control(), records.latest(store(), "clip-f"), contract.SUCCEEDED)
    assert ended["status"] == "SUCCEEDED"
    code, body = get("clip-f")
    assert code == 200 and body["status"] == "SUCCEEDED" and "progress" not in body


@pytest.mark.parametrize("stored", ['{"percent": 101, "updatedAt": "2026-12-05T01:02:03Z"}',
                                    '{"percent": "37", "updatedAt": "2026-12-05T01:02:03Z"}',
                                    '{"percent": true, "updatedAt": "2026-12-05T01:02:03Z"}',
                                    '{"percent": 37}', '{"percent": 37, "updatedAt": "yesterday"}',
                                    '[37]', "not json"])
def test_a_value_that_is_not_what_the_processor_writes_is_not_shown(with_progress, stored, caplog):
    _, submitted = submit("clip-b")
    with_progress.set(contract.progress_key("clip-b", 1), stored, ex=600)
    assert get("clip-b") == (200, submitted)
    assert [r.getMessage() for r in caplog.records if "progress value not shown" in r.getMessage()]


def test_a_cache_that_does_not_answer_leaves_get_unchanged_and_fast(sfn, progress_cache, monkeypatch, caplog):
    """A listener that never completes a handshake (a hung node): the first GET waits out the short timeout once,
    the next ones within the back-off do not try at all; every answer is the one without a cache."""
    _, authority, _ = progress_cache
    with socket.create_server(("127.0.0.1", 0)) as silent:
        reader_environment(monkeypatch, silent.getsockname()[1], authority.pem)
        _, submitted = submit("clip-d")
        started = time.monotonic()
        assert get("clip-d") == (200, submitted)
        assert time.monotonic() - started < 2, "Redis may add at most its short timeout"
        started = time.monotonic()
        assert get("clip-d") == (200, submitted) and time.monotonic() - started < 0.3, "backed off"
    notes = [r.getMessage() for r in caplog.records if "not read" in r.getMessage()]
    assert len(notes) == 1 and "clip-d attempt 1" in notes[0]


def test_get_without_a_cache_named_shows_no_progress(sfn, monkeypatch):
    monkeypatch.delenv("REDIS_HOST", raising=False)
    _, submitted = submit("clip-n")
    assert get("clip-n") == (200, submitted)
