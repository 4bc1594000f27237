"""Job control, end to end in one process: the API and scheduler handlers against moto, the generated state machine
running in moto's interpreter, the job table as jobs.json declares it (tests/jobs_harness.py says what stands in
for AWS). Each fault ends with the slot free, the job in the right state and exactly the notifications due.
"""

from __future__ import annotations

import copy
import json

import pytest

from jobs_harness import Pipeline, contract, lifecycle, table_properties
from moto_sfn import generated_definition

pytestmark = pytest.mark.slow  # seconds in moto's harness: CI runs it, the fast loop leaves it out


@pytest.fixture(scope="module")
def definition(templates) -> dict:
    return generated_definition(templates)


@pytest.fixture(scope="module")
def table(templates) -> dict:
    return table_properties(templates)


@pytest.fixture
def pipeline(definition, table, monkeypatch):
    def make(**options) -> Pipeline:
        return Pipeline(options.pop("definition", definition), table, monkeypatch=monkeypatch, **options)
    return make


def statuses(p: Pipeline, *video_ids: str, attempt: int = 1) -> list[str]:
    return [p.job(v, attempt)["status"] for v in video_ids]


def test_a_burst_beyond_the_cap_waits_queued_and_starts_in_submission_order(pipeline):
    videos = [f"clip-{i}" for i in range(6)]
    with pipeline(cap=2, task_seconds=0.3) as p:
        answers = [p.post(v) for v in videos]
        assert [code for code, _ in answers] == [202] * 6
        assert [body["status"] for _, body in answers] == ["RUNNING", "RUNNING"] + ["QUEUED"] * 4
        assert [body.get("position") for _, body in answers[2:]] == [0, 1, 2, 3], "how many are ahead"
        code, seen = p.get("clip-5")
        assert code == 200 and seen["status"] == "QUEUED" and seen["attempt"] == 1 and "submittedAt" in seen
        p.settle()
        assert statuses(p, *videos) == ["SUCCEEDED"] * 6
        assert [name.split(".")[0] for name in p.start_order] == videos
        assert p.max_running_executions <= 2 and p.max_running_tasks <= 2
        assert p.slots_taken() == 0
        messages = p.messages()
        assert len(messages["completion"]) == 6 and messages["error"] == []
        done = p.job("clip-0", 1)
        assert done["startedAt"] <= done["endedAt"] and done["executionArn"].endswith(":clip-0.1.1")


def test_a_video_is_refused_while_queued_or_running_and_after_success(pipeline):
    with pipeline(cap=1, task_seconds=0.3) as p:
        p.post("first")
        p.post("second")
        assert p.post("first")[0] == 409 and p.post("second")[0] == 409
        code, body = p.post("second")
        assert body["status"] == "QUEUED" and "already queued or running" in body["message"]
        p.settle()
        code, body = p.post("first")
        assert code == 409 and body["status"] == "SUCCEEDED" and "already processed" in body["message"]


def test_a_failed_video_resubmitted_runs_attempt_2_and_the_first_record_stays(pipeline):
    fails_once = lambda video_id, nth: 1 if nth <= 4 else 0  # noqa: E731 - attempt 1: four tasks (3 retries)
    with pipeline(cap=2, exit_code=fails_once) as p:
        p.post("retry-me")
        p.settle()
        first = p.job("retry-me", 1)
        assert first["status"] == "FAILED" and first["lastError"]["error"] == "States.TaskFailed"
        code, body = p.post("retry-me")
        assert code == 202 and body["attempt"] == 2
        p.settle()
        assert p.job("retry-me", 2)["status"] == "SUCCEEDED"
        assert p.job("retry-me", 1) == first, "attempt 1's record is kept as it was"
        code, latest = p.get("retry-me")
        assert latest["attempt"] == 2 and latest["status"] == "SUCCEEDED"
        messages = p.messages()
        assert len(messages["error"]) == 1 and len(messages["completion"]) == 1
        assert p.start_order == ["retry-me.1.1", "retry-me.2.1"]


# moto's wait-for-token thread of the stopped task raises a TypeError of its own (moto 5.2.5); AWS has no such thread.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_execution_aborted_while_holding_a_slot_frees_it_and_is_reported_once(pipeline):
    import boto3
    with pipeline(cap=1, task_seconds=30) as p:
        p.post("aborted")
        p.post("next-in-line")
        assert statuses(p, "aborted", "next-in-line") == ["RUNNING", "QUEUED"]
        p.wait_for(lambda: p.tasks.running() == 1)  # processing (moto cannot stop an execution still starting)
        boto3.client("stepfunctions").stop_execution(executionArn=p.job("aborted", 1)["executionArn"])
        p.wait_for(lambda: p.job("next-in-line", 1)["status"] == "RUNNING")
        aborted = p.job("aborted", 1)
        assert aborted["status"] == "FAILED" and aborted["lastError"]["error"] == "States.ABORTED"
        p.tasks.seconds = 0
        p.settle()
        assert p.job("next-in-line", 1)["status"] == "SUCCEEDED" and p.slots_taken() == 0
        messages = p.messages()
        [notice] = messages["error"]
        assert notice.subject == "Video Processing Error"
        assert notice.message["videoId"] == "aborted" and notice.message["attempt"] == 1
        assert notice.message["error"] == "States.ABORTED" and len(messages["completion"]) == 1


def test_invalid_media_fails_the_job_once_without_retry_or_a_failed_execution(pipeline):
    """Issue #23: the processor's exit 3 (the user's file) ends the job FAILED with lastError InvalidMedia after one
    task and one notice (the state machine's), the slot freed; the execution SUCCEEDED, so ExecutionsFailed and its
    alarm leave it out. A new attempt may follow (a corrected upload, or POST /videos)."""
    bad_first = lambda video_id, nth: 3 if nth == 1 else 0  # noqa: E731
    with pipeline(cap=1, exit_code=bad_first) as p:
        p.post("bad-file")
        p.settle()
        job = p.job("bad-file", 1)
        assert job["status"] == "FAILED" and job["lastError"]["error"] == contract.INVALID_MEDIA
        assert "exit code 3" in job["lastError"]["cause"] and "notice" not in job
        assert len(p.tasks.started) == 1 and p.retry_sleeps == [] and p.slots_taken() == 0
        [ended] = [e["detail"] for e in p.delivered]
        assert ended["status"] == "SUCCEEDED", "not counted by ExecutionsFailed"
        [notice] = p.messages()["error"]
        assert notice.message["error"] == contract.INVALID_MEDIA and notice.message["videoId"] == "bad-file"
        assert notice.message["cause"] == job["lastError"]["cause"]
        code, body = p.post("bad-file")
        assert code == 202 and body["attempt"] == 2
        p.settle()
        assert p.job("bad-file", 2)["status"] == "SUCCEEDED"


def test_a_killed_task_exit_137_fails_the_video_frees_the_slot_and_notifies_once(pipeline):
    with pipeline(cap=1, exit_code=lambda video_id, nth: 137 if video_id == "killed" else 0) as p:
        p.post("killed")
        p.post("after")
        p.settle()
        killed = p.job("killed", 1)
        assert killed["status"] == "FAILED" and killed["lastError"]["error"] == "States.TaskFailed"
        assert json.loads(killed["lastError"]["cause"])["Containers"][0]["ExitCode"] == 137
        assert p.job("after", 1)["status"] == "SUCCEEDED" and p.slots_taken() == 0
        messages = p.messages()
        assert [m.message["videoId"] for m in messages["error"]] == ["killed"]
        assert [m.message["videoId"] for m in messages["completion"]] == ["after"]


def test_runtask_throttled_for_a_while_requeues_the_video_with_backoff_not_a_failure(pipeline, monkeypatch):
    throttled = {"calls": 4}  # the first execution's RunTask and its three retries

    def refuse():
        throttled["calls"] -= 1
        return "ThrottlingException" if throttled["calls"] >= 0 else None

    with pipeline(cap=1) as p:
        p.tasks.refuse = refuse
        p.post("patient")
        p.settle()
        waiting = p.job("patient", 1)
        assert waiting["status"] == "QUEUED" and waiting["requeues"] == 1 and p.slots_taken() == 0
        assert waiting["lastError"]["error"] == contract.CAPACITY_UNAVAILABLE
        backoff = float(waiting["notBefore"]) - lifecycle.now()
        assert lifecycle.BACKOFF_BASE_SECONDS / 2 - 2 <= backoff <= lifecycle.BACKOFF_BASE_SECONDS
        # Within the execution: three short retries, full jitter (each at most its exponential interval).
        assert len(p.retry_sleeps) == 3 and all(s <= cap for s, cap in zip(p.retry_sleeps, (5, 10, 20), strict=True))
        p.tick()
        assert p.job("patient", 1)["status"] == "QUEUED", "not before its backoff"
        later = lifecycle.now() + backoff + 1
        monkeypatch.setattr(lifecycle, "now", lambda: later)
        p.tick()
        p.settle()
        done = p.job("patient", 1)
        assert done["status"] == "SUCCEEDED" and done["executionArn"].endswith(":patient.1.2"), "a new start"
        assert p.tasks.refused == 4 and p.slots_taken() == 0
        messages = p.messages()
        assert messages["error"] == [] and len(messages["completion"]) == 1


def test_a_lost_release_is_reclaimed_by_the_next_reconcile(pipeline):
    lost = []

    def drop(event):
        if event["detail"]["name"].startswith("forgotten.") and not lost:
            lost.append(event)
            return True
        return False

    with pipeline(cap=1, drop=drop) as p:
        p.post("forgotten")
        p.post("waiting")
        p.wait_for(lambda: p.dropped)
        p.settle()
        assert statuses(p, "forgotten", "waiting") == ["RUNNING", "QUEUED"], "the slot is held by a lost event"
        reclaimed = p.tick()
        assert reclaimed == {"started": 1}
        p.settle()
        assert statuses(p, "forgotten", "waiting") == ["SUCCEEDED", "SUCCEEDED"] and p.slots_taken() == 0
        messages = p.messages()
        assert len(messages["completion"]) == 2 and messages["error"] == []


def test_a_timed_out_execution_frees_its_slot_and_is_reported_once(pipeline, definition):
    short = copy.deepcopy(definition)
    short["TimeoutSeconds"] = 1
    with pipeline(cap=1, task_seconds=30, definition=short) as p:
        p.post("slow")
        p.post("queued")
        p.wait_for(lambda: p.job("slow", 1)["status"] == "FAILED", timeout=20)
        assert p.job("slow", 1)["lastError"]["error"] == "States.TIMED_OUT"
        p.tasks.seconds = 0
        p.settle()
        assert p.job("queued", 1)["status"] == "SUCCEEDED" and p.slots_taken() == 0
        [notice] = p.messages()["error"]
        assert notice.message["videoId"] == "slow" and notice.message["error"] == "States.TIMED_OUT"


def test_a_failed_failure_notification_is_sent_by_the_scheduler_instead(pipeline):
    nowhere = "arn:aws:sns:us-east-1:123456789012:no-such-topic"
    with pipeline(cap=1, exit_code=lambda video_id, nth: 2, substitutions={"ErrorTopicArn": nowhere}) as p:
        p.post("unlucky")
        p.settle()
        job = p.job("unlucky", 1)
        assert job["status"] == "FAILED" and job["lastError"]["error"].startswith("SNS.")
        assert "notice" not in job, "sent"
        [notice] = p.messages()["error"]
        assert notice.message["videoId"] == "unlucky" and p.slots_taken() == 0


def test_a_repeated_ending_event_changes_nothing(pipeline):
    with pipeline(cap=1) as p:
        p.post("once")
        p.settle()
        [event] = [e for e in p.delivered if e["detail"]["name"] == "once.1.1"]
        before = p.job("once", 1)
        p.emit(event["detail"])
        p.settle()
        assert p.job("once", 1) == before and p.slots_taken() == 0
        assert len(p.messages()["completion"]) == 1


def test_jobs_are_listed_by_status_in_submission_order_a_page_at_a_time(pipeline):
    with pipeline(cap=1, task_seconds=30) as p:
        for i in range(5):
            p.post(f"v{i}")
        code, page = p.list(status="QUEUED", limit="2")
        assert code == 200 and [j["videoId"] for j in page["jobs"]] == ["v1", "v2"] and page["next"]
        code, rest = p.list(status="QUEUED", limit="2", next=page["next"])
        assert [j["videoId"] for j in rest["jobs"]] == ["v3", "v4"]
        code, running = p.list(status="RUNNING")
        assert [j["videoId"] for j in running["jobs"]] == ["v0"]
        code, everything = p.list(limit="100")
        assert [j["videoId"] for j in everything["jobs"]] == ["v1", "v2", "v3", "v4", "v0"], "QUEUED first"
        seen, token = [], None
        while True:  # every job once, a page of 3 at a time, across statuses
            code, page = p.list(limit="3", **({"next": token} if token else {}))
            seen += [j["videoId"] for j in page["jobs"]]
            token = page["next"]
            if not token:
                break
        assert seen == ["v1", "v2", "v3", "v4", "v0"]
        code, wrong = p.list(status="RUNNING", next=rest["next"] or page_of_queued_token(p))
        assert code == 400 and "belongs to the listing of status QUEUED" in wrong["message"]
        p.tasks.seconds = 0
        p.settle()


def page_of_queued_token(p: Pipeline) -> str:
    return p.list(status="QUEUED", limit="1")[1]["next"]
