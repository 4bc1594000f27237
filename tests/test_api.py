"""api: an IAM-authorised regional REST API and the function that starts and reports executions."""

from __future__ import annotations

import json
import re

import pytest

from generator import config
from generator.blocks import LimitError
from generator.functions import video_api
from generator.tiers import api

from conftest import one_resource, resources_of_type, statements

ENVS = ("dev", "staging", "prod")


def resources(templates, env="dev") -> dict:
    return templates[env]["api"]["Resources"]


def props(templates, title, env="dev") -> dict:
    return resources(templates, env)[title]["Properties"]


def test_function_is_the_repository_handler_inlined_on_current_python_arm64_with_active_tracing(templates):
    f = props(templates, "Function")
    assert f["Code"] == {"ZipFile": api.handler_source()}
    assert f["Handler"] == "index.lambda_handler" and callable(video_api.lambda_handler)
    assert (f["Runtime"], f["Architectures"], f["TracingConfig"]) == ("python3.14", ["arm64"], {"Mode": "Active"})
    assert f["Environment"] == {"Variables": {"STATE_MACHINE_ARN": {"Ref": "StateMachineArn"}}}
    assert f["Timeout"] < 29  # API Gateway gives up on the integration after 29 seconds


def test_handler_fits_the_inline_code_limit_and_a_larger_one_fails_generation_by_name():
    assert len(api.handler_source()) <= api.INLINE_CODE_LIMIT == 4096
    with pytest.raises(LimitError) as e:
        api.inline_code("x" * 4097)
    assert str(e.value).startswith("video_api.py: 4097 characters exceeds the inline code limit of 4096")


def test_a_handler_too_large_to_inline_stops_generation_before_anything_is_written(monkeypatch, tmp_path, capsys):
    from generator import __main__ as cli

    monkeypatch.setattr(api, "INLINE_CODE_LIMIT", 100)
    assert cli.main(["--out", str(tmp_path)]) == cli.EXIT_USAGE
    assert "video_api.py" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_the_handler_ships_in_the_installed_package():
    import configparser

    from setuptools import find_packages

    from conftest import REPO

    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    include = setup["options.packages.find"]["include"].replace(",", " ").split()
    assert "generator.functions" in find_packages(where=str(REPO), include=include)


@pytest.mark.parametrize("env", ENVS)
def test_function_logs_to_its_own_encrypted_group_with_the_environments_retention(templates, env):
    f = props(templates, "Function", env)
    assert f["FunctionName"] == f"video-processing-api-{env}"
    assert f["LoggingConfig"] == {"LogGroup": {"Ref": "FunctionLogGroup"}}
    group = props(templates, "FunctionLogGroup", env)
    assert group["LogGroupName"] == f"/aws/lambda/video-processing-api-{env}"
    assert group["RetentionInDays"] == config.get(env).log_retention_days
    assert group["KmsKeyId"] == {"Fn::GetAtt": ["ApiLogsKey", "Arn"]}


def test_function_runs_in_the_private_subnets_behind_the_api_function_group(templates):
    assert props(templates, "Function")["VpcConfig"] == {
        "SubnetIds": {"Ref": "PrivateSubnetIds"}, "SecurityGroupIds": [{"Ref": "ApiFunctionSecurityGroupId"}]}


def test_logs_key_serves_exactly_the_two_api_log_groups(templates):
    policy = props(templates, "ApiLogsKey")["KeyPolicy"]
    [logs] = [s for s in statements(policy) if s["Sid"] == "CloudWatchLogsEncryptsTheseLogGroups"]
    groups = logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
    assert [g["Fn::Sub"].rsplit("log-group:", 1)[1] for g in groups] == [
        "/aws/lambda/video-processing-api-dev", "/video-processing/dev/api-access"]


EXPECTED_FUNCTION_POLICY = [
    ("StartProcessing", ["states:StartExecution"], [{"Ref": "StateMachineArn"}]),
    ("DescribeProcessingExecutions", ["states:DescribeExecution"],
     [{"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${StateMachineName}:*"}]),
    ("WriteFunctionLogs", ["logs:CreateLogStream", "logs:PutLogEvents"],
     [{"Fn::Sub": ["${Group}:log-stream:*", {"Group": {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:"
                                                                  "${AWS::AccountId}:log-group:"
                                                                  "/aws/lambda/video-processing-api-dev"}}]}]),
    ("TraceWithXRay", ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], ["*"]),
    ("AttachToPrivateSubnets", ["ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface",
                                "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces",
                                "ec2:DescribeSubnets", "ec2:UnassignPrivateIpAddresses"], ["*"]),
]


def test_function_role_starts_and_describes_only_this_state_machines_executions(templates):
    role = props(templates, "FunctionRole")
    [policy] = role["Policies"]
    actual = [(s["Sid"], s["Action"], s["Resource"]) for s in statements(policy["PolicyDocument"])]
    assert actual == EXPECTED_FUNCTION_POLICY
    assert all(s["Effect"] == "Allow" and "Condition" not in s for s in statements(policy["PolicyDocument"]))
    assert statements(role["AssumeRolePolicyDocument"])[0]["Principal"] == {"Service": ["lambda.amazonaws.com"]}
    assert "ManagedPolicyArns" not in role


def test_rest_api_is_regional(templates):
    rest_api = props(templates, "Api")
    assert rest_api["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert rest_api["Name"] == "video-processing-api-dev"


def test_routes_are_post_videos_and_get_videos_by_id(templates):
    r = resources(templates)
    assert props(templates, "VideosResource")["PathPart"] == "videos"
    assert props(templates, "VideosResource")["ParentId"] == {"Fn::GetAtt": ["Api", "RootResourceId"]}
    assert props(templates, "VideoResource") == {"ParentId": {"Ref": "VideosResource"}, "PathPart": "{videoId}",
                                                 "RestApiId": {"Ref": "Api"}}
    methods = {(m["Properties"]["HttpMethod"], m["Properties"]["ResourceId"]["Ref"])
               for m in resources_of_type(templates["dev"]["api"], "AWS::ApiGateway::Method").values()}
    assert methods == {("POST", "VideosResource"), ("GET", "VideoResource")}
    assert r["GetVideoMethod"]["Properties"]["RequestParameters"] == {"method.request.path.videoId": True}


def test_every_method_requires_iam_and_proxies_to_the_function(templates):
    methods = resources_of_type(templates["dev"]["api"], "AWS::ApiGateway::Method")
    assert len(methods) == 2
    for m in methods.values():
        assert m["Properties"]["AuthorizationType"] == "AWS_IAM"
        integration = m["Properties"]["Integration"]
        assert (integration["Type"], integration["IntegrationHttpMethod"]) == ("AWS_PROXY", "POST")
        assert "${Function.Arn}" in integration["Uri"]["Fn::Sub"]


def test_submit_body_is_validated_by_a_model_with_the_handlers_rule(templates):
    submit = props(templates, "SubmitVideoMethod")
    assert submit["RequestModels"] == {"application/json": {"Ref": "SubmitVideoModel"}}
    assert submit["RequestValidatorId"] == {"Ref": "RequestValidator"}
    assert props(templates, "RequestValidator")["ValidateRequestBody"] is True
    schema = json.loads(props(templates, "SubmitVideoModel")["Schema"])
    assert schema["required"] == ["videoId"] and schema["additionalProperties"] is False
    video_id = schema["properties"]["videoId"]
    assert (video_id["type"], video_id["minLength"], video_id["maxLength"]) == ("string", 1, 80)
    # The model's pattern and the handler accept exactly the same ids.
    for candidate in ("a", "clip-1_A", "v" * 80, "", "v" * 81, "clip 1", "clip/1", "vid\u00e9o", "clip.mp4"):
        by_model = bool(re.fullmatch(video_id["pattern"].strip("^$"), candidate)) and 1 <= len(candidate) <= 80
        assert by_model == (video_api.video_id_error(candidate) is None), candidate


def test_a_body_the_model_rejects_answers_400_with_a_json_message_stating_the_rule(templates):
    response = props(templates, "BadRequestBodyResponse")
    assert (response["ResponseType"], response["StatusCode"]) == ("BAD_REQUEST_BODY", "400")
    message = json.loads(response["ResponseTemplates"]["application/json"])["message"]
    assert "videoId" in message and "1-80 letters, digits, '-' or '_'" in message


def test_lambda_may_be_invoked_only_by_this_api_on_its_two_routes(templates):
    permissions = resources_of_type(templates["dev"]["api"], "AWS::Lambda::Permission")
    arns = sorted(p["Properties"]["SourceArn"]["Fn::Sub"] for p in permissions.values())
    prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/v1/"
    assert arns == [prefix + "GET/videos/*", prefix + "POST/videos"]
    for p in permissions.values():
        assert p["Properties"]["Principal"] == "apigateway.amazonaws.com"
        assert p["Properties"]["FunctionName"] == {"Fn::GetAtt": ["Function", "Arn"]}


@pytest.mark.parametrize("env", ENVS)
def test_stage_has_json_access_logs_tracing_and_the_environments_throttling(templates, env):
    stage = props(templates, "ApiStage", env)
    cfg = config.get(env)
    assert stage["StageName"] == "v1" and stage["TracingEnabled"] is True
    assert stage["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["AccessLogGroup", "Arn"]}
    access_format = json.loads(stage["AccessLogSetting"]["Format"])
    assert {"requestId", "status", "userArn", "xrayTraceId"} <= set(access_format)
    assert stage["MethodSettings"] == [{
        "HttpMethod": "*", "ResourcePath": "/*", "MetricsEnabled": True, "DataTraceEnabled": False,
        "ThrottlingRateLimit": cfg.api_rate_limit, "ThrottlingBurstLimit": cfg.api_burst_limit}]
    group = props(templates, "AccessLogGroup", env)
    assert group["RetentionInDays"] == cfg.log_retention_days and group["KmsKeyId"]


def test_throttling_grows_with_the_environment():
    limits = [(config.get(e).api_rate_limit, config.get(e).api_burst_limit) for e in ENVS]
    assert limits == sorted(limits) and all(rate <= burst for rate, burst in limits)


def test_stage_serves_a_deployment_named_after_what_it_snapshots(templates):
    deployments = resources_of_type(templates["dev"]["api"], "AWS::ApiGateway::Deployment")
    [(title, deployment)] = deployments.items()
    assert props(templates, "ApiStage")["DeploymentId"] == {"Ref": title}
    assert deployment["DependsOn"] == ["BadRequestBodyResponse", "GetVideoMethod", "SubmitVideoMethod"]
    # Same API in every environment, same snapshot, same logical ID; a changed API gets a new deployment.
    assert {title} == {t for env in ENVS for t in resources_of_type(
        templates[env]["api"], "AWS::ApiGateway::Deployment")}


def test_a_changed_route_changes_the_deployment(monkeypatch, templates):
    before = next(iter(resources_of_type(templates["dev"]["api"], "AWS::ApiGateway::Deployment")))
    monkeypatch.setattr(api, "BAD_BODY_MESSAGE", "something else")
    after = [r.title for r in api.build(config.get("dev")).resources.values() if r.title.startswith("ApiDeploy")]
    assert after != [before]


def test_api_gateway_logging_role_is_set_for_the_region_and_outlives_the_stack(templates):
    account = one_resource(templates["dev"]["api"], "AWS::ApiGateway::Account")["Properties"]
    assert account == {"CloudWatchRoleArn": {"Fn::GetAtt": ["ApiGatewayLogsRole", "Arn"]}}
    role = resources(templates)["ApiGatewayLogsRole"]
    assert (role["DeletionPolicy"], role["UpdateReplacePolicy"]) == ("Retain", "Retain")
    [policy] = role["Properties"]["Policies"]
    [statement] = statements(policy["PolicyDocument"])
    assert statement["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"}]
    assert resources(templates)["ApiStage"]["DependsOn"] == ["ApiGatewayAccount"]


@pytest.mark.parametrize("env", ENVS)
def test_outputs_url_id_and_function_name_and_the_parent_surfaces_the_url(templates, env):
    outputs = templates[env]["api"]["Outputs"]
    assert outputs["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${ApiStage}"}
    assert outputs["ApiId"]["Value"] == {"Ref": "Api"}
    assert outputs["ApiFunctionName"]["Value"] == {"Ref": "Function"}
    assert templates[env]["main"]["Outputs"]["ApiUrl"]["Value"] == {"Fn::GetAtt": ["ApiStack", "Outputs.ApiUrl"]}


def test_api_consumes_the_network_and_the_workflow(templates):
    wiring = templates["dev"]["main"]["Resources"]["ApiStack"]["Properties"]["Parameters"]
    assert {name: value["Fn::GetAtt"][0] for name, value in wiring.items()} == {
        "PrivateSubnetIds": "NetworkStack", "ApiFunctionSecurityGroupId": "NetworkStack",
        "StateMachineArn": "WorkflowStack", "StateMachineName": "WorkflowStack"}
