"""A video through the local pipeline: submit, let the state machine run, show the notification.

    python -m deploytools.smoke [--stack NAME] [--case success|failure|both] [--timeout S]

Runs against the emulator `./deploy.sh --local` deployed to (`./deploy.sh --local --smoke` calls it with the
endpoint and dummy credentials set). For each case it subscribes an SQS queue to the completion and error
topics (the stack's outputs), submits a video as a client would, through the API function's own handler
(generator/functions/video_jobs/api.py, run here with the deployed function's environment: the emulator runs
Lambda only in docker) against the emulator's job table and Step Functions, waits for the job to end and prints
its status and the message the topic delivered. The emulator sends no EventBridge events either: while it
waits, the smoke runs the scheduler's reconcile tick (generator/functions/video_jobs/scheduler.py, with the
scheduler's deployed environment), which on AWS catches lost events; here it sees every ending.

The failing case uses the emulator's local-only switch (deploytools.moto_layer.stepfunctions): a videoId
starting `fail-` makes the processing container exit 1. AWS has no such switch.

Exit status: 0 both outcomes as expected; 1 an outcome was wrong (it says which); 2 no stack, no emulator, or
another AWS error (one line); 70 internal error; 130 interrupted (Ctrl-C, SIGTERM): its queue and subscriptions
are removed, and the line names the videos whose executions may still run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator import errors, names

FAILING_VIDEO_PREFIX = "fail-"  # deploytools.moto_layer.stepfunctions.FAILING_VIDEO_PREFIX (no moto import here)
POLL_S = 0.2
# After the last video ended, how long the inbox keeps listening for a late second notice of any video.
SETTLE_S = 2.0


@dataclass(frozen=True)
class Case:
    name: str
    video_prefix: str
    status: str  # the execution's expected status
    topic_output: str  # the stack output naming the topic that must carry the message
    subject: str
    error: str | None  # the job's lastError.error it must end with (None: no error at all)
    says: str  # what the video does, for the report


CASES = {
    "success": Case("success", "smoke-", "SUCCEEDED", "CompletionTopicArn", "Video Processing Completed", None,
                    "its task exits 0"),
    # runTask.sync fails the state when the essential container exits non-zero: the state machine's failure path
    # notifies once and the job records the task's error, not one of the failure path itself.
    "failure": Case("failure", FAILING_VIDEO_PREFIX, "FAILED", "ErrorTopicArn", "Video Processing Error",
                    "States.TaskFailed", "its task exits 1: emulator only, the videoId starts 'fail-'"),
}


def stack_outputs(cfn: Any, stack: str) -> dict[str, str]:
    try:
        described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except cfn.exceptions.ClientError as e:
        raise errors.AwsError(f"stack {stack} is not deployed in the emulator ({e.response['Error']['Message']}): "
                              "run ./deploy.sh --local first") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    missing = {"StateMachineArn", "CompletionTopicArn", "ErrorTopicArn"} - outputs.keys()
    if missing:
        raise errors.AwsError(f"stack {stack} ({described['StackStatus']}) has no output {', '.join(sorted(missing))}: "
                              "deploy it again with ./deploy.sh --local")
    return outputs


class Inbox:
    """An SQS queue subscribed to topics, and every notice it received, per video (each SNS message once, however
    often SQS redelivers it); open() makes it, close() removes whatever of it exists (also after an open() that was
    interrupted half-way)."""

    def __init__(self, sns: Any, sqs: Any):
        self.sns, self.sqs = sns, sqs
        self.url: str | None = None
        self.subscriptions: list[str] = []
        self.notices: dict[str, dict[str, dict[str, Any]]] = {}  # videoId -> SNS MessageId -> envelope

    def open(self, topic_arns: list[str]) -> None:
        self.url = self.sqs.create_queue(QueueName=names.smoke_queue(uuid.uuid4().hex[:8]))["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for topic in topic_arns:
            subscribed = self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
            self.subscriptions.append(subscribed["SubscriptionArn"])

    def poll(self) -> None:
        for m in self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            envelope = json.loads(m["Body"])
            with contextlib.suppress(ValueError):  # a message that is not JSON stays a string
                envelope["Message"] = json.loads(envelope["Message"])
            message = envelope["Message"]
            if isinstance(message, dict) and isinstance(message.get("videoId"), str):
                self.notices.setdefault(message["videoId"], {})[str(envelope.get("MessageId"))] = envelope
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])

    def wait_for(self, video_id: str, deadline: float) -> dict[str, Any] | None:
        """The first SNS envelope (TopicArn, Subject, Message parsed) whose message names the video."""
        while not self.notices.get(video_id) and time.monotonic() < deadline:
            self.poll()
            if not self.notices.get(video_id):
                time.sleep(POLL_S)
        return next(iter(self.notices.get(video_id, {}).values()), None)

    def settle(self, seconds: float) -> None:
        """Keep receiving for `seconds`: a second notice of a video comes after its job ended."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()
            time.sleep(POLL_S)

    def count(self, video_id: str) -> int:
        return len(self.notices.get(video_id, {}))

    def close(self) -> None:
        while self.subscriptions:
            self.sns.unsubscribe(SubscriptionArn=self.subscriptions[-1])
            self.subscriptions.pop()
        if self.url:
            self.sqs.delete_queue(QueueUrl=self.url)
            self.url = None

    def left_behind(self) -> str:
        """What close() could not remove, for the interrupted line."""
        left = ([f"queue {self.url}"] if self.url else []) + [f"subscription {arn}" for arn in self.subscriptions]
        return ", ".join(left)


FUNCTIONS = Path(__file__).resolve().parent.parent / "generator" / "functions" / "video_jobs"


def handlers() -> tuple[Any, Any]:
    """The job-control package's api and scheduler modules, imported as Lambda imports them (package root)."""
    if str(FUNCTIONS) not in sys.path:
        sys.path.insert(0, str(FUNCTIONS))
    import api  # type: ignore[import-not-found]
    import scheduler  # type: ignore[import-not-found]

    return api, scheduler


def nested_outputs(cfn: Any, stack: str) -> dict[str, str]:
    """Outputs of the parent's nested stacks (the function names are not re-exported by main.json)."""
    found: dict[str, str] = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == "AWS::CloudFormation::Stack" and resource.get("PhysicalResourceId"):
                described = cfn.describe_stacks(StackName=resource["PhysicalResourceId"])["Stacks"][0]
                found.update({o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])})
    return found


def function_environment(lambda_client: Any, name: str) -> dict[str, str]:
    return lambda_client.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})


def call_api(method: str, resource: str, **event: Any) -> tuple[int, dict[str, Any]]:
    """The API function's handler, as API Gateway would invoke it."""
    api, _ = handlers()
    answer = api.lambda_handler({"httpMethod": method, "resource": resource, **event}, None)
    return answer["statusCode"], json.loads(answer["body"])


def reconcile_tick(environment: dict[str, str]) -> None:
    """The scheduler's minute tick, with the scheduler's own environment (it also names the error topic)."""
    _, scheduler = handlers()
    saved = {k: os.environ.get(k) for k in environment}
    os.environ.update(environment)
    try:
        scheduler.lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, None)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_case(case: Case, video_id: str, outputs: dict[str, str], inbox: Inbox, timeout: float,
             scheduler_environment: dict[str, str], submitted: list[str]) -> list[str]:
    """Run one video (its id is appended to `submitted` before it is submitted); print what happened; return what
    was wrong (empty: the outcome is right). How often it was notified is checked once every video ended
    (notices_wrong)."""
    submitted.append(video_id)
    print(f"\n==> video {video_id} ({case.says})")
    status_code, body = call_api("POST", "/videos", body=json.dumps({"videoId": video_id}),
                                 requestContext={"requestId": f"smoke-{uuid.uuid4()}"})
    print(f"POST /videos -> {status_code} {json.dumps(body)}")
    if status_code != 202:
        return [f"{case.name}: the API answered {status_code}, not 202"]
    deadline = time.monotonic() + timeout
    while True:
        reconcile_tick(scheduler_environment)
        status_code, body = call_api("GET", "/videos/{videoId}", pathParameters={"videoId": video_id})
        if body.get("status") not in ("QUEUED", "RUNNING") or time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    print(f"GET /videos/{video_id} -> {status_code} {json.dumps(body)}")
    print(f"job: {body.get('status')}")
    envelope = inbox.wait_for(video_id, deadline)
    topic_arn = outputs[case.topic_output]
    if envelope is None:
        print(f"message: none within {timeout:g}s")
    else:
        print(f"message on {envelope.get('TopicArn', '').rsplit(':', 1)[-1]}, subject {envelope.get('Subject')!r}:")
        print(f"  {json.dumps(envelope['Message'])}")
    wrong = []
    if body.get("status") != case.status:
        wrong.append(f"{case.name}: job {body.get('status')}, expected {case.status}")
    error = (body.get("lastError") or {}).get("error")
    if error != case.error:
        wrong.append(f"{case.name}: the job ended with error {error}, expected {case.error or 'none'}")
    if envelope is None or envelope.get("TopicArn") != topic_arn or envelope.get("Subject") != case.subject:
        wrong.append(f"{case.name}: expected a {case.subject!r} message on {topic_arn.rsplit(':', 1)[-1]}")
    return wrong


def notices_wrong(videos: dict[str, str], inbox: Inbox) -> list[str]:
    """Each video is notified exactly once: a second notice means two parts of the pipeline each thought nobody
    had been told (a state machine failure path that failed, then the scheduler)."""
    wrong = []
    for name, video_id in videos.items():
        count = inbox.count(video_id)
        print(f"{video_id}: notified {count} time{'' if count == 1 else 's'}")
        if count != 1:
            wrong.append(f"{name}: video {video_id} was notified {count} times, expected once")
    return wrong


def _main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m deploytools.smoke", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    default_stack = names.parent_stack("dev")
    p.add_argument("--stack", default=default_stack, help=f"parent stack (default {default_stack})")
    p.add_argument("--case", choices=("success", "failure", "both"), default="both")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per video (default 60)")
    a = p.parse_args(argv)
    from deploytools.cfn import aws_errors_as_pipeline_errors

    return aws_errors_as_pipeline_errors(lambda _: smoke(a.stack, a.case, a.timeout), a)


def smoke(stack: str, which: str, timeout: float) -> int:
    import boto3

    cfn = boto3.client("cloudformation")
    outputs = stack_outputs(cfn, stack)
    nested = nested_outputs(cfn, stack)
    missing = {"ApiFunctionName", "SchedulerFunctionName"} - nested.keys()
    if missing:
        raise errors.AwsError(f"stack {stack} has no nested output {', '.join(sorted(missing))}: deploy it again "
                              "with ./deploy.sh --local")
    functions = boto3.client("lambda")
    os.environ.update(function_environment(functions, nested["ApiFunctionName"]))
    scheduler_environment = function_environment(functions, nested["SchedulerFunctionName"])
    print(f"stack {stack}: state machine {outputs['StateMachineArn']}, job table {os.environ.get('JOBS_TABLE')}")
    inbox = Inbox(boto3.client("sns"), boto3.client("sqs"))
    videos = {name: f"{CASES[name].video_prefix}{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
              for name in (("success", "failure") if which == "both" else (which,))}
    submitted: list[str] = []  # the videos whose executions may still run if the smoke is interrupted
    try:
        inbox.open([outputs["CompletionTopicArn"], outputs["ErrorTopicArn"]])
        wrong = [w for name, video_id in videos.items()
                 for w in run_case(CASES[name], video_id, outputs, inbox, timeout, scheduler_environment, submitted)]
        inbox.settle(SETTLE_S)
        wrong += notices_wrong(videos, inbox)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (errors.run): remove the queue, say what may still run
        raise errors.Interrupted(interrupted_line(inbox, submitted)) from None
    except BaseException:
        with contextlib.suppress(Exception):  # the error being raised says more than a failed clean-up
            inbox.close()
        raise
    inbox.close()
    if wrong:
        print("\nsmoke: FAILED: " + "; ".join(wrong), file=sys.stderr)
        return 1
    print("\nsmoke: ok: the video was processed and notified"
          + (", and the failing one reported as an error" if which == "both" else ""))
    return 0


def interrupted_line(inbox: Inbox, submitted: list[str]) -> str:
    """What the interrupted smoke leaves: its inbox removed (or not), the videos whose executions may still run."""
    with contextlib.suppress(Exception):
        inbox.close()
    left = inbox.left_behind()
    removed = (f"could not remove its {left} (remove them by hand, or stop the emulator: ./deploy.sh --local --stop)"
               if left else "its SQS queue and its topic subscriptions were removed")
    running = (f"the executions of video(s) {', '.join(submitted)} may still run in the emulator, and a job may stay "
               "QUEUED or RUNNING in its table (the scheduler's tick settles it, or ./deploy.sh --local --stop)"
               if submitted else "no video was submitted")
    return f"smoke stopped: {removed}; {running}"


def main(argv: list[str] | None = None) -> int:
    return errors.run(_main, sys.argv[1:] if argv is None else argv, "deploytools.smoke",
                      interrupted="before its queue was made: nothing was submitted")


if __name__ == "__main__":
    sys.exit(main())
