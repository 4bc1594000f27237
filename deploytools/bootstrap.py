"""What is one per AWS account and region, created once, before any environment: `./deploy.sh --bootstrap`.

    python -m deploytools.bootstrap --bucket B [--only PIECE ...]

- the ECS service-linked role `AWSServiceRoleForECS` (one per account): CloudFormation cannot create a cluster
  with capacity providers until it exists, and creating it from a stack fails where it already does;
- API Gateway's CloudWatch role and the account setting naming it (one per account and region): set from every
  environment it raced (429), was checked before IAM had propagated the role, and left a role per stack;
- the artifact bucket `deploy.sh` packages into (encrypted, versioned, private, TLS-only);
- the processor image's ECR repository (`./deploy.sh --push-processor` pushes to it): one per account and region,
  not per environment, because the image is the same for every environment and each deploys it by digest.

Idempotent: each piece is looked up first and created only when missing; a second run prints one line per
piece and "nothing to change". An API Gateway setting that already names another role is left as it is.
Exit status: 0 done, 2 an AWS error (one line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from generator import errors, names
from generator.aws_facts import ECS_SERVICE, ECS_SERVICE_LINKED_ROLE

# IAM propagates a new role within seconds, but not at once: API Gateway refuses a role it cannot assume yet.
# https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
PROPAGATION_TIMEOUT_S = float(os.environ.get("BOOTSTRAP_PROPAGATION_SECONDS", "120"))
PROPAGATION_POLL_S = 5.0
API_GATEWAY_LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogGroups",
                           "logs:DescribeLogStreams", "logs:PutLogEvents")


class Account:
    """boto3 clients for one account and region (credentials and endpoint the usual ways)."""

    def __init__(self, region: str | None = None, session: Any = None) -> None:
        import boto3

        self.session = session or boto3.session.Session(region_name=region)
        self.region = self.session.region_name
        self._clients: dict[str, Any] = {}
        self._identity: dict[str, str] | None = None

    def client(self, service: str) -> Any:
        from botocore.config import Config

        if service not in self._clients:
            # Few retries: an API the local emulator lacks answers 500, which is not worth retrying long.
            self._clients[service] = self.session.client(
                service, config=Config(retries={"mode": "standard", "max_attempts": 3}))
        return self._clients[service]

    @property
    def account_id(self) -> str:
        return self.identity["Account"]

    @property
    def partition(self) -> str:
        return self.identity["Arn"].split(":")[1]

    @property
    def identity(self) -> dict[str, str]:
        if self._identity is None:
            self._identity = self.client("sts").get_caller_identity()
        return self._identity


def error_code(e: Exception) -> str:
    return getattr(e, "response", {}).get("Error", {}).get("Code", "")


# --- ECS service-linked role ------------------------------------------------------------------------------------

def ecs_role_exists(acct: Account) -> bool:
    # By path, not by name: IAM names it AWSServiceRoleForECS (moto 5.2.5 names it AWSServiceRoleForecs).
    roles = acct.client("iam").list_roles(PathPrefix=f"/aws-service-role/{ECS_SERVICE}/")["Roles"]
    return bool(roles)


def ensure_ecs_role(acct: Account) -> tuple[bool, str]:
    if ecs_role_exists(acct):
        return False, "exists"
    try:
        acct.client("iam").create_service_linked_role(AWSServiceName=ECS_SERVICE)
    except Exception as e:
        # Created meanwhile (another bootstrap, or ECS on first use): AWS answers InvalidInput "has been taken in
        # this account"; an emulator (moto 5.2.5) EntityAlreadyExists. Either way the role is there.
        created_meanwhile = (error_code(e) == "InvalidInput" and "taken" in str(e)) \
            or error_code(e) == "EntityAlreadyExists"
        if not created_meanwhile:
            raise
        return False, "exists (created meanwhile)"
    return True, "created"


# --- API Gateway CloudWatch role and account setting ------------------------------------------------------------

def api_gateway_role_arn(acct: Account) -> str | None:
    """The role the region's API Gateway account setting names, or None."""
    return acct.client("apigateway").get_account().get("cloudwatchRoleArn") or None


def _ensure_api_gateway_role(acct: Account) -> tuple[bool, str]:
    iam = acct.client("iam")
    name = names.api_gateway_logs_role(acct.region)
    try:
        return False, iam.get_role(RoleName=name)["Role"]["Arn"]
    except Exception as e:
        if error_code(e) != "NoSuchEntity":
            raise
    trust = {"Version": "2012-10-17", "Statement": [{
        # No aws:SourceAccount: AWS documents this role's trust without it, and a condition API Gateway did not
        # satisfy would silently stop the logging of every REST API in the region.
        "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    try:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
                              Description=f"API Gateway writes the logs of the REST APIs in {acct.region}",
                              Tags=[{"Key": "Project", "Value": names.PROJECT}])["Role"]["Arn"]
    except Exception as e:
        # A concurrent bootstrap created it between the two calls: its run writes the policy, and the account
        # setting below retries until the role works.
        if error_code(e) != "EntityAlreadyExists":
            raise
        return False, iam.get_role(RoleName=name)["Role"]["Arn"]
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "WriteApiLogsInThisRegion", "Effect": "Allow", "Action": list(API_GATEWAY_LOG_ACTIONS),
        "Resource": f"arn:{acct.partition}:logs:{acct.region}:{acct.account_id}:log-group:*"}]}
    iam.put_role_policy(RoleName=name, PolicyName="WriteApiLogs", PolicyDocument=json.dumps(policy))
    return True, arn


def ensure_api_gateway_account(acct: Account, sleep: Callable[[float], None] = time.sleep) -> tuple[bool, str]:
    current = api_gateway_role_arn(acct)
    if current:  # `exists`, as for the other pieces: a second run says so for each (README, bootstrap)
        return False, f"exists ({current})"
    _, role_arn = _ensure_api_gateway_role(acct)
    deadline = time.monotonic() + PROPAGATION_TIMEOUT_S
    while True:
        try:
            acct.client("apigateway").update_account(patchOperations=[
                {"op": "replace", "path": "/cloudwatchRoleArn", "value": role_arn}])
            return True, f"set to {role_arn}"
        except Exception as e:
            # "The role ARN does not have required permissions set to API Gateway": not propagated yet.
            # TooManyRequests: another account-level change at the same moment.
            if error_code(e) not in ("BadRequestException", "TooManyRequestsException") \
                    or time.monotonic() >= deadline:
                raise
            sleep(PROPAGATION_POLL_S)


# --- artifact bucket --------------------------------------------------------------------------------------------

def bucket_exists(acct: Account, bucket: str) -> bool:
    try:
        acct.client("s3").head_bucket(Bucket=bucket)
        return True
    except Exception as e:
        if error_code(e) in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise


def ensure_bucket(acct: Account, bucket: str) -> tuple[bool, str]:
    if bucket_exists(acct, bucket):
        return False, f"s3://{bucket} exists"
    s3 = acct.client("s3")
    location = {} if acct.region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": acct.region}}
    try:
        s3.create_bucket(Bucket=bucket, **location)
    except Exception as e:
        if error_code(e) != "BucketAlreadyOwnedByYou":  # a concurrent run created it: ours, configured the same
            raise
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    # TLS only; not over a plain-http local endpoint, which could then not use its own bucket.
    if os.environ.get("AWS_ENDPOINT_URL", "https://").startswith("https://"):
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [f"arn:{acct.partition}:s3:::{bucket}", f"arn:{acct.partition}:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    return True, f"s3://{bucket} created (encrypted, versioned, public access blocked, TLS-only policy)"


# --- processor image repository ---------------------------------------------------------------------------------

# Images kept: a digest a stack still names must stay pullable (a rollback, a task retried after a new push), so
# the lifecycle keeps the last PROCESSOR_IMAGES_KEPT pushes, far more than environments times rollbacks.
PROCESSOR_IMAGES_KEPT = 30


def processor_repository_lifecycle() -> str:
    # https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html
    return json.dumps({"rules": [{
        "rulePriority": 1, "description": f"keep the last {PROCESSOR_IMAGES_KEPT} images",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": PROCESSOR_IMAGES_KEPT},
        "action": {"type": "expire"}}]})


def ensure_processor_repository(acct: Account) -> tuple[bool, str]:
    ecr = acct.client("ecr")
    name = names.processor_repository()
    try:
        uri = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryUri"]
        return False, f"{uri} exists"
    except Exception as e:
        if error_code(e) != "RepositoryNotFoundException":
            raise
    try:
        # Immutable tags: a tag (the commit) names one image forever. Scan on push: ECR's basic scan of the OS
        # packages (ffmpeg, Debian's libraries). KMS with ECR's AWS managed key: ECR holds the grants, so the
        # task's execution role needs no KMS permission to pull.
        # https://docs.aws.amazon.com/AmazonECR/latest/userguide/encryption-at-rest.html
        uri = ecr.create_repository(
            repositoryName=name, imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True}, encryptionConfiguration={"encryptionType": "KMS"},
            tags=[{"Key": "Project", "Value": names.PROJECT}])["repository"]["repositoryUri"]
    except Exception as e:
        if error_code(e) != "RepositoryAlreadyExistsException":  # a concurrent run: it sets the lifecycle too
            raise
        uri = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryUri"]
        return False, f"{uri} exists (created meanwhile)"
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=processor_repository_lifecycle())
    return True, (f"{uri} created (immutable tags, scan on push, KMS-encrypted, keeps the last "
                  f"{PROCESSOR_IMAGES_KEPT} images)")


# (name, ensure(account, bucket)) in the order they are created.
PIECES: tuple[tuple[str, Callable[[Account, str], tuple[bool, str]]], ...] = (
    (ECS_SERVICE_LINKED_ROLE, lambda acct, _bucket: ensure_ecs_role(acct)),
    ("api-gateway-account", lambda acct, _bucket: ensure_api_gateway_account(acct)),
    ("artifact-bucket", ensure_bucket),
    ("processor-repository", lambda acct, _bucket: ensure_processor_repository(acct)),
)


def run(acct: Account, bucket: str, only: list[str] | None = None) -> list[str]:
    """Ensure every piece (or the ones named); one line each, then whether anything changed."""
    lines: list[str] = []
    changed = False
    for name, ensure in PIECES:
        if only and name not in only:
            continue
        try:
            created, message = ensure(acct, bucket)
        except KeyboardInterrupt:  # a piece is a few calls: say which one may be half made
            done = "; ".join(line.removeprefix("bootstrap: ") for line in lines) or "nothing"
            raise errors.Interrupted(
                f"bootstrap stopped while ensuring {name}, which may now exist incomplete (a bucket without its "
                "encryption or policy, a role without its policy): check it, or delete it, then run ./deploy.sh "
                f"--bootstrap again; done before: {done}") from None
        changed = changed or created
        lines.append(f"bootstrap: {name}: {message}")
    lines.append("bootstrap: done" if changed else "bootstrap: nothing to change")
    return lines


def _main(argv: list[str]) -> int:
    from deploytools.cfn import aws_errors_as_pipeline_errors

    p = argparse.ArgumentParser(prog="python -m deploytools.bootstrap", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bucket", required=True, help="the artifact bucket")
    p.add_argument("--region", help="default: the session's (AWS_REGION, the profile)")
    p.add_argument("--only", action="append", choices=[name for name, _ in PIECES], help="only this piece")
    a = p.parse_args(argv)

    def go(a: argparse.Namespace) -> int:
        print("\n".join(run(Account(a.region), a.bucket, a.only)))
        return errors.EXIT_OK
    return aws_errors_as_pipeline_errors(go, a)


def main(argv: list[str] | None = None) -> int:
    return errors.run(_main, sys.argv[1:] if argv is None else argv, "deploytools.bootstrap",
                      interrupted="not while ensuring a piece: run ./deploy.sh --bootstrap again to see each")


if __name__ == "__main__":
    sys.exit(main())
