"""Issue #21, defects 1-6: what a real account refuses or mishandles in the new tiers and the emulator cannot show,
one regression test (or a few) per defect. Each docstring says how the test fails on the code before the fix.
The AWS page behind each rule is cited next to the fix in the generator.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from deploytools import smoke
from deploytools.moto_layer import stepfunctions as moto_sfn_layer
from generator import config, render, state_machine
from generator.__main__ import main as generator_main
from generator.errors import ConfigError, TemplateError
from generator.functions.db_bootstrap import handler as bootstrap
from generator.functions.video_jobs import contract
from generator.tiers import network

from conftest import as_list, each_resource, one_resource, sources
from moto_sfn import generated_definition, run_execution
from state_paths import paths_from

ENVS = ("dev", "staging", "prod")
DOCS = Path(__file__).resolve().parent.parent / "docs"
ACCOUNT, PARTITION = "123456789012", "aws"


def evaluate(value, region: str):
    """A template value with only pseudo parameters in it (Ref, Fn::Sub, Fn::Join, Fn::Split), as CloudFormation
    evaluates it in `region`."""
    pseudo = {"AWS::Region": region, "AWS::AccountId": ACCOUNT, "AWS::Partition": PARTITION}
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [evaluate(v, region) for v in value]
    [(function, argument)] = value.items()
    if function == "Ref":
        return pseudo[argument]
    if function == "Fn::Join":
        delimiter, parts = argument
        return delimiter.join(evaluate(parts, region))
    if function == "Fn::Split":
        delimiter, text = argument
        return evaluate(text, region).split(delimiter)
    if function == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        names = {**pseudo, **{k: evaluate(v, region) for k, v in variables.items()}}
        return re.sub(r"\$\{([^}!]+)\}", lambda m: names[m.group(1)], text)
    raise AssertionError(f"not a pseudo-parameter expression: {value}")


def endpoints(templates, env: str, kind: str) -> dict[str, dict]:
    return {logical_id: r["Properties"]
            for _l, e, _t, logical_id, r in each_resource(templates, "AWS::EC2::VPCEndpoint")
            if e == env and r["Properties"]["VpcEndpointType"] == kind}


# --- 1. The custom-resource response bucket ------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize(("region", "bucket"), [("us-west-2", "cloudformation-custom-resource-response-uswest2"),
                                                ("ap-northeast-1",
                                                 "cloudformation-custom-resource-response-apnortheast1")])
def test_1_the_s3_endpoint_admits_the_response_put_to_the_bucket_named_after_the_region_without_dashes(
        templates, env, region, bucket):
    """The bootstrap PUTs its answer to a URL on `cloudformation-custom-resource-response-<region without dashes>`
    through the S3 gateway. Before the fix the policy named `...-${AWS::Region}` (`...-us-west-2`), a bucket that
    does not exist: the PUT was denied and the first deploy waited for the service timeout and failed."""
    [s3] = [p for p in endpoints(templates, env, "Gateway").values() if p["ServiceName"]["Fn::Sub"].endswith(".s3")]
    puts = [evaluate(resource, region) for s in s3["PolicyDocument"]["Statement"]
            if s["Effect"] == "Allow" and "s3:PutObject" in as_list(s["Action"])
            for resource in as_list(s["Resource"]) if resource != "*"]
    assert puts == [f"arn:aws:s3:::{bucket}/*"]


# --- 2. Gateway endpoint principals ---------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_2_gateway_endpoints_name_their_principals_by_condition_never_by_an_account_root(templates, env):
    """For a gateway endpoint an account-root principal means the root user alone: every job-control call to
    DynamoDB was denied (POST /videos 500). Before the fix the DynamoDB statement and the S3 statement for the
    account's buckets had `Principal: {"AWS": [...:root]}`; now "*" with `aws:PrincipalAccount`."""
    gateways = endpoints(templates, env, "Gateway")
    assert len(gateways) == 2, "S3 and DynamoDB"
    for logical_id, properties in gateways.items():
        for s in properties["PolicyDocument"]["Statement"]:
            assert s["Principal"] == "*", f"{logical_id} {s['Sid']}: a gateway endpoint principal other than *"
            if s["Sid"].startswith("AwsOwned"):
                continue  # URLs AWS signs: no principal of this account can be required (the S3 rule checks them)
            assert s["Condition"]["StringEquals"]["aws:PrincipalAccount"] == {"Ref": "AWS::AccountId"}, logical_id


@pytest.mark.parametrize("env", ["prod"])
def test_2_interface_endpoints_keep_the_account_root_which_means_every_principal_of_the_account(templates, env):
    """For an interface endpoint the account root is every principal of the account (unlike a gateway's)."""
    interfaces = endpoints(templates, env, "Interface")
    assert interfaces
    for logical_id, properties in interfaces.items():
        for s in properties["PolicyDocument"]["Statement"]:
            assert ":root" in json.dumps(s["Principal"]), logical_id
            assert s["Condition"]["StringEquals"]["aws:PrincipalAccount"] == {"Ref": "AWS::AccountId"}, logical_id


# --- 3. The Redis token needs the replication group's id ------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_3_the_container_gets_the_id_of_the_replication_group_its_task_role_may_connect_to(templates, env):
    """The IAM token is a presigned `connect` for the replication group's id and the user; the task got the host
    only. Before the fix no environment variable carried the id: the processor could not sign in to Redis."""
    [container] = one_resource(templates[env]["workflow"], "AWS::ECS::TaskDefinition")["Properties"][
        "ContainerDefinitions"]
    environment = {e["Name"]: e["Value"] for e in container["Environment"]}
    group = sources(templates, env, "workflow", environment["REDIS_REPLICATION_GROUP_ID"])
    assert group == {("cache", "CacheReplicationGroup")}
    role = templates[env]["compute"]["Resources"]["TaskRole"]["Properties"]
    connect = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]
               if "elasticache:Connect" in as_list(s["Action"])]
    assert connect and all(group <= sources(templates, env, "compute", s["Resource"]) for s in connect)


def test_3_the_container_contract_table_documents_every_variable_the_task_definition_sets(templates):
    """docs/processor.md is what the image's author reads: a variable missing there is one nobody reads."""
    [container] = one_resource(templates["dev"]["workflow"], "AWS::ECS::TaskDefinition")["Properties"][
        "ContainerDefinitions"]
    text = (DOCS / "processor.md").read_text(encoding="utf-8").split("## Container contract", 1)[1].split("\n## ")[0]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", text))
    assert {e["Name"] for e in container["Environment"]} - documented == set()


# --- 4. No null in any template; each video notified once --------------------------------------------------------

def test_4_no_template_contains_a_null(templates):
    """`"ResultPath": null` was in every workflow template: the emulator dropped it, so NotifyFailure replaced
    its input, the Fail state's CausePath failed with States.Runtime and the scheduler notified a second time."""
    found = {f"{env}/{tier}.json": render.null_paths(body) for env, tiers in templates.items()
             for tier, body in tiers.items()}
    assert {label: paths for label, paths in found.items() if paths} == {}


def test_4_generation_refuses_a_template_with_a_null_naming_the_template_and_its_path(monkeypatch, tmp_path,
                                                                                    capsys):
    """The old definition (`"ResultPath": null` in the notifying states) is refused before anything is written,
    in one line that names the template and the JSON path. Before the fix it was written as it was."""
    monkeypatch.setattr(state_machine, "NOTIFY_RESULT_PATH", None)
    expected = (r"^dev/workflow\.json: null at \$\.Resources\.StateMachine\.Properties\.Definition\.States"
                r"\.Notify(Success|Failure|InvalidMedia)\.ResultPath \(and 2 more\)")
    with pytest.raises(TemplateError, match=expected):
        render.render_environment(config.get("dev"))
    out = tmp_path / "out"
    assert generator_main(["--out", str(out)]) == 2
    assert "null at $.Resources.StateMachine" in capsys.readouterr().err
    assert not out.exists() or not any(out.rglob("*.json")), "nothing written"


def test_4_null_paths_names_keys_that_are_not_identifiers_in_brackets():
    assert render.null_paths({"a": [{"Message.$": None}], "b": 1, "c": {"d": None}}) == [
        "$.a[0]['Message.$']", "$.c.d"]


def drop_nulls(value):
    """What the emulator stores of a Definition: every null key gone."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


@pytest.mark.slow  # runs the state machine in moto's interpreter (seconds)
def test_4_a_failed_video_is_notified_once_and_ends_with_the_notified_failure_even_as_the_emulator_stores_it(
        templates):
    """Run in moto's interpreter as the emulator stores the definition (nulls dropped). Before the fix the
    notification replaced the input, the execution ended States.Runtime, and job control notified again."""
    result = run_execution(drop_nulls(generated_definition(templates)), {"videoId": "v1"}, task_exit_code=1)
    assert (result.status, result.error) == ("FAILED", contract.NOTIFIED_FAILURE)
    assert [m.message["videoId"] for m in result.messages["error"]] == ["v1"]
    assert result.messages["completion"] == []
    assert json.loads(result.cause)["error"] == "States.TaskFailed", "the task's error, not the failure path's"


ERROR_TOPIC = "video-processing-error-dev"


@pytest.fixture
def inbox():
    """The smoke's Inbox on an error topic in moto, and a function that publishes a notice for a video there."""
    with mock_aws():
        sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name=ERROR_TOPIC)["TopicArn"]
        box = smoke.Inbox(sns, sqs, boto3.client("events", region_name="us-east-1"))
        box.open([topic], json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"]}))

        def publish(video_id: str) -> None:
            sns.publish(TopicArn=topic, Subject="Video Processing Error", Message=json.dumps({"videoId": video_id}))

        box.publish = publish  # type: ignore[attr-defined]
        yield box
        box.close()


def test_4_the_smoke_fails_when_a_video_is_notified_twice_or_never(inbox):
    """Before the fix the smoke took the first message naming the video and said ok: a second notice (the
    duplicate of defect 4) went unseen."""
    for video_id in ("twice", "twice", "once"):
        inbox.publish(video_id)
    inbox.settle(0.3)
    inbox.poll()  # received again (a redelivery would be): each SNS message counts once
    videos = {"failure": "twice", "success": "once", "other": "never"}
    assert smoke.notices_wrong(videos, inbox) == [
        "failure: video twice was notified 2 times, expected once",
        "other: video never was notified 0 times, expected once"]


def test_4_the_smoke_fails_when_a_video_ends_with_another_error_than_the_one_it_expects(monkeypatch, inbox):
    """The duplicate's other sign: the job ends with the failure path's own error (States.Runtime), not the
    task's. Before the fix only the status (FAILED) was compared."""
    answers = {"POST": (202, {"status": "QUEUED"}),
               "GET": (200, {"status": "FAILED", "lastError": {"error": "States.Runtime", "cause": "..."}})}
    monkeypatch.setattr(smoke, "call_api", lambda method, resource, **_: answers[method])
    monkeypatch.setattr(smoke, "reconcile_tick", lambda environment: None)
    monkeypatch.setattr(smoke, "upload", lambda video_id, body: ([], "sources/fail-x"))
    monkeypatch.setattr(smoke, "call_scheduler", lambda environment, event: None)
    monkeypatch.setattr(inbox, "wait_for_arrival", lambda key, deadline: [{"detail": {"object": {"key": key}}}])
    inbox.publish("fail-x")
    outputs = {"ErrorTopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:{ERROR_TOPIC}"}
    wrong = smoke.run_case(smoke.CASES["failure"], "fail-x", b"video", outputs, inbox, 1.0, {}, [])
    assert wrong == ["failure: the job ended with error States.Runtime, expected States.TaskFailed"]


# --- 5. A capacity requeue is no failed execution -------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_5_every_execution_that_ends_failed_is_a_video_that_failed_and_was_notified(templates, env):
    """The executions-failed alarm (ExecutionsFailed > 0) pages for every Fail state reached. Before the fix the
    capacity path ended in the Fail state AwaitCapacity, with no notice: each requeue paged."""
    definition = one_resource(templates[env]["workflow"], "AWS::StepFunctions::StateMachine")["Properties"][
        "Definition"]
    states = definition["States"]
    notifiers = {n for n, s in states.items() if s.get("Resource") == "arn:aws:states:::sns:publish"
                 and s["Parameters"]["TopicArn"] == "${ErrorTopicArn}"}
    failed = [p for p in paths_from(states, definition["StartAt"]) if states[p[-1]]["Type"] == "Fail"]
    assert failed
    assert [p for p in failed if len(notifiers & set(p)) != 1] == []
    assert all(s.get("Error") != contract.CAPACITY_UNAVAILABLE for s in states.values())


@pytest.mark.slow  # runs the state machine in moto's interpreter (seconds)
def test_5_a_capacity_shortage_succeeds_with_the_outcome_job_control_requeues(templates, monkeypatch):
    """RunTask throttled past its retries: the execution succeeds (not counted by ExecutionsFailed) with the
    outcome CapacityUnavailable and nobody is notified. Before the fix it ended FAILED."""
    monkeypatch.setattr(moto_sfn_layer, "ecs_run_task_error",
                        functools.partial(moto_sfn_layer.ecs_run_task_error, code="ThrottlingException",
                                          message="Rate exceeded"))
    result = run_execution(generated_definition(templates), {"videoId": "v1", "attempt": 1}, run_task_fails=True)
    assert result.status == "SUCCEEDED"
    assert result.output[contract.OUTCOME] == contract.CAPACITY_UNAVAILABLE
    assert result.output["videoId"] == "v1" and result.output["error"]["Error"] == "ECS.ThrottlingException"
    assert result.messages == {"completion": [], "error": []}


# --- 6. Smaller ones ------------------------------------------------------------------------------------------

EVENT = {"StackId": "arn:aws:cloudformation:ap-northeast-1:123456789012:stack/video-pipeline-prod-SchemaStack/"
                    + "0" * 36, "RequestId": "0" * 36, "LogicalResourceId": "DatabaseBootstrap",
         "ResponseURL": "https://cloudformation-custom-resource-response-apnortheast1.s3.amazonaws.com/x"}


@pytest.mark.parametrize("reason", ["é" * 3000, "😀" * 3000, "x" * 5000, "ok"])
def test_6_the_bootstrap_response_fits_cloudformations_4096_bytes_whatever_the_reason(reason):
    """json.dumps escapes a non-ASCII character to 6 bytes (12 for one outside the BMP). Before the fix the
    reason was cut at 3,000 characters: 18,000+ bytes, over the limit, and CloudFormation never read it."""
    body = bootstrap.response_body(EVENT, "FAILED", reason, "videoprocessing/video_processor")
    assert len(body) <= bootstrap.RESPONSE_LIMIT == 4096
    sent = json.loads(body)["Reason"]
    if len(json.dumps({**EVENT, "Reason": reason}).encode()) < 3500:
        assert sent == reason, "a reason that fits is sent whole"
    else:
        assert sent.endswith(bootstrap.REASON_CUT) and reason.startswith(sent.removesuffix(bootstrap.REASON_CUT))
        assert len(body) > bootstrap.RESPONSE_LIMIT - 12, "cut no more than it must"


def test_6_the_bootstrap_handler_puts_the_fitted_response(monkeypatch):
    sent = []

    class Answer:
        def __enter__(self):
            return self

        def __exit__(self, *_):
            return False

        def read(self):
            return b""

    def urlopen(request, timeout):
        sent.append(request.data)
        return Answer()

    monkeypatch.setattr(bootstrap.urllib.request, "urlopen", urlopen)

    def refuse(props):
        raise RuntimeError("接続できません " * 500)

    bootstrap.handler({**EVENT, "RequestType": "Create", "ResourceProperties": {
        "DatabaseName": "videoprocessing", "AppRole": "video_processor", "AppSchema": "video_processing"}},
        None, connect_to=refuse)
    [body] = sent
    assert len(body) <= 4096 and json.loads(body)["Status"] == "FAILED"


INTERFACE_NO_RESOURCE_TYPE = {"ecr:GetAuthorizationToken", "sts:GetCallerIdentity"}


def test_6_interface_endpoint_policies_name_resources_except_for_actions_without_a_resource_type(templates):
    """Before the fix every interface endpoint statement allowed its actions on Resource "*"; the state machine
    and the processor's log group are this environment's and are named."""
    interfaces = endpoints(templates, "prod", "Interface")
    assert interfaces
    star = {a for p in interfaces.values() for s in p["PolicyDocument"]["Statement"] if "*" in as_list(s["Resource"])
            for a in as_list(s["Action"])}
    assert star <= INTERFACE_NO_RESOURCE_TYPE
    states_resources = [evaluate(r, "ap-northeast-1") for s in interfaces["StatesEndpoint"]["PolicyDocument"][
        "Statement"] for r in s["Resource"]]
    machine = "video-processing-workflow-prod"
    assert states_resources == [f"arn:aws:states:ap-northeast-1:{ACCOUNT}:stateMachine:{machine}",
                                f"arn:aws:states:ap-northeast-1:{ACCOUNT}:execution:{machine}:*"]
    logs = [evaluate(r, "ap-northeast-1") for s in interfaces["LogsEndpoint"]["PolicyDocument"]["Statement"]
            for r in s["Resource"]]
    assert all(":log-group:/video-processing/prod/processor" in r for r in logs)
    assert set(network.UNSCOPABLE_ENDPOINT_ACTIONS) == INTERFACE_NO_RESOURCE_TYPE


def test_6_a_connections_alarm_above_what_the_instance_class_allows_is_refused(tmp_path, capsys):
    """A db.t4g.micro (about 112 connections at most) with prod's db_max_connections 700 gave an alarm that could
    never fire. Before the fix it was generated."""
    with pytest.raises(ConfigError, match=r"^prod: invalid db_max_connections 700; accepted: 1-111 connections for "
                                          r"db_instance_class db\.t4g\.micro"):
        config.override(config.get("prod"), db_instance_class="db.t4g.micro")
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({"prod": {"db_instance_class": "db.t4g.micro"}}))
    assert generator_main(["--config", str(overrides), "--out", str(tmp_path / "out")]) == 2
    assert "can never fire" in capsys.readouterr().err
    # the shipped settings fit their classes (config.ENVIRONMENTS is built at import), and a fitting override renders
    render.render_environment(config.override(config.get("prod"), db_instance_class="db.t4g.micro",
                                              db_max_connections=100))
