"""`./deploy.sh --local --smoke` stopped by Ctrl-C or SIGTERM: it removes the SQS queue, the EventBridge rule
(its stand-in for the arrival rule's Lambda target) and the two topic subscriptions it made (they used to stay
behind at every interrupted run) and says which videos may still run.

Against moto's SNS and SQS in-process; the stack lookups are replaced by their answers. The same through
deploy.sh and a real SIGTERM: tests/test_local_pipeline.py."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from deploytools import smoke
from generator import errors

REGION = "ap-northeast-1"


@pytest.fixture
def topics(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        outputs = {"StateMachineArn": "arn:aws:states:ap-northeast-1:123456789012:stateMachine:x",
                   "CompletionTopicArn": sns.create_topic(Name="done")["TopicArn"],
                   "ErrorTopicArn": sns.create_topic(Name="failed")["TopicArn"]}
        monkeypatch.setattr(smoke, "stack_outputs", lambda cfn, stack: outputs)
        monkeypatch.setattr(smoke, "nested_outputs", lambda cfn, stack: {"ApiFunctionName": "api",
                                                                         "SchedulerFunctionName": "scheduler"})
        monkeypatch.setattr(smoke, "function_environment", lambda client, name: {})
        monkeypatch.setattr(smoke, "function_arn", lambda client, name: f"arn:aws:lambda:{REGION}:1:function:{name}")
        monkeypatch.setattr(smoke, "arrival_pattern", lambda events, arn: PATTERN)
        monkeypatch.setattr(smoke, "make_video", lambda path, seconds=3: b"not really a video")
        monkeypatch.setattr(smoke, "ffmpeg_path", lambda: "ffmpeg")
        yield sns, boto3.client("sqs", region_name=REGION)


PATTERN = '{"source": ["aws.s3"], "detail-type": ["Object Created"]}'


def events():
    return boto3.client("events", region_name=REGION)


def leftovers(sns, sqs) -> tuple[list, list]:
    rules = [r["Name"] for r in events().list_rules()["Rules"]]
    return sqs.list_queues().get("QueueUrls", []) + rules, sns.list_subscriptions()["Subscriptions"]


@pytest.mark.parametrize("after", [0, 1], ids=["while the first video runs", "while the second video runs"])
def test_an_interrupted_smoke_removes_its_queue_and_subscriptions_and_names_the_videos(topics, monkeypatch, after):
    sns, sqs = topics
    calls = []

    def run_case(case, video_id, video, outputs, inbox, timeout, scheduler_environment, submitted):
        assert len(leftovers(sns, sqs)[1]) == 2, "subscribed to both topics while a video runs"
        assert len(leftovers(sns, sqs)[0]) == 2, "a queue and the arrival rule in front of it"
        submitted.append(f"{case.video_prefix}video")
        calls.append(case.name)
        if len(calls) > after:
            raise KeyboardInterrupt  # Ctrl-C, or SIGTERM through generator.errors.run
        return []

    monkeypatch.setattr(smoke, "run_case", run_case)
    with pytest.raises(errors.Interrupted) as e:
        smoke.smoke("video-pipeline-dev", "both", 1.0)
    assert leftovers(sns, sqs) == ([], [])
    message = str(e.value)
    assert "its SQS queue, its EventBridge rule and its topic subscriptions were removed" in message
    assert ", ".join(f"{smoke.CASES[name].video_prefix}video" for name in calls) in message
    assert "may still run in the emulator" in message


def test_an_open_interrupted_half_way_is_removed_too(topics):
    sns, sqs = topics

    class SecondSubscribeInterrupted:
        def __init__(self) -> None:
            self.subscribed = 0

        def __getattr__(self, name: str):
            return getattr(sns, name)

        def subscribe(self, **kwargs):
            self.subscribed += 1
            if self.subscribed == 2:
                raise KeyboardInterrupt
            return sns.subscribe(**kwargs)

    inbox = smoke.Inbox(SecondSubscribeInterrupted(), sqs, events())
    with pytest.raises(KeyboardInterrupt):
        inbox.open([t["TopicArn"] for t in sns.list_topics()["Topics"]], PATTERN)
    queues, subscriptions = leftovers(sns, sqs)
    assert len(queues) == 1 and len(subscriptions) == 1, "interrupted between the two subscriptions"
    message = smoke.interrupted_line(inbox, [])
    assert leftovers(sns, sqs) == ([], []) and "were removed" in message and "no video was submitted" in message


def test_what_could_not_be_removed_is_named(topics, monkeypatch):
    sns, sqs = topics
    inbox = smoke.Inbox(sns, sqs, events())
    inbox.open([t["TopicArn"] for t in sns.list_topics()["Topics"]], PATTERN)
    monkeypatch.setattr(inbox, "sqs", None)  # the emulator went away: nothing answers any more
    monkeypatch.setattr(inbox, "sns", None)
    monkeypatch.setattr(inbox, "events", None)
    message = smoke.interrupted_line(inbox, ["smoke-1"])
    assert "could not remove its queue http" in message and "subscription arn:aws:sns:" in message
    assert "EventBridge rule video-pipeline-smoke-" in message
    assert "smoke-1" in message
