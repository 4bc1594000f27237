"""deploytools.bootstrap: what is one per account and region, created once and idempotent.

Against moto (mock_aws) where it models the APIs (IAM service-linked roles, API Gateway's account setting, S3);
with botocore's Stubber for what moto cannot show: a role IAM has not propagated yet, and a service-linked
role created meanwhile by someone else.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from deploytools import bootstrap
from generator import aws_facts, names

REGION = "ap-northeast-1"
BUCKET = "video-pipeline-artifacts-123456789012-ap-northeast-1"
REPOSITORY_URI = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{names.processor_repository()}"


@pytest.fixture
def acct(moto_account):
    return moto_account


def test_moto_first_run_creates_every_piece_and_a_second_changes_nothing(acct):
    first = bootstrap.run(acct, BUCKET)
    assert first == [
        f"bootstrap: {aws_facts.ECS_SERVICE_LINKED_ROLE}: created",
        "bootstrap: api-gateway-account: set to "
        f"arn:aws:iam::123456789012:role/{names.api_gateway_logs_role(REGION)}",
        f"bootstrap: artifact-bucket: s3://{BUCKET} created (encrypted, versioned, public access blocked, "
        "TLS-only policy)",
        f"bootstrap: processor-repository: {REPOSITORY_URI} created (immutable tags, scan on push, KMS-encrypted, "
        f"keeps the last {bootstrap.PROCESSOR_IMAGES_KEPT} images)",
        "bootstrap: done",
    ]
    second = bootstrap.run(bootstrap.Account(REGION), BUCKET)
    assert second[-1] == "bootstrap: nothing to change"
    role = f"arn:aws:iam::123456789012:role/{names.api_gateway_logs_role(REGION)}"
    # Every piece says `exists` on a second run, the API Gateway setting included (it used to say `set`).
    assert [line.split(": ")[2] for line in second[:-1]] == ["exists", f"exists ({role})", f"s3://{BUCKET} exists",
                                                           f"{REPOSITORY_URI} exists"]


def test_moto_the_pieces_are_what_aws_needs(acct):
    bootstrap.run(acct, BUCKET)
    iam = boto3.client("iam", region_name=REGION)
    [_slr] = iam.list_roles(PathPrefix="/aws-service-role/ecs.amazonaws.com/")["Roles"]
    role = iam.get_role(RoleName=names.api_gateway_logs_role(REGION))["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "apigateway.amazonaws.com"}
    policy = iam.get_role_policy(RoleName=role["RoleName"], PolicyName="WriteApiLogs")["PolicyDocument"]
    policy = json.loads(policy) if isinstance(policy, str) else policy
    assert policy["Statement"][0]["Resource"] == f"arn:aws:logs:{REGION}:123456789012:log-group:*"
    assert boto3.client("apigateway", region_name=REGION).get_account()["cloudwatchRoleArn"] == role["Arn"]
    s3 = boto3.client("s3", region_name=REGION)
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert "aws:SecureTransport" in s3.get_bucket_policy(Bucket=BUCKET)["Policy"]


def test_moto_the_processor_repository_pins_what_it_holds_and_bounds_it(acct):
    """Protects the image pipeline's guarantees: a tag (the commit) can never be moved to other content, every push
    is scanned, the images are KMS-encrypted, and old images expire while recent ones (rollbacks) stay."""
    bootstrap.run(acct, BUCKET)
    ecr = boto3.client("ecr", region_name=REGION)
    [repo] = ecr.describe_repositories(repositoryNames=[names.processor_repository()])["repositories"]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfiguration"]["encryptionType"] == "KMS"
    lifecycle = json.loads(ecr.get_lifecycle_policy(repositoryName=repo["repositoryName"])["lifecyclePolicyText"])
    [rule] = lifecycle["rules"]
    assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan",
                                 "countNumber": bootstrap.PROCESSOR_IMAGES_KEPT}
    assert rule["action"] == {"type": "expire"}
    # One per account and region, not per environment: what the compute tier's execution role may pull from.
    assert repo["repositoryArn"] == f"arn:aws:ecr:{REGION}:123456789012:repository/video-processing/processor"


def test_moto_a_processor_repository_created_by_a_concurrent_bootstrap_counts_as_existing(acct, monkeypatch):
    ecr = acct.client("ecr")
    real_describe = ecr.describe_repositories
    calls = []

    def describe_after_another_run_created_it(**kwargs):
        if not calls:  # the first look finds nothing; another bootstrap creates it before ours does
            calls.append(1)
            ecr.create_repository(repositoryName=names.processor_repository())
            raise ecr.exceptions.RepositoryNotFoundException(
                {"Error": {"Code": "RepositoryNotFoundException", "Message": "not found"}}, "DescribeRepositories")
        return real_describe(**kwargs)

    monkeypatch.setattr(ecr, "describe_repositories", describe_after_another_run_created_it)
    created, message = bootstrap.ensure_processor_repository(acct)
    assert (created, message) == (False, f"{REPOSITORY_URI} exists (created meanwhile)")


def test_moto_an_api_gateway_setting_naming_another_role_is_left_alone(acct):
    other = "arn:aws:iam::123456789012:role/someone-elses"
    acct.client("apigateway").update_account(patchOperations=[
        {"op": "replace", "path": "/cloudwatchRoleArn", "value": other}])
    assert bootstrap.ensure_api_gateway_account(acct) == (False, f"exists ({other})")


def test_moto_only_one_piece(acct):
    assert bootstrap.run(acct, BUCKET, only=["artifact-bucket"])[0].startswith("bootstrap: artifact-bucket: ")
    assert not bootstrap.ecs_role_exists(acct)


def test_stubber_a_service_linked_role_created_meanwhile_counts_as_existing(acct):
    iam = acct.client("iam")
    with Stubber(iam) as stub:
        stub.add_response("list_roles", {"Roles": []}, {"PathPrefix": "/aws-service-role/ecs.amazonaws.com/"})
        stub.add_client_error("create_service_linked_role", "InvalidInput",
                              "Service role name AWSServiceRoleForECS has been taken in this account, please try "
                              "a different suffix.")
        assert bootstrap.ensure_ecs_role(acct) == (False, "exists (created meanwhile)")


def test_stubber_the_account_setting_waits_for_iam_to_propagate_the_role(acct):
    role_arn = f"arn:aws:iam::123456789012:role/{names.api_gateway_logs_role(REGION)}"
    acct.client("iam").create_role(RoleName=names.api_gateway_logs_role(REGION), AssumeRolePolicyDocument="{}")
    apigw = acct.client("apigateway")
    sleeps: list[float] = []
    with Stubber(apigw) as stub:
        stub.add_response("get_account", {})
        for _ in range(2):
            stub.add_client_error("update_account", "BadRequestException",
                                  "The role ARN does not have required permissions set to API Gateway")
        stub.add_response("update_account", {"cloudwatchRoleArn": role_arn})
        assert bootstrap.ensure_api_gateway_account(acct, sleep=sleeps.append) == (True, f"set to {role_arn}")
    assert sleeps == [bootstrap.PROPAGATION_POLL_S] * 2


def test_stubber_another_error_of_the_account_setting_is_not_retried(acct):
    acct.client("iam").create_role(RoleName=names.api_gateway_logs_role(REGION), AssumeRolePolicyDocument="{}")
    apigw = acct.client("apigateway")
    with Stubber(apigw) as stub:
        stub.add_response("get_account", {})
        stub.add_client_error("update_account", "AccessDeniedException", "no")
        with pytest.raises(Exception, match="AccessDenied"):
            bootstrap.ensure_api_gateway_account(acct, sleep=lambda _: None)


def test_moto_a_service_linked_role_created_by_a_concurrent_bootstrap_counts_as_existing(acct, monkeypatch):
    """Two `./deploy.sh --local` runs bootstrap at once: the second finds no role, then loses the race (moto
    answers EntityAlreadyExists where AWS answers InvalidInput "has been taken")."""
    acct.client("iam").create_service_linked_role(AWSServiceName=bootstrap.ECS_SERVICE)
    monkeypatch.setattr(bootstrap, "ecs_role_exists", lambda account: False)  # it did not exist when looked for
    assert bootstrap.ensure_ecs_role(acct) == (False, "exists (created meanwhile)")


def test_moto_the_logging_role_created_by_a_concurrent_bootstrap_is_used_not_an_error(acct, monkeypatch):
    iam = acct.client("iam")
    name = names.api_gateway_logs_role(REGION)
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    real_get_role = iam.get_role
    calls = []

    def get_role(**kwargs):  # the first look happens before the other bootstrap created the role
        calls.append(kwargs)
        if len(calls) == 1:
            raise iam.exceptions.NoSuchEntityException({"Error": {"Code": "NoSuchEntity"}}, "GetRole")
        return real_get_role(**kwargs)
    monkeypatch.setattr(iam, "get_role", get_role)
    assert bootstrap._ensure_api_gateway_role(acct) == (False, arn)


def test_an_interrupted_bootstrap_names_the_piece_that_may_be_incomplete_and_what_was_done(acct, monkeypatch):
    def interrupted(acct: bootstrap.Account, bucket: str) -> tuple[bool, str]:
        raise KeyboardInterrupt  # Ctrl-C, or SIGTERM through generator.errors.run

    pieces = (bootstrap.PIECES[0], ("api-gateway-account", interrupted), bootstrap.PIECES[2])
    monkeypatch.setattr(bootstrap, "PIECES", pieces)
    with pytest.raises(bootstrap.errors.Interrupted) as e:
        bootstrap.run(acct, BUCKET)
    message = str(e.value)
    assert "while ensuring api-gateway-account, which may now exist incomplete" in message
    assert f"done before: {aws_facts.ECS_SERVICE_LINKED_ROLE}: created" in message
    assert "./deploy.sh --bootstrap again" in message and "artifact-bucket" not in message
