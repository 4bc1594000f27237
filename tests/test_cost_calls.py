"""The job-control calls the cost model prices (generator/cost/job_calls.json) are the calls the code makes.

One video's lifecycle runs through tests/jobs_harness.py (the API and scheduler handlers against moto, the generated
state machine in moto's interpreter); the handlers' boto3 clients come from one boto3 Session whose event system
records every call (generator/cost/calls.py). Protects: a change to job control that adds or removes a DynamoDB,
Step Functions or SNS call changes the cost per video, and this test fails until job_calls.json says so.
"""

from __future__ import annotations

import difflib
import json
import os
import threading

import boto3
import pytest

from generator.cost import calls

from jobs_harness import Pipeline, api, scheduler, table_properties
from moto_sfn import REGION, generated_definition

pytestmark = pytest.mark.slow
CLIENTS = ("dynamodb", "sns", "stepfunctions")  # every client lifecycle.from_environment makes


def record_lifecycle(templates: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> dict:
    phase = {"name": "test"}  # the test's own reads (p.job) are not job control's: not summarised
    main_thread = threading.current_thread()

    def label() -> str:
        # EventBridge's deliveries run the scheduler on the harness's dispatcher threads.
        return phase["name"] if threading.current_thread() is main_thread else "execution_ended"

    recorder = calls.Recorder(label)
    with Pipeline(generated_definition(templates), table_properties(templates), cap=1, task_seconds=0.2,
                  monkeypatch=monkeypatch) as p:
        session = boto3.Session(region_name=REGION)
        recorder.attach(session)
        for handler in (api, scheduler):  # each function's instance keeps its clients in CLIENTS
            handler.CLIENTS.update({name: session.client(name) for name in CLIENTS})
        phase["name"] = "submit"
        assert p.post("cost-video")[0] == 202
        phase["name"] = "test"
        p.settle()
        assert p.job("cost-video", 1)["status"] == "SUCCEEDED"
        phase["name"] = "status"
        assert p.get("cost-video")[0] == 200
        capsys.readouterr()
        phase["name"] = "reconcile"
        p.tick()
        emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    metrics = sum(len(m["Metrics"]) * len(m["Dimensions"])
                  for record in emf for m in record["_aws"]["CloudWatchMetrics"])
    return calls.summarise(recorder.calls, metrics)


def test_job_calls_json_is_what_the_lifecycle_records(templates, monkeypatch, capsys):
    fresh = calls.render(record_lifecycle(templates, monkeypatch, capsys))
    if os.environ.get("COST_RECORD_CALLS"):
        calls.JOB_CALLS.write_text(fresh, encoding="utf-8")
    committed = calls.JOB_CALLS.read_text(encoding="utf-8") if calls.JOB_CALLS.exists() else ""
    diff = "".join(difflib.unified_diff(committed.splitlines(True), fresh.splitlines(True), "committed", "recorded"))
    assert fresh == committed, (f"{calls.JOB_CALLS} is stale (job control's calls changed); review and rewrite it "
                                f"with COST_RECORD_CALLS=1 python -m pytest tests/test_cost_calls.py -n 0:\n{diff}")


def test_every_invocation_is_recorded_and_a_submission_writes_and_starts_one_execution(templates, monkeypatch,
                                                                                        capsys):
    summary = record_lifecycle(templates, monkeypatch, capsys)["invocations"]
    assert set(summary) == set(calls.INVOCATIONS)
    assert summary["submit"]["calls"].get("stepfunctions.StartExecution") == 1, "one execution per video"
    assert summary["submit"]["write_units"] > 0 and summary["execution_ended"]["write_units"] > 0
    assert summary["status"]["write_units"] == 0, "reading a job writes nothing"
    assert summary["reconcile"]["calls"], "the schedule's idle run still reads the table"


def test_request_units_follow_dynamodbs_rules():
    units = calls.request_units
    assert units("dynamodb", "GetItem", {"ConsistentRead": True}) == (1.0, 0.0)
    assert units("dynamodb", "Query", {}) == (0.5, 0.0)
    assert units("dynamodb", "TransactWriteItems", {"TransactItems": [{}, {}]}) == (0.0, 4.0)
    assert units("stepfunctions", "StartExecution", {}) == (0.0, 0.0)
