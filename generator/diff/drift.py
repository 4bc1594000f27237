"""Drift of a deployed stack tree (`diff --stack NAME --drift`): the manual changes a deploy would revert.

CloudFormation's drift detection runs on the parent and every nested stack (started together, then
awaited); each drifted resource property becomes one Drift. A deploy that updates or replaces a resource
writes the template's values back, so the manual change goes; a resource the deploy leaves alone keeps
its drift until it is next updated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from generator import errors
from generator.aws_facts import NESTED_STACK_TYPE

DRIFTED = ("MODIFIED", "DELETED")
POLL_SECONDS = 5.0
TIMEOUT_SECONDS = 600.0


@dataclass
class Drift:
    stack: str  # <env>/<file>
    logical_id: str
    type: str
    status: str  # MODIFIED or DELETED
    property: str  # PropertyPath, e.g. /Properties/RetentionInDays; "" for a deleted resource
    expected: str
    actual: str
    difference: str  # ADD, REMOVE, NOT_EQUAL, or "" for a deleted resource
    reverted: bool = False  # this deploy updates or replaces the resource


def _wait(cfn, detection_id: str, key: str, sleep: Callable[[float], None], timeout: float) -> None:
    waited = 0.0
    while True:
        status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection_id)
        if status["DetectionStatus"] != "DETECTION_IN_PROGRESS":
            # DETECTION_FAILED still reports every resource it could check (the reason names the others).
            return
        if waited >= timeout:
            raise errors.AwsError(f"drift detection of {key} still running after {timeout:.0f} s")
        sleep(POLL_SECONDS)
        waited += POLL_SECONDS


def _text(value: str | None) -> str:
    """A drift value as compact JSON when it is JSON (CloudFormation sends property values as JSON text)."""
    if value is None:
        return ""
    try:
        return json.dumps(json.loads(value), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return value


def _drifts(cfn, key: str, stack_id: str) -> list[Drift]:
    out, token = [], None
    while True:
        page = cfn.describe_stack_resource_drifts(StackName=stack_id, StackResourceDriftStatusFilters=list(DRIFTED),
                                                  **({"NextToken": token} if token else {}))
        for d in page["StackResourceDrifts"]:
            if d["ResourceType"] == NESTED_STACK_TYPE:
                continue  # a nested stack's drift is its children's, reported under the child
            base = (key, d["LogicalResourceId"], d["ResourceType"], d["StackResourceDriftStatus"])
            diffs = d.get("PropertyDifferences") or []
            out += [Drift(*base, p["PropertyPath"], _text(p.get("ExpectedValue")), _text(p.get("ActualValue")),
                          p.get("DifferenceType", "")) for p in diffs] or [Drift(*base, "", "", "", "")]
        token = page.get("NextToken")
        if not token:
            return out


def detect_drift(cfn, stacks: dict[str, str], sleep: Callable[[float], None] = time.sleep,
                 timeout: float = TIMEOUT_SECONDS) -> list[Drift]:
    """Drifted resources of every stack (`<env>/<file>` -> stack id), in that order."""
    started = {key: cfn.detect_stack_drift(StackName=sid)["StackDriftDetectionId"] for key, sid in stacks.items()}
    for key, detection_id in started.items():
        _wait(cfn, detection_id, key, sleep, timeout)
    return [d for key, sid in stacks.items() for d in _drifts(cfn, key, sid)]


def unsupported(error: Exception) -> bool:
    """Whether a failed drift detection means the endpoint has none (an emulator): moto raises NotImplementedError
    in-process and answers an HTML error page as a server (botocore cannot parse it); others answer an error code
    saying so. Anything else (access denied, throttling) is an AWS error like any other."""
    from botocore.exceptions import ClientError
    from botocore.parsers import ResponseParserError

    if isinstance(error, (NotImplementedError, ResponseParserError)):
        return True
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status == 501 or code in ("NotImplemented", "NotImplementedException", "InvalidAction",
                                         "UnknownOperationException", "UnsupportedOperation")
    return False


def mark_reverted(drifts: list[Drift], touched: set[tuple[str, str]]) -> list[Drift]:
    """Set `reverted` on the drifts of resources this deploy updates or replaces ((stack, logical id))."""
    for d in drifts:
        d.reverted = (d.stack, d.logical_id) in touched
    return drifts
