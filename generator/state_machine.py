"""The video processing state machine, as an Amazon States Language document (pure data).

Flow: ValidateInput -> ProcessVideo (ECS runTask.sync) -> CheckExitCode -> DescribeSuccess -> NotifySuccess ->
VideoProcessingSucceeded. A failed task is retried by hand (ExamineTaskFailure ... WaitToRetry -> ProcessVideo) so
that the container's exit code can be read: exit 3 (invalid media, the user's error) is not retried, is notified
once and ends in a Succeed state with the outcome InvalidMedia (RejectMedia). Every other ending builds a
`$.notification` object and goes through NotifyFailure -> VideoProcessingFailed. Executions that time out or are
aborted never reach a state: job control reports those two.

ARNs and ids appear as `${Name}` placeholders, filled by the state machine's DefinitionSubstitutions.
"""

from __future__ import annotations

from generator import contracts, names
from generator.functions.video_jobs import contract as jobs_contract

CONTAINER_NAME = "VideoProcessingContainer"
TIMEOUT_SECONDS = 30 * 60  # definition()'s; the workflow tier sets each environment's (generator/encode_speed.py)

# The sketch's retry: a task that fails is retried every 30 s, 3 times, backing off x2. Not a Retry field: a retrier
# cannot look at the container's exit code (runTask.sync reports every non-zero exit as States.TaskFailed, the stopped
# task as JSON in the cause), and exit 3 must not be retried. The states from ExamineTaskFailure to WaitToRetry
# retry with these values by hand; each wait doubles the last (States.MathAdd of it to itself: backoff 2).
PROCESS_RETRY = {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 30, "MaxAttempts": 3,
                 "BackoffRate": 2.0}
RETRIES = "$.taskRetries"  # {"count": retries so far, "seconds": the wait before this one}, absent before the first
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
PROCESSOR_LOG_GROUP = "ProcessorLogGroup"  # the workflow template's own log group (its name), not a contract
# The processor prints its reason on stderr, which reaches the task's log, not the stopped task Step Functions sees
# (ECS keeps no container output): the notice says where the line is. No apostrophes or braces: the text is a
# States.Format template.
INVALID_MEDIA_CAUSE = ("The source is not a video the processor accepts (exit code {}). The reason is the line "
                       "processor: invalid media: ... in log group ${" + PROCESSOR_LOG_GROUP + "} stream {}. Upload a "
                       "corrected file (a new upload of a failed video starts its next attempt)")

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


# The stopped task that runTask.sync put in the cause of its States.TaskFailed, once parsed (ReadStoppedTask).
STOPPED_EXIT_CODE = "$.stopped.task.Containers[0].ExitCode"  # the task has one container (CONTAINER_NAME)
# awslogs names a stream `<prefix>/<container>/<task id>`, the id being the task ARN's last part
# (arn:aws:ecs:<region>:<account>:task/<cluster>/<id>, the long ARN format every account has used since 2021):
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using_awslogs.html
LOG_STREAM = (f"States.Format('{names.LOG_STREAM_PREFIX}/{CONTAINER_NAME}/{{}}', "
              "States.ArrayGetItem(States.StringSplit($.stopped.task.TaskArn, '/'), 2))")



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


# Where the attempt's outputs are, for the completion notice (subscribers need not ask the API): keys in the bucket.
# The manifest lists every file and what the processor measured; the download and the poster have fixed names.
OUTPUT_LOCATIONS = _parameters({
    "bucket": _Read("$.outputs.bucket"), "prefix": _Read("$.outputs.prefix"),
    **{name: _Read(f"States.Format('{{}}{key}', $.outputs.prefix)") for name, key in (
        ("manifest", jobs_contract.MANIFEST_NAME), ("download", jobs_contract.DOWNLOAD_NAME),
        ("poster", jobs_contract.POSTER_NAME))},
})


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
                # States.TaskFailed matches every task error but States.Timeout (ECS.* included):
                # https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
                "Retry": [CAPACITY_RETRY],
                "Catch": [{"ErrorEquals": CAPACITY_ERRORS, "ResultPath": "$.error", "Next": "AwaitCapacity"},
                          {"ErrorEquals": PROCESS_RETRY["ErrorEquals"], "ResultPath": "$.error",
                           "Next": "ExamineTaskFailure"},
                          {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ExamineError"}],
                "Next": "CheckExitCode",
            },
            # A task that ran and stopped fails as States.TaskFailed with the stopped task (DescribeTasks' shape) as
            # JSON in the cause (https://docs.aws.amazon.com/step-functions/latest/dg/connect-ecs.html); any other
            # error (ECS.* from RunTask) carries a sentence. Only the first is parsed: a cause that is not JSON would
            # fail States.StringToJson with an error no state can catch.
            "ExamineTaskFailure": {
                "Type": "Choice",
                "Choices": [{"And": [
                    {"Variable": "$.error.Error", "StringEquals": "States.TaskFailed"},
                    {"Variable": "$.error.Cause", "IsPresent": True}, {"Variable": "$.error.Cause", "IsString": True},
                    {"Variable": "$.error.Cause", "StringMatches": "{*}"},
                ], "Next": "ReadStoppedTask"}],
                "Default": "PlanRetry",
            },
            "ReadStoppedTask": {
                "Type": "Pass",
                "Parameters": {"task.$": "States.StringToJson($.error.Cause)"},
                "ResultPath": "$.stopped",
                "Next": "CheckStoppedExitCode",
            },
            "CheckStoppedExitCode": {
                "Type": "Choice",
                "Choices": [{"And": [
                    {"Variable": STOPPED_EXIT_CODE, "IsPresent": True},
                    {"Variable": STOPPED_EXIT_CODE, "IsNumeric": True},
                    {"Variable": STOPPED_EXIT_CODE, "NumericEquals": jobs_contract.INVALID_MEDIA_EXIT_CODE},
                    {"Variable": "$.stopped.task.TaskArn", "IsPresent": True},
                    {"Variable": "$.stopped.task.TaskArn", "IsString": True},
                ], "Next": "DescribeInvalidMedia"}],
                "Default": "PlanRetry",
            },
            # The sketch's retry by hand: PROCESS_RETRY's attempts and waits, then the failure path with the last error.
            "PlanRetry": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": RETRIES, "IsPresent": False, "Next": "FirstRetry"},
                    {"Variable": f"{RETRIES}.count", "NumericGreaterThanEquals": PROCESS_RETRY["MaxAttempts"],
                     "Next": "ExamineError"},
                ],
                "Default": "NextRetry",
            },
            "FirstRetry": {
                "Type": "Pass",
                "Result": {"count": 1, "seconds": PROCESS_RETRY["IntervalSeconds"]},
                "ResultPath": RETRIES,
                "Next": "WaitToRetry",
            },
            "NextRetry": {
                "Type": "Pass",
                "Parameters": {"count.$": f"States.MathAdd({RETRIES}.count, 1)",
                               "seconds.$": f"States.MathAdd({RETRIES}.seconds, {RETRIES}.seconds)"},
                "ResultPath": RETRIES,
                "Next": "WaitToRetry",
            },
            "WaitToRetry": {"Type": "Wait", "SecondsPath": f"{RETRIES}.seconds", "Next": "ProcessVideo"},
            # The user's error: one notice naming where the processor's reason is, no retry, and a Succeed state
            # (ExecutionsFailed and its alarm count the pipeline's failures, not a client's file). Job control reads
            # the outcome and records the job FAILED with lastError InvalidMedia.
            "DescribeInvalidMedia": {
                "Type": "Pass",
                "Parameters": _parameters(jobs_contract.failure_notice(
                    VIDEO_ID, EXECUTION, jobs_contract.INVALID_MEDIA,
                    _Read(f"States.Format('{INVALID_MEDIA_CAUSE}', {STOPPED_EXIT_CODE}, {LOG_STREAM})"),
                    taskArn=_Read("$.stopped.task.TaskArn"), logGroup=_sub(PROCESSOR_LOG_GROUP),
                    logStream=_Read(LOG_STREAM))),
                "ResultPath": "$.notification",
                "Next": "NotifyInvalidMedia",
            },
            "NotifyInvalidMedia": _notify(ERROR_TOPIC_ARN, jobs_contract.ERROR_SUBJECT, "RejectMedia"),
            "RejectMedia": {
                "Type": "Pass",
                "Parameters": {"videoId.$": "$.videoId", jobs_contract.OUTCOME: jobs_contract.INVALID_MEDIA,
                               "cause.$": "$.notification.cause", "notification.$": "$.notification"},
                "Next": "MediaRejected",
            },
            "MediaRejected": {"Type": "Succeed", "Comment": "Job control records the job FAILED: invalid media"},
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
                                                               taskArn=_Read("$.taskResult.TaskArn"),
                                                               outputs=OUTPUT_LOCATIONS)),
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
            # "requeue" (job control's lifecycle.reported_outcome reads it).
            "AwaitCapacity": {
                "Type": "Pass",
                "Parameters": {"videoId.$": "$.videoId", jobs_contract.OUTCOME: jobs_contract.CAPACITY_UNAVAILABLE,
                               "cause": CAPACITY_CAUSE, "error.$": "$.error"},
                "Next": "RequeueForCapacity",
            },
            "RequeueForCapacity": {"Type": "Succeed", "Comment": "Job control requeues the video: no capacity"},
        },
    }
