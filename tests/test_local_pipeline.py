"""The local pipeline is the real one: after `./deploy.sh --local` the emulator holds the state machine as
written (definition, logging, tracing), the topics by their names, and `./deploy.sh --local --smoke` runs
videos end to end (one that the local processor encodes, signed in to the local PostgreSQL and Redis, one whose
task fails and is reported, one that is not a video and ends InvalidMedia); `--stop` leaves no server behind.

Self-contained like tests/test_deploy_e2e.py: its own emulator on a free port, own state and build
directories, stopped at the end.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import time
from pathlib import Path

import boto3
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parent.parent
ENV = "dev"
STACK = f"video-pipeline-{ENV}"
REGION = "ap-northeast-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deploy(env: dict[str, str], *args: str) -> tuple[int, str]:
    r = subprocess.run(["./deploy.sh", *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=600)
    return r.returncode, r.stdout + r.stderr


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The dev templates deployed to a fresh emulator by `./deploy.sh --local`."""
    tmp = tmp_path_factory.mktemp("local-pipeline")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(LOCAL_AWS_PORT=str(_free_port()), LOCAL_AWS_STATE_DIR=str(tmp / "local-aws"),
               BUILD_DIR=str(tmp / "build"), DEPLOY_POLL_SECONDS="0.2", NO_COLOR="1")
    try:
        rc, out = deploy(env, "--local")
        assert rc == 0, out
        yield env
    finally:
        subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "deploytools.local_aws", "stop"], cwd=ROOT,
                       env=env, check=False, capture_output=True)


def test_the_processor_signs_in_to_a_local_postgresql_and_redis_over_tls(deployed):
    """The emulator's task runner hands the processor these (deploytools/local_services.py); the smoke below reads
    the row back. Private: it holds passwords."""
    from deploytools import local_services

    state = Path(deployed["LOCAL_AWS_STATE_DIR"])
    deadline = time.monotonic() + 60
    while not (state / local_services.COORDINATES_FILE).exists():  # they start beside the emulator
        assert time.monotonic() < deadline, (state / "server.log").read_text()[-3000:]
        time.sleep(0.1)
    coordinates = local_services.read_coordinates(state)
    assert stat.S_IMODE((state / local_services.COORDINATES_FILE).stat().st_mode) == 0o600
    assert coordinates["postgres"]["host"] == coordinates["redis"]["host"] == "localhost"
    assert f"video-processing-{ENV}-processor" in coordinates["redis"]["users"], "the cache tier's processor user"
    assert "video_processor" in coordinates["postgres"]["users"]


def client(env: dict[str, str], service: str):
    return boto3.client(service, region_name=REGION, endpoint_url=f"http://localhost:{env['LOCAL_AWS_PORT']}",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def outputs(deployed) -> dict[str, str]:
    stack = client(deployed, "cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


@pytest.fixture(scope="module")
def state_machine(deployed, outputs) -> dict:
    return client(deployed, "stepfunctions").describe_state_machine(stateMachineArn=outputs["StateMachineArn"])


def test_both_topics_are_deployed_with_their_names(deployed, outputs):
    names = {t["TopicArn"].rsplit(":", 1)[-1] for t in client(deployed, "sns").list_topics()["Topics"]}
    assert {f"video-processing-completion-{ENV}", f"video-processing-error-{ENV}"} <= names
    assert outputs["CompletionTopicArn"].endswith(f":video-processing-completion-{ENV}")
    assert outputs["ErrorTopicArn"].endswith(f":video-processing-error-{ENV}")


def test_the_state_machine_is_active_and_runs_an_ecs_task(state_machine, outputs):
    assert state_machine["name"] == f"video-processing-workflow-{ENV}"
    assert state_machine["status"] == "ACTIVE"
    definition = json.loads(state_machine["definition"])
    tasks = [s for s in definition["States"].values() if s.get("Type") == "Task"]
    [ecs] = [t for t in tasks if t["Resource"] == "arn:aws:states:::ecs:runTask.sync"]
    assert ":cluster/" in ecs["Parameters"]["Cluster"] and ":task-definition/" in ecs["Parameters"]["TaskDefinition"]
    assert "${" not in state_machine["definition"], "every DefinitionSubstitution was applied"
    topics = {t["Parameters"]["TopicArn"] for t in tasks if t["Resource"] == "arn:aws:states:::sns:publish"}
    assert topics == {outputs["CompletionTopicArn"], outputs["ErrorTopicArn"]}


def test_the_state_machine_logs_everything_with_execution_data_to_the_workflow_log_group(state_machine):
    logging = state_machine["loggingConfiguration"]
    assert logging["level"] == "ALL" and logging["includeExecutionData"] is True
    [destination] = logging["destinations"]
    assert destination["cloudWatchLogsLogGroup"]["logGroupArn"].split(":log-group:")[1].startswith(
        f"/aws/vendedlogs/states/video-processing-{ENV}")


def test_the_state_machine_traces_with_x_ray(state_machine):
    assert state_machine["tracingConfiguration"] == {"enabled": True}


def test_the_smoke_command_shows_a_video_processed_one_that_failed_and_one_that_is_not_a_video(deployed):
    """The emulator runs the real processor (deploytools/moto_layer/local_tasks.py): the success case is a real
    encode whose outputs the smoke checks; the invalid one takes the InvalidMedia path (issue #23)."""
    rc, out = deploy(deployed, "--local", "--smoke")
    assert rc == 0, out
    success, failure, invalid = out.split("==> video ")[1:]
    assert "job: SUCCEEDED" in success and "execution: SUCCEEDED" in success and "tasks run: 1" in success
    assert f"message on video-processing-completion-{ENV}, subject 'Video Processing Completed'" in success
    assert '"status": "SUCCEEDED"' in success and '"taskArn": "arn:aws:ecs:' in success
    assert '"manifest": "outputs/smoke-' in success, "the completion notice names the manifest"
    assert "SHA-256 as the manifest says; master playlist with 2 rendition(s): 720p 1280x720, 360p 640x360" \
        in success, "the 1280x720 clip yields every rung of the dev ladder"
    assert "segments: every rendition's start on a keyframe every 2 s, none between" in success
    assert "database row: attempt 1 done, outputs/smoke-" in success and "720p 1280x720, 360p 640x360: as the " \
        "completion notice and its manifest say" in success, "the processor's row, read from the local PostgreSQL"
    assert re.search(r"progress: progress:smoke-\S+:1 = 100% at \S+Z, read as video-processing-dev-api-reader",
                     success), "the processor's progress in the local Redis, read as the API's read-only user"
    assert failure.startswith("fail-") and "job: FAILED" in failure and "execution: FAILED" in failure
    assert f"message on video-processing-error-{ENV}, subject 'Video Processing Error'" in failure
    assert '"error": "States.TaskFailed"' in failure and '\\"ExitCode\\": 1' in failure
    assert invalid.startswith("invalid-") and "job: FAILED" in invalid and "execution: SUCCEEDED" in invalid
    assert '"error": "InvalidMedia"' in invalid and "(exit code 3)" in invalid
    assert "tasks run: 1" in invalid, "invalid media is not retried"
    assert "database row: attempt 1 invalid_media: the file is not a video" in invalid
    assert out.count(": notified 1 time\n") == 3, "each video notified exactly once (issue #21 item 4)"
    assert "smoke: ok:" in out


def test_the_smoke_command_fails_without_a_deployed_stack(deployed):
    rc, out = deploy(deployed, "--local", "--smoke", "--stack-name", "nothing-here")
    assert rc == 2, out
    assert "stack nothing-here is not deployed in the emulator" in out and "run ./deploy.sh --local first" in out


def test_smoke_needs_local(deployed):
    rc, out = deploy(deployed, "--smoke")
    assert rc == 2 and "--smoke only goes with --local" in out


def test_diff_against_the_stack_just_deployed_shows_no_change(deployed):
    """The packaged functions' Code (S3 locations) is compared as what deploy.sh's package step produces: right
    after a deploy, `--fail-on any` holds nothing (it used to report three changed stacks). --drift against the
    emulator, which has no drift detection, says "not checked" instead of crashing."""
    env = {**deployed, "AWS_ENDPOINT_URL": f"http://localhost:{deployed['LOCAL_AWS_PORT']}",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "generator", "diff", "--stack", STACK, "--env",
                        ENV, "--region", REGION, "--fail-on", "any", "--drift", "--format", "json"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr)
    report = json.loads(r.stdout)
    assert report["summary"]["has_changes"] is False, [s for s in report["stacks"] if s["resources"]]
    assert report["drift"] is None and "drift: not checked" in r.stderr


def test_sigterm_during_the_smoke_removes_its_queue_and_subscriptions_and_says_what_may_still_run(deployed,
                                                                                                 tmp_path):
    """It used to die at once (exit 143, no line), leaving its SQS queue and two subscriptions behind each time."""
    import signal
    import time

    from test_deploy_e2e import HOLD_CALL

    hook = tmp_path / "hold"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOLD_CALL)
    marker = tmp_path / "start-execution.marker"
    env = {**deployed, "PYTHONPATH": str(hook), "HOLD_EXECUTE_MARKER": str(marker), "HOLD_OPERATION": "StartExecution"}
    sns, sqs = client(deployed, "sns"), client(deployed, "sqs")
    subscriptions = sns.list_subscriptions()["Subscriptions"]
    proc = subprocess.Popen(["./deploy.sh", "--local", "--smoke"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not marker.exists():  # the first video is being started: the queue is subscribed
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    assert len(sns.list_subscriptions()["Subscriptions"]) == len(subscriptions) + 2
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out, err)
    line, = err.splitlines()
    assert line.startswith("interrupted: smoke stopped: its SQS queue, its EventBridge rule and its topic "
                               "subscriptions were removed"), line
    assert "the executions of video(s) smoke-" in line and "may still run in the emulator" in line
    assert not [q for q in sqs.list_queues().get("QueueUrls", []) if "video-pipeline-smoke-" in q]
    assert sns.list_subscriptions()["Subscriptions"] == subscriptions


# A multipart upload against the deployed local API and the emulator's S3 over HTTP. What moto does not check, and
# so this does not prove: presigned signatures and expiry, unsigned x-amz-* headers, and x-amz-checksum-sha256
# against the bytes (moto accepts a part whatever its checksum header says); tests/test_presigned_refusals.py
# covers those against a checking stand-in, tests/test_uploads.py the API's side.
PART = 5 * 1024 * 1024  # S3's smallest part but the last (moto enforces it at completion)


@pytest.fixture
def local_api(deployed, monkeypatch):
    """The API and scheduler handlers in this process with their deployed environments (as the smoke runs them),
    the single-PUT limit and the part size at S3's 5 MiB minimum, and the smoke's inbox: an SQS queue behind a rule
    of the deployed arrival pattern (the stand-in for its Lambda target)."""
    from deploytools import smoke

    for key, value in {"AWS_ENDPOINT_URL": f"http://localhost:{deployed['LOCAL_AWS_PORT']}",
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    api, scheduler = smoke.handlers()
    api.CLIENTS.clear()
    scheduler.CLIENTS.clear()
    cfn, functions = client(deployed, "cloudformation"), client(deployed, "lambda")
    nested = smoke.nested_outputs(cfn, STACK)
    api_environment = smoke.function_environment(functions, nested["ApiFunctionName"])
    for key, value in {**api_environment,
                       **smoke.local_client_variables(api_environment, Path(deployed["LOCAL_AWS_STATE_DIR"])),
                       "UPLOAD_SINGLE_PUT_MAX_BYTES": str(PART), "UPLOAD_PART_BYTES": str(PART)}.items():
        monkeypatch.setenv(key, value)
    events = client(deployed, "events")
    inbox = smoke.Inbox(client(deployed, "sns"), client(deployed, "sqs"), events)
    inbox.open([], smoke.arrival_pattern(events, smoke.function_arn(functions, nested["SchedulerFunctionName"])))
    try:
        yield smoke, smoke.function_environment(functions, nested["SchedulerFunctionName"]), inbox
    finally:
        inbox.close()
        api.CLIENTS.clear()
        scheduler.CLIENTS.clear()


def interrupted_put(url: str, headers: dict[str, str], body: bytes) -> None:
    """A PUT that announces all of `body` and breaks off after half of it (a dropped connection)."""
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("PUT", f"{parts.path}?{parts.query}")
    for name, value in {**headers, "Content-Length": str(len(body))}.items():
        connection.putheader(name, value)
    connection.endheaders()
    connection.send(body[:len(body) // 2])
    connection.close()


def test_a_multipart_upload_with_a_part_resent_after_an_interruption_starts_its_job(local_api):
    """Three parts through their presigned URLs (each signing its part's SHA-256) over HTTP; the second breaks off
    half-way, GET .../upload lists only what S3 holds, the client asks URLs for the rest, re-sends them,
    completes, and the Object Created of the completed upload (handed to the scheduler as EventBridge would) starts
    exactly one job for that object version."""
    import hashlib
    import time
    import urllib.request

    smoke, scheduler_environment, inbox = local_api
    video_id = f"multipart-{time.strftime('%H%M%S')}"
    data = bytes(range(256)) * ((2 * PART + PART // 2) // 256)  # 12.5 MiB: parts of 5, 5 and 2.5 MiB
    status, plan = smoke.call_api("POST", "/videos/{videoId}/upload", pathParameters={"videoId": video_id},
                                  body=json.dumps({"size": len(data), "contentType": "video/mp4",
                                                   "sha256": hashlib.sha256(data).hexdigest()}))
    assert status == 201 and plan["method"] == "MULTIPART", plan
    assert (plan["partSize"], plan["partCount"], plan["parts"]) == (PART, 3, [])

    def chunk(n: int) -> bytes:
        return data[(n - 1) * PART:n * PART]

    def urls_for(numbers: list[int]) -> dict[int, dict]:
        status, answer = smoke.call_api("POST", "/videos/{videoId}/upload/parts", pathParameters={"videoId": video_id},
                                        body=json.dumps({"parts": [{"partNumber": n,
                                                                    "sha256": hashlib.sha256(chunk(n)).hexdigest()}
                                                                   for n in numbers]}))
        assert status == 200 and [u["partNumber"] for u in answer["urls"]] == numbers, answer
        return {u["partNumber"]: u for u in answer["urls"]}

    def headers(u: dict) -> dict[str, str]:
        # Exactly the headers the answer names (each signed into the URL), and a Content-Type: urllib would send
        # application/x-www-form-urlencoded with a body, and moto then reads the part as form fields (losing
        # partNumber); S3 ignores a part's content type, and it is no x-amz-* header that must be signed.
        assert list(u["headers"]) == ["x-amz-checksum-sha256"], u
        return {**u["headers"], "Content-Type": "application/octet-stream"}

    def put(u: dict) -> str:
        request = urllib.request.Request(u["url"], data=chunk(u["partNumber"]), method="PUT", headers=headers(u))
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200
            return answer.headers["ETag"]

    urls = urls_for([1, 2, 3])
    etags = {1: put(urls[1])}
    interrupted_put(urls[2]["url"], headers(urls[2]), chunk(2))

    status, held = smoke.call_api("GET", "/videos/{videoId}/upload", pathParameters={"videoId": video_id})
    assert status == 200 and [p["partNumber"] for p in held["parts"]] == [1], "the broken part is not held"
    assert held["parts"][0]["etag"] == etags[1] and held["parts"][0]["size"] == PART
    status, again = smoke.call_api("POST", "/videos/{videoId}/upload", pathParameters={"videoId": video_id},
                                   body=json.dumps({"size": len(data), "contentType": "video/mp4",
                                                    "sha256": hashlib.sha256(data).hexdigest()}))
    assert status == 200 and again["uploadId"] == plan["uploadId"], "a second request resumes the open upload"
    missing = [n for n in range(1, held["partCount"] + 1) if n not in {p["partNumber"] for p in held["parts"]}]
    assert missing == [2, 3], "only the parts still to send"
    for u in urls_for(missing).values():  # fresh URLs for the parts S3 does not hold
        etags[u["partNumber"]] = put(u)

    status, done = smoke.call_api("POST", "/videos/{videoId}/upload/complete", pathParameters={"videoId": video_id},
                                  body=json.dumps({"parts": [{"partNumber": n, "etag": e}
                                                             for n, e in sorted(etags.items())]}))
    assert status == 200 and done["versionId"] not in (None, "null"), done
    arrived = inbox.wait_for_arrival(done["key"], time.monotonic() + 30)
    assert arrived, "the completed upload's Object Created reached the arrival rule's pattern"
    for event in arrived + arrived:  # delivered twice, as EventBridge may
        smoke.call_scheduler(scheduler_environment, event)
    status, job = smoke.call_api("GET", "/videos/{videoId}", pathParameters={"videoId": video_id})
    assert status == 200 and job["attempt"] == 1 and job["status"] in ("RUNNING", "SUCCEEDED"), job
    s3 = boto3.client("s3", region_name=REGION)
    head = s3.head_object(Bucket=os.environ["MEDIA_BUCKET"], Key=done["key"])
    assert head["ContentLength"] == len(data) and head["VersionId"] == done["versionId"]
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
