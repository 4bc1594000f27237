"""Each CloudFormation workaround of deploytools.moto_layer is still needed (unpatched moto misbehaves) and
still works (patched moto doesn't).

When a moto upgrade fixes a behaviour, the `still_needed` case fails: delete that workaround.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploytools.moto_layer import MOTO_VERSION, cloudformation

ROOT = Path(__file__).resolve().parent.parent
NAMES = [w.__name__ for w in cloudformation.WORKAROUNDS]


def _probe(*args: str) -> dict[str, bool]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "moto_probe.py"), *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def unpatched() -> dict[str, bool]:
    return _probe()


@pytest.fixture(scope="module")
def patched() -> dict[str, bool]:
    return _probe("--patched")


def test_every_workaround_is_probed(unpatched):
    assert sorted(unpatched) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_still_needed(unpatched, name):
    assert unpatched[name] is False, f"moto now does this right: remove the workaround {name}"


@pytest.mark.parametrize("name", NAMES)
def test_fixed_by_workaround(patched, name):
    assert patched[name] is True


def test_every_workaround_says_why():
    for w in cloudformation.WORKAROUNDS:
        assert f"moto {MOTO_VERSION}" in (w.__doc__ or ""), w.__name__


# A stack whose rollback cannot delete its VPC in moto (something of its network stays behind).
LEAKY_VPC = {
    "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
    "RouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
    "Endpoint": {"Type": "AWS::EC2::VPCEndpoint", "Properties": {
        "VpcId": {"Ref": "Vpc"}, "ServiceName": "com.amazonaws.ap-northeast-1.s3",
        "RouteTableIds": [{"Ref": "RouteTable"}]}},
    "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"CidrBlock": "10.0.0.0/24", "VpcId": {"Ref": "Vpc"}}},
    "Igw": {"Type": "AWS::EC2::InternetGateway"},
    "Attachment": {"Type": "AWS::EC2::VPCGatewayAttachment",
                   "Properties": {"VpcId": {"Ref": "Vpc"}, "InternetGatewayId": {"Ref": "Igw"}}},
    "Eip": {"Type": "AWS::EC2::EIP", "Properties": {"Domain": "vpc"}},
    "Nat": {"Type": "AWS::EC2::NatGateway", "Properties": {
        "SubnetId": {"Ref": "Subnet"}, "AllocationId": {"Fn::GetAtt": ["Eip", "AllocationId"]}}},
    "Queue": {"Type": "AWS::SQS::Queue", "DependsOn": ["Nat", "Attachment", "Endpoint"],
              "Properties": {"QueueName": "bad name!"}},
}

ROLLBACK_PROBE = """
import json, os, sys, boto3
from moto import mock_aws
from deploytools.moto_layer import cloudformation
os.environ.update(AWS_ACCESS_KEY_ID="t", AWS_SECRET_ACCESS_KEY="t", AWS_DEFAULT_REGION="ap-northeast-1")
cloudformation.apply_all()
with mock_aws():
    cfn = boto3.client("cloudformation")
    cs = cfn.create_change_set(StackName="leaky", ChangeSetName="c", ChangeSetType="CREATE",
                               TemplateBody=json.dumps({"Resources": json.loads(sys.argv[1])}))
    cfn.execute_change_set(ChangeSetName=cs["Id"])
    stack = cfn.describe_stacks(StackName="leaky")["Stacks"][0]
    events = cfn.describe_stack_events(StackName="leaky")["StackEvents"]
    resources = cfn.list_stack_resources(StackName="leaky")["StackResourceSummaries"]
    vpcs = [v["VpcId"] for v in boto3.client("ec2").describe_vpcs()["Vpcs"] if not v["IsDefault"]]
    print(json.dumps({"status": stack["StackStatus"], "reason": events[0].get("ResourceStatusReason"),
                      "resources": [r["LogicalResourceId"] for r in resources], "vpcs": vpcs}))
"""


def test_a_rollback_that_cannot_delete_everything_ends_rollback_failed_naming_what_is_left():
    """AWS ends ROLLBACK_FAILED when a rollback cannot delete a resource; ROLLBACK_COMPLETE would claim the
    VPC that is still there is gone."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", ROLLBACK_PROBE, json.dumps(LEAKY_VPC)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["vpcs"], "the probe's VPC must really be left behind by moto"
    assert result["status"] == "ROLLBACK_FAILED"
    assert result["reason"].startswith("The following resource(s) failed to delete: [Vpc].")
    assert result["resources"] == ["Vpc"], "the stack still lists what is left, and only that"
