"""The video processing state machine, as an Amazon States Language document (pure data).

Flow: ValidateInput -> ProcessVideo (ECS runTask.sync, retried) -> CheckExitCode -> DescribeSuccess
-> NotifySuccess -> VideoProcessingSucceeded. Every other ending builds a `$.notification` object
and goes through NotifyFailure -> VideoProcessingFailed. Executions that time out or are aborted
never reach a state, so the workflow tier adds an EventBridge rule for those two.

ARNs and ids appear as `${Name}` placeholders, filled by the state machine's DefinitionSubstitutions.
"""

from __future__ import annotations

from generator import contracts
from generator.functions.video_jobs import contract as jobs_contract

CONTAINER_NAME = "VideoProcessingContainer"
TIMEOUT_SECONDS = 30 * 60  # definition()'s; the workflow tier sets each environment's (generator/encode_speed.py)

# The sketch's retry: a task that fails to run is retried every 30 s, 3 times, backing off x2.
PROCESS_RETRY = {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 30, "MaxAttempts": 3,
                 "BackoffRate": 2.0}
# RunTask found no capacity: throttled, the account's Fargate vCPU quota reached, or no Fargate capacity in the
# subnets' zones. Step Functions reports a capacity failure as ECS.AmazonECSException
# (https://repost.aws/knowledge-center/ecs-fargate-runtask-capacity). A few short retries with full jitter, then
# the execution succeeds with the outcome CapacityUnavailable and job control requeues the video with a longer
# backoff: not a failure.
CAPACITY_ERRORS = ["ECS.AmazonECSException", "ECS.ThrottlingException", "ECS.LimitExceededException"]
CAPACITY_RETRY = {"ErrorEquals": CAPACITY_ERRORS, "IntervalSeconds": 5, "MaxAttempts": 3, "BackoffRate": 2.0,
                  "MaxDelaySeconds": 60, "JitterStrategy": "FULL"}
# Publishing is retried on anything but a permanent failure of the task itself.
PUBLISH_RETRY = {"ErrorEquals": ["States.TaskFailed", "SNS.SdkClientException"], "IntervalSeconds": 2,
                 "MaxAttempts": 3, "BackoffRate": 2.0}

INVALID_INPUT_CAUSE = "The execution input must be a JSON object with a non-empty string videoId"
CAPACITY_CAUSE = "RunTask found no capacity after its retries; the video waits in the queue"

# Placeholders filled by DefinitionSubstitutions, named after the contracts whose values fill them.
CLUSTER_ARN = contracts.CLUSTER_ARN.name
TASK_DEFINITION_ARN = contracts.TASK_DEFINITION_ARN.name
TASK_SECURITY_GROUP_ID = contracts.TASK_SECURITY_GROUP_ID.name
COMPLETION_TOPIC_ARN = contracts.COMPLETION_TOPIC_ARN.name
ERROR_TOPIC_ARN = contracts.ERROR_TOPIC_ARN.name
MEDIA_BUCKET_NAME = contracts.MEDIA_BUCKET_NAME.name

# The processing container's environment (CONTRACT-MEDIA, docs/processor.md): name -> where in the execution input.
# Job control's input carries every one (lifecycle.execution_input); an execution started by hand with only a
# videoId gets the video's current source and attempt 0 (LocateSource).
CONTAINER_ENVIRONMENT = (
    ("VIDEO_ID", "$.videoId"),
    ("ATTEMPT", "States.Format('{}', $.attempt)"),
    ("SOURCE_BUCKET", "$.source.bucket"),
    ("SOURCE_KEY", "$.source.key"),
    ("SOURCE_VERSION_ID", "$.source.versionId"),
    ("SOURCE_SHA256", "$.source.sha256"),
    ("OUTPUTS_BUCKET", "$.outputs.bucket"),
    ("OUTPUTS_PREFIX", "$.outputs.prefix"),
)
LOCATION_STRINGS = ("$.source.bucket", "$.source.key", "$.source.versionId", "$.source.sha256", "$.outputs.bucket",
                    "$.outputs.prefix")


def subnet_placeholder(index: int) -> str:
    return f"PrivateSubnet{index + 1}"


def _sub(name: str) -> str:
    return "${" + name + "}"


# Where a notifying state keeps what SNS answered: the message id only, beside the input, which passes on
# unchanged. Not `"ResultPath": null` ("discard the result"): the emulator drops a null from the Definition (so
# the publish result replaced the input and the failure path failed a second time), and no template may carry one
# (generator/render.py). https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultpath.html
NOTIFY_RESULT_PATH = "$.notified"
NOTIFY_RESULT_SELECTOR = {"messageId.$": "$.MessageId"}  # SNS Publish always answers a MessageId


def _notify(topic: str, subject: str, next_state: str) -> dict:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::sns:publish",
        "Parameters": {"TopicArn": _sub(topic), "Subject": subject, "Message.$": "$.notification"},
        "ResultSelector": NOTIFY_RESULT_SELECTOR,
        "ResultPath": NOTIFY_RESULT_PATH,
        "Retry": [PUBLISH_RETRY],
        "Next": next_state,
    }


class _Read(str):
    """A value the state reads from its input or context (a JSONPath or an intrinsic function), not a literal."""


EXECUTION = _Read("$$.Execution.Id")
VIDEO_ID = _Read("$.videoId")


def _parameters(values: dict) -> dict:
    """Parameters of a state: ASL names the key of a value read `<key>.$`."""
    return dict((f"{key}.$", str(value)) if isinstance(value, _Read) else (key, value) for key, value in values.items())


def _describe_failure(error: str, cause: str, **details: str) -> dict:
    """A Pass state that puts the failure notification (the contract's shape) at $.notification, then notifies."""
    notification = _parameters(jobs_contract.failure_notice(VIDEO_ID, EXECUTION, error, cause, **details))
    return {"Type": "Pass", "Parameters": notification, "ResultPath": "$.notification", "Next": "NotifyFailure"}


def definition(subnet_count: int, capacity_provider_strategy: list[dict]) -> dict:
    invalid = {"Next": "RejectInput"}
    return {
        "Comment": "Runs one Fargate task per video and reports the outcome on SNS",
        "StartAt": "ValidateInput",
        "TimeoutSeconds": TIMEOUT_SECONDS,
        "States": {
            # Rules are tried in order, so a later rule only sees a videoId that passed the earlier ones:
            # no comparison ever meets a missing or non-string value (which would be States.Runtime).
            "ValidateInput": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.videoId", "IsPresent": False, **invalid},
                    {"Variable": "$.videoId", "IsString": False, **invalid},
                    {"Variable": "$.videoId", "StringEquals": "", **invalid},
                ],
                "Default": "CheckLocation",
            },
            # Job control names the source version and the attempt's outputs; anything less is replaced whole by the
            # video's current source and attempt 0 (a comparison never meets a missing field: IsPresent first).
            "CheckLocation": {
                "Type": "Choice",
                "Choices": [{"And": [
                    {"Variable": "$.attempt", "IsPresent": True}, {"Variable": "$.attempt", "IsNumeric": True},
                    *[rule for path in LOCATION_STRINGS for rule in (
                        {"Variable": path, "IsPresent": True}, {"Variable": path, "IsString": True})],
                ], "Next": "ProcessVideo"}],
                "Default": "LocateSource",
            },
            "LocateSource": {
                "Type": "Pass",
                "Parameters": {
                    "videoId.$": "$.videoId", "attempt": 0,
                    "source": {"bucket": _sub(MEDIA_BUCKET_NAME),
                               "key.$": f"States.Format('{jobs_contract.SOURCES_PREFIX}{{}}', $.videoId)",
                               "versionId": "", "sha256": ""},
                    "outputs": {"bucket": _sub(MEDIA_BUCKET_NAME),
                                "prefix.$": f"States.Format('{jobs_contract.OUTPUTS_PREFIX}{{}}/0/', $.videoId)"},
                },
                "Next": "ProcessVideo",
            },
            "RejectInput": {
                "Type": "Pass",
                # No videoId to name: the notification carries the input instead.
                "Parameters": {"notification": _parameters(jobs_contract.failure_notice(
                    None, EXECUTION, "InvalidInput", INVALID_INPUT_CAUSE, input=_Read("$")))},
                "Next": "NotifyFailure",
            },
            "ProcessVideo": {
                "Type": "Task",
                "Resource": "arn:aws:states:::ecs:runTask.sync",
                "Parameters": {
                    "Cluster": _sub(CLUSTER_ARN),
                    "TaskDefinition": _sub(TASK_DEFINITION_ARN),
                    "CapacityProviderStrategy": capacity_provider_strategy,
                    "NetworkConfiguration": {"AwsvpcConfiguration": {
                        "Subnets": [_sub(subnet_placeholder(i)) for i in range(subnet_count)],
                        "SecurityGroups": [_sub(TASK_SECURITY_GROUP_ID)],
                        "AssignPublicIp": "DISABLED",
                    }},
                    "Overrides": {"ContainerOverrides": [{
                        "Name": CONTAINER_NAME,
                        "Environment": [{"Name": name, "Value.$": path} for name, path in CONTAINER_ENVIRONMENT],
                    }]},
                },
                "ResultPath": "$.taskResult",
                # The first retrier and catcher that match apply: capacity errors are tried before the rest.
                "Retry": [CAPACITY_RETRY, PROCESS_RETRY],
                "Catch": [{"ErrorEquals": CAPACITY_ERRORS, "ResultPath": "$.error", "Next": "AwaitCapacity"},
                          {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ExamineError"}],
                "Next": "CheckExitCode",
            },
            # runTask.sync already fails (States.TaskFailed, retried, then caught) when the essential
            # container exits non-zero or never runs; this guard keeps "success" meaning exit code 0 even
            # where an integration reports a stopped task as done (as moto does).
            "CheckExitCode": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.taskResult.Containers[0].ExitCode", "IsPresent": False,
                     "Next": "DescribeNoExitCode"},
                    {"Variable": "$.taskResult.Containers[0].ExitCode", "NumericEquals": 0,
                     "Next": "DescribeSuccess"},
                ],
                "Default": "DescribeNonZeroExit",
            },
            "DescribeSuccess": {
                "Type": "Pass",
                "Parameters": _parameters(jobs_contract.notice(VIDEO_ID, EXECUTION, jobs_contract.SUCCEEDED,
                                                               taskArn=_Read("$.taskResult.TaskArn"))),
                "ResultPath": "$.notification",
                "Next": "NotifySuccess",
            },
            "NotifySuccess": {
                **_notify(COMPLETION_TOPIC_ARN, jobs_contract.COMPLETION_SUBJECT, "VideoProcessingSucceeded"),
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                           "Next": "ExamineError"}],
            },
            "VideoProcessingSucceeded": {"Type": "Succeed", "Comment": "Video processing completed successfully"},
            # A caught error always names itself; should it carry no Cause, reading one would be a
            # States.Runtime error inside the failure path, and nobody would be told.
            "ExamineError": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.error.Cause", "IsPresent": True, "Next": "DescribeTaskError"}],
                "Default": "DescribeCauselessError",
            },
            "DescribeTaskError": _describe_failure(_Read("$.error.Error"), _Read("$.error.Cause")),
            "DescribeCauselessError": _describe_failure(_Read("$.error.Error"), "The failed step reported no cause"),
            "DescribeNonZeroExit": _describe_failure(
                "NonZeroExitCode",
                _Read("States.Format('The processing container exited with code {}', "
                      "$.taskResult.Containers[0].ExitCode)"),
                taskArn=_Read("$.taskResult.TaskArn")),
            "DescribeNoExitCode": _describe_failure(
                "TaskStoppedWithoutExitCode", "The processing task stopped before its container reported an exit code"),
            "NotifyFailure": _notify(ERROR_TOPIC_ARN, jobs_contract.ERROR_SUBJECT, "VideoProcessingFailed"),
            # The error topic was told; the cause carries what it was told, for the job record.
            "VideoProcessingFailed": {"Type": "Fail", "Error": jobs_contract.NOTIFIED_FAILURE,
                                      "CausePath": "States.JsonToString($.notification)"},
            # No notification: job control puts the video back in the queue (its slot freed) and starts it later.
            # Not a Fail state: every Fail counts in the ExecutionsFailed metric, and its alarm would page for
            # each requeue (a new account short of quota). The execution succeeds with an output that says
            # "requeue" (jobs_contract.capacity_shortage reads it).
            "AwaitCapacity": {
                "Type": "Pass",
                "Parameters": {"videoId.$": "$.videoId", jobs_contract.OUTCOME: jobs_contract.CAPACITY_UNAVAILABLE,
                               "cause": CAPACITY_CAUSE, "error.$": "$.error"},
                "Next": "RequeueForCapacity",
            },
            "RequeueForCapacity": {"Type": "Succeed", "Comment": "Job control requeues the video: no capacity"},
        },
    }
