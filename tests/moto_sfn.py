"""Test harness: run a Step Functions definition in moto's interpreter, patched by deploytools.moto_layer.

:func:`run_execution` creates what the definition needs in a mocked account (cluster, Fargate task
definition, VPC, topics with a subscribed SQS queue each, role), fills the definition's ``${Name}``
placeholders, runs one execution under :func:`deploytools.moto_layer.stepfunctions.moto_patches` and
collects the outcome: status, history, RunTask calls, retry intervals, and the notifications from the queues.
:func:`generated_definition` is the definition to run: the one generator/state_machine.py renders.

Set-up that moto needs (not patches): task definitions must give container ``memory`` (else RunTask raises
a TypeError); an awsvpc task needs a VPC with DNS hostnames enabled (else the ENI has no
``private_dns_name``); the execution needs an explicit ``name`` (else ``$$.Execution.Id`` ends in ``:None``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto import mock_aws

from deploytools.moto_layer.stepfunctions import moto_patches, substitute

from conftest import one_resource

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
CONTAINER_NAME = "VideoProcessingContainer"
EXECUTE = {"stepfunctions": {"execute_state_machine": True}}


def generated_definition(templates: dict) -> dict[str, Any]:
    """The state machine definition as the generator renders it into templates/dev/workflow.json."""
    state_machine = one_resource(templates["dev"]["workflow"], "AWS::StepFunctions::StateMachine")
    return state_machine["Properties"]["Definition"]


@dataclass
class Resources:
    """What :func:`create_resources` made in the mocked account."""

    cluster_arn: str
    task_definition_arn: str
    subnet_ids: list[str]
    security_group_id: str
    completion_topic_arn: str
    error_topic_arn: str
    queue_urls: dict[str, str]  # "completion" / "error" -> SQS queue URL
    role_arn: str

    def default_substitutions(self) -> dict[str, str]:
        """Placeholder names :func:`run_execution` fills in by default."""
        return {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "ClusterArn": self.cluster_arn,
            "TaskDefinitionArn": self.task_definition_arn,
            # the names generator/state_machine.py uses
            "PrivateSubnet1": self.subnet_ids[0],
            "PrivateSubnet2": self.subnet_ids[1],
            "TaskSecurityGroupId": self.security_group_id,
            "CompletionTopicArn": self.completion_topic_arn,
            "ErrorTopicArn": self.error_topic_arn,
            "MediaBucketName": "media-bucket",
            "ProcessorLogGroup": "/video-processing/dev/processor",
        }


def create_resources(*, raw_message_delivery: bool = False) -> Resources:
    """Create cluster, Fargate task definition, VPC, topics+queues, role.

    Must run inside ``mock_aws``.
    """
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # Without DNS hostnames moto's ENI lacks private_dns_name and RunTask fails.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    subnet_ids = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"]
        for i in (1, 2)
    ]
    sg_id = ec2.create_security_group(
        GroupName="video-processing", Description="tasks", VpcId=vpc_id
    )["GroupId"]

    ecs = boto3.client("ecs", region_name=REGION)
    cluster_arn = ecs.create_cluster(clusterName="video-processing")["cluster"]["clusterArn"]
    task_definition_arn = ecs.register_task_definition(
        family="video-processing",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="2048",
        containerDefinitions=[
            # moto needs a container-level memory to place the task.
            {"name": CONTAINER_NAME, "image": "video-processing:test", "essential": True, "memory": 2048}
        ],
    )["taskDefinition"]["taskDefinitionArn"]

    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topics: dict[str, str] = {}
    queues: dict[str, str] = {}
    for kind in ("completion", "error"):
        topics[kind] = sns.create_topic(Name=f"video-{kind}")["TopicArn"]
        queues[kind] = sqs.create_queue(QueueName=f"video-{kind}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=queues[kind], AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        sns.subscribe(
            TopicArn=topics[kind],
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": str(raw_message_delivery).lower()},
        )

    iam = boto3.client("iam", region_name=REGION)
    role_arn = iam.create_role(
        RoleName="video-pipeline-states",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "states.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    return Resources(
        cluster_arn=cluster_arn,
        task_definition_arn=task_definition_arn,
        subnet_ids=subnet_ids,
        security_group_id=sg_id,
        completion_topic_arn=topics["completion"],
        error_topic_arn=topics["error"],
        queue_urls=queues,
        role_arn=role_arn,
    )


@dataclass
class Notification:
    """One SNS message as it reached the subscribed queue."""

    subject: str | None
    message: Any  # the Message, parsed as JSON when it is JSON
    raw: str


@dataclass
class ExecutionResult:
    status: str  # SUCCEEDED / FAILED / TIMED_OUT / ABORTED
    output: Any  # parsed execution output (None unless SUCCEEDED)
    error: str | None
    cause: str | None
    messages: dict[str, list[Notification]]  # "completion" / "error"
    history: list[dict[str, Any]]
    execution_arn: str
    run_task_calls: list[dict[str, Any]] = field(default_factory=list)
    retry_sleeps: list[float] = field(default_factory=list)

    def task_failures(self) -> list[str]:
        """Error names of the TaskFailed events, in order (one per attempt)."""
        return [
            e["taskFailedEventDetails"]["error"]
            for e in self.history
            if e["type"] == "TaskFailed"
        ]


def drain_queue(queue_url: str, *, raw_message_delivery: bool = False) -> list[Notification]:
    sqs = boto3.client("sqs", region_name=REGION)
    notes: list[Notification] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return notes
        for message in batch:
            body = message["Body"]
            subject = None
            if not raw_message_delivery:
                envelope = json.loads(body)
                body, subject = envelope["Message"], envelope.get("Subject")
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = body
            notes.append(Notification(subject=subject, message=parsed, raw=body))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def start_and_wait(
    state_machine_arn: str,
    execution_input: Any,
    *,
    name: str | None = None,
    timeout: float = 30.0,
) -> tuple[str, dict[str, Any]]:
    """Start an execution and poll until it ends.

    Always passes a name: without one moto's ``$$.Execution.Id`` ends in ``:None``.
    """
    sfn = boto3.client("stepfunctions", region_name=REGION)
    execution_arn = sfn.start_execution(
        stateMachineArn=state_machine_arn,
        name=name or f"test-{uuid.uuid4().hex[:12]}",
        input=json.dumps(execution_input),
    )["executionArn"]
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return execution_arn, described
        if time.monotonic() > deadline:
            sfn.stop_execution(executionArn=execution_arn, error="Harness.Timeout")
            raise TimeoutError(f"{execution_arn} still RUNNING after {timeout}s")
        time.sleep(0.05)


def run_execution(
    definition: dict[str, Any] | str,
    execution_input: Any,
    *,
    task_exit_code: int | None = 0,
    run_task_fails: bool = False,
    substitutions: Callable[[Resources], dict[str, str]] | dict[str, str] | None = None,
    raw_message_delivery: bool = False,
    execution_name: str | None = None,
    leave_out: Collection[str] = (),
    timeout: float = 30.0,
) -> ExecutionResult:
    """Create the resources, the state machine, run one execution, collect messages.

    ``definition`` is a Definition object or a DefinitionString with ``${Name}``
    placeholders; ``substitutions`` (a dict, or a function of :class:`Resources`)
    is applied on top of :meth:`Resources.default_substitutions`. ``leave_out`` names
    workarounds of :mod:`deploytools.moto_layer.stepfunctions` to skip (to see whether they are still needed).
    """
    run_task_calls: list[dict[str, Any]] = []
    retry_sleeps: list[float] = []
    patches = moto_patches(
        task_exit_code=task_exit_code,
        run_task_fails=run_task_fails,
        run_task_calls=run_task_calls,
        retry_sleeps=retry_sleeps,
        leave_out=leave_out,
    )
    with mock_aws(config=EXECUTE), patches:
        resources = create_resources(raw_message_delivery=raw_message_delivery)
        mapping = resources.default_substitutions()
        if callable(substitutions):
            mapping.update(substitutions(resources))
        elif substitutions:
            mapping.update(substitutions)
        asl = substitute(definition, mapping)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        state_machine_arn = sfn.create_state_machine(
            name="video-pipeline",
            definition=asl if isinstance(asl, str) else json.dumps(asl),
            roleArn=resources.role_arn,
        )["stateMachineArn"]
        execution_arn, described = start_and_wait(
            state_machine_arn, execution_input, name=execution_name, timeout=timeout
        )
        history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        messages = {
            kind: drain_queue(url, raw_message_delivery=raw_message_delivery)
            for kind, url in resources.queue_urls.items()
        }
    output = described.get("output")
    return ExecutionResult(
        status=described["status"],
        output=json.loads(output) if output is not None else None,
        error=described.get("error"),
        cause=described.get("cause"),
        messages=messages,
        history=history,
        execution_arn=execution_arn,
        run_task_calls=run_task_calls,
        retry_sleeps=retry_sleeps,
    )
