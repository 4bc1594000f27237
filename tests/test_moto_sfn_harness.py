"""Tests of the harness in moto_sfn.py, with a hand-written definition
shaped like the pipeline's (the generated one gets its own tests)."""

from __future__ import annotations

import copy
import json

import moto
import pytest

import moto_sfn
from moto_sfn import CONTAINER_NAME, run_execution, substitute

VIDEO_ID = "video-123"

DEFINITION = {
    "Comment": "Hand-written stand-in for the pipeline definition",
    "StartAt": "ValidateInput",
    "States": {
        "ValidateInput": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.videoId", "IsPresent": True},
                        {"Variable": "$.videoId", "IsString": True},
                    ],
                    "Next": "ProcessVideo",
                }
            ],
            "Default": "InvalidInput",
        },
        # $.videoId may be absent here, and a missing path is a States.Runtime
        # error on AWS, so this branch builds its message without it.
        "InvalidInput": {
            "Type": "Pass",
            "Parameters": {
                "videoId": None,
                "executionArn.$": "$$.Execution.Id",
                "error": "InvalidInput",
                "cause": "The input must contain a string videoId",
            },
            "ResultPath": "$.failure",
            "Next": "NotifyFailure",
        },
        "ProcessVideo": {
            "Type": "Task",
            "Resource": "arn:aws:states:::ecs:runTask.sync",
            "Parameters": {
                "Cluster": "${ClusterArn}",
                "TaskDefinition": "${TaskDefinitionArn}",
                "LaunchType": "FARGATE",
                "NetworkConfiguration": {
                    "AwsvpcConfiguration": {
                        "Subnets": ["${PrivateSubnet1}", "${PrivateSubnet2}"],
                        "SecurityGroups": ["${TaskSecurityGroupId}"],
                        "AssignPublicIp": "DISABLED",
                    }
                },
                "Overrides": {
                    "ContainerOverrides": [
                        {
                            "Name": CONTAINER_NAME,
                            "Environment": [{"Name": "VIDEO_ID", "Value.$": "$.videoId"}],
                        }
                    ]
                },
            },
            "ResultPath": "$.taskResult",
            "Retry": [
                {
                    "ErrorEquals": ["States.TaskFailed"],
                    "IntervalSeconds": 30,
                    "MaxAttempts": 3,
                    "BackoffRate": 2.0,
                }
            ],
            "Catch": [
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "TaskFailed"}
            ],
            "Next": "CheckExitCode",
        },
        "TaskFailed": {
            "Type": "Pass",
            "Parameters": {
                "videoId.$": "$.videoId",
                "executionArn.$": "$$.Execution.Id",
                "error.$": "$.error.Error",
                "cause.$": "$.error.Cause",
            },
            "ResultPath": "$.failure",
            "Next": "NotifyFailure",
        },
        "CheckExitCode": {
            "Type": "Choice",
            # Rules are tried in order: a missing ExitCode never reaches a
            # comparison or the Format below (States.Runtime on AWS).
            "Choices": [
                {
                    "Variable": "$.taskResult.Containers[0].ExitCode",
                    "IsPresent": False,
                    "Next": "NoExitCode",
                },
                {
                    "Variable": "$.taskResult.Containers[0].ExitCode",
                    "NumericEquals": 0,
                    "Next": "NotifySuccess",
                },
            ],
            "Default": "NonZeroExit",
        },
        "NoExitCode": {
            "Type": "Pass",
            "Parameters": {
                "videoId.$": "$.videoId",
                "executionArn.$": "$$.Execution.Id",
                "error": "TaskStoppedWithoutExitCode",
                "cause.$": "$.taskResult.StoppedReason",
            },
            "ResultPath": "$.failure",
            "Next": "NotifyFailure",
        },
        "NonZeroExit": {
            "Type": "Pass",
            "Parameters": {
                "videoId.$": "$.videoId",
                "executionArn.$": "$$.Execution.Id",
                "error": "NonZeroExitCode",
                "cause.$": "States.Format('Container exited with code {} ({})', "
                "$.taskResult.Containers[0].ExitCode, $.taskResult.StoppedReason)",
            },
            "ResultPath": "$.failure",
            "Next": "NotifyFailure",
        },
        "NotifySuccess": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sns:publish",
            "Parameters": {
                "TopicArn": "${CompletionTopicArn}",
                "Subject": "Video processing complete",
                # An object Message: the optimised SNS integration serialises it.
                "Message": {
                    "videoId.$": "$.videoId",
                    "executionArn.$": "$$.Execution.Id",
                    "status": "SUCCEEDED",
                    "taskArn.$": "$.taskResult.TaskArn",
                },
            },
            "ResultPath": None,
            "Next": "Done",
        },
        "NotifyFailure": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sns:publish",
            "Parameters": {
                "TopicArn": "${ErrorTopicArn}",
                "Subject": "Video processing failed",
                "Message.$": "States.JsonToString($.failure)",
            },
            "ResultPath": None,
            "Next": "ProcessingFailed",
        },
        "Done": {"Type": "Succeed"},
        "ProcessingFailed": {
            "Type": "Fail",
            "Error": "ProcessingError",
            "Cause": "Video processing failed; see the error notification",
        },
    },
}


def test_moto_is_the_patched_version():
    assert moto.__version__ == moto_sfn.MOTO_VERSION


def test_success_publishes_one_completion_message():
    result = run_execution(DEFINITION, {"videoId": VIDEO_ID})

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.messages["error"] == []
    [note] = result.messages["completion"]
    assert note.subject == "Video processing complete"
    assert note.message["videoId"] == VIDEO_ID
    assert note.message["status"] == "SUCCEEDED"
    assert note.message["executionArn"] == result.execution_arn
    assert note.message["taskArn"].startswith("arn:aws:ecs:")
    # runTask.sync output is the DescribeTasks task, in PascalCase.
    task = result.output["taskResult"]
    assert task["LastStatus"] == "STOPPED"
    assert task["Containers"][0]["ExitCode"] == 0
    assert task["StopCode"] == "EssentialContainerExited"


def test_task_gets_video_id_in_container_environment():
    result = run_execution(DEFINITION, {"videoId": VIDEO_ID})

    [call] = result.run_task_calls
    assert call["overrides"]["containerOverrides"] == [
        {"name": CONTAINER_NAME, "environment": [{"name": "VIDEO_ID", "value": VIDEO_ID}]}
    ]
    assert call["launch_type"] == "FARGATE"
    assert call["networking_configuration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"


def test_capacity_provider_strategy_reaches_run_task():
    definition = copy.deepcopy(DEFINITION)
    parameters = definition["States"]["ProcessVideo"]["Parameters"]
    del parameters["LaunchType"]
    parameters["CapacityProviderStrategy"] = [{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]

    result = run_execution(definition, {"videoId": VIDEO_ID})

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    [call] = result.run_task_calls
    assert call["launch_type"] is None
    assert call["capacity_provider_strategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]


def test_non_zero_exit_code_fails_the_sync_task_as_on_aws():
    result = run_execution(DEFINITION, {"videoId": VIDEO_ID}, task_exit_code=1)

    assert result.status == "FAILED"
    assert result.messages["completion"] == []
    [note] = result.messages["error"]
    assert note.message["videoId"] == VIDEO_ID
    assert note.message["error"] == "States.TaskFailed"
    assert json.loads(note.message["cause"])["Containers"][0]["ExitCode"] == 1
    assert len(result.run_task_calls) == 4, "States.TaskFailed is retried"


def test_moto_own_sync_treats_a_non_zero_exit_as_success():
    """Without ecs_sync_fails_like_aws, moto's runTask.sync succeeds: the definition's exit-code guard decides."""
    result = run_execution(DEFINITION, {"videoId": VIDEO_ID}, task_exit_code=1, sync_fails_on_exit_code=False)

    assert result.status == "FAILED"
    assert result.error == "ProcessingError"
    assert result.messages["completion"] == []
    [note] = result.messages["error"]
    assert note.subject == "Video processing failed"
    assert note.message["videoId"] == VIDEO_ID
    assert note.message["executionArn"] == result.execution_arn
    assert note.message["error"] == "NonZeroExitCode"
    assert note.message["cause"].startswith("Container exited with code 1 ")
    assert len(result.run_task_calls) == 1
    assert result.task_failures() == []


def test_task_without_exit_code_takes_the_failure_path():
    result = run_execution(DEFINITION, {"videoId": VIDEO_ID}, task_exit_code=None, sync_fails_on_exit_code=False)

    assert result.status == "FAILED"
    assert result.error == "ProcessingError"
    [note] = result.messages["error"]
    assert note.message["error"] == "TaskStoppedWithoutExitCode"
    assert note.message["cause"] == "CannotPullContainerError: test"


def test_run_task_client_error_is_retried_then_caught():
    result = run_execution(DEFINITION, {"videoId": VIDEO_ID}, run_task_fails=True)

    assert result.status == "FAILED"
    assert result.error == "ProcessingError"
    assert result.messages["completion"] == []
    [note] = result.messages["error"]
    assert note.message["videoId"] == VIDEO_ID
    assert note.message["error"] == "ECS.InvalidParameterException"
    assert "No Container Instances" in note.message["cause"]
    # Retry States.TaskFailed 30s x3, backoff 2.0: recorded, not slept.
    assert len(result.run_task_calls) == 4
    assert result.retry_sleeps == [30, 60, 120]
    assert result.task_failures() == ["ECS.InvalidParameterException"] * 4


@pytest.mark.parametrize("execution_input", [{}, {"videoId": 42}, {"video": VIDEO_ID}])
def test_invalid_input_publishes_error_and_fails(execution_input):
    result = run_execution(DEFINITION, execution_input)

    assert result.status == "FAILED"
    assert result.error == "ProcessingError"
    assert result.run_task_calls == []
    [note] = result.messages["error"]
    assert note.message == {
        "videoId": None,
        "executionArn": result.execution_arn,
        "error": "InvalidInput",
        "cause": "The input must contain a string videoId",
    }


def test_definition_string_and_raw_delivery():
    """A Fn::Sub-style DefinitionString works too; raw delivery has no Subject."""
    result = run_execution(
        json.dumps(DEFINITION), {"videoId": VIDEO_ID}, raw_message_delivery=True
    )

    assert result.status == "SUCCEEDED"
    [note] = result.messages["completion"]
    assert note.subject is None
    assert note.message["videoId"] == VIDEO_ID


def test_substitute_replaces_placeholders_everywhere():
    obj = {"a": "${X}", "b": ["arn:${AWS::Region}:${X}", 3, None], "${X}": "${!Literal}"}
    assert substitute(obj, {"X": "x", "AWS::Region": "r"}) == {
        "a": "x",
        "b": ["arn:r:x", 3, None],
        "${X}": "${Literal}",
    }
    assert substitute('{"k": "${X}"}', {"X": "v"}) == '{"k": "v"}'
    with pytest.raises(KeyError, match="Missing"):
        substitute("${Missing}", {})


# ---- canaries: fail when moto no longer needs a workaround -----------------

PROCESS_ONLY = {
    "StartAt": "ProcessVideo",
    "States": {
        "ProcessVideo": {
            **{k: v for k, v in DEFINITION["States"]["ProcessVideo"].items() if k not in ("Retry", "Catch", "Next")},
            "End": True,
        }
    },
}


def test_unpatched_moto_cannot_run_ecs_run_task_sync():
    """If this fails, moto normalises parameters itself: drop service_normalisation."""
    result = run_execution(copy.deepcopy(PROCESS_ONLY), {"videoId": VIDEO_ID}, patch=False)

    assert result.status == "FAILED"
    assert result.error == "States.Runtime"
    assert "'Cluster'" in result.cause


def test_unpatched_moto_drops_capacity_provider_strategy():
    """If this fails, moto passes the parameter on: drop ecs_run_task_parameters."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_ecs as ecs_service,
    )

    assert "CapacityProviderStrategy" not in ecs_service._SUPPORTED_API_PARAM_BINDINGS["runtask"]


def test_unpatched_moto_wraps_indexed_paths_in_a_list():
    """If this fails, moto fixed extract_json: drop definite_jsonpath."""
    definition = {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Pass",
                "Parameters": {"code.$": "$.Containers[0].ExitCode"},
                "End": True,
            }
        },
    }
    data = {"Containers": [{"ExitCode": 0}]}

    assert run_execution(definition, data, patch=False).output == {"code": [0]}
    assert run_execution(definition, data).output == {"code": 0}
