"""api: an IAM-authorised regional REST API and the function that submits and reports video jobs."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from generator import config, job_control
from generator.functions.video_jobs import contract
from generator.tiers import api

from conftest import (
    REPO,
    grants,
    inline_statements,
    pop_vpc_function_grants,
    resources_of_type,
    sources,
    statements,
    subnets_of_kind,
    trusted_services,
)

ENVS = ("dev", "staging", "prod")
PACKAGE = REPO / "generator" / "functions" / "video_jobs"


def resources(templates, env="dev") -> dict:
    return templates[env]["api"]["Resources"]


def props(templates, title, env="dev") -> dict:
    return resources(templates, env)[title]["Properties"]


@pytest.mark.parametrize("env", ENVS)
def test_function_runs_the_job_control_package_that_deploy_sh_builds_and_its_api_handler(templates, env):
    """What Lambda runs is generator/functions/video_jobs/ (tested by test_api_handler.py), packaged by deploy.sh
    from the local path the template names, the same package as the scheduler's; Handler names a module of it."""
    f = props(templates, "Function", env)
    assert f["Code"] == job_control.PACKAGE_PATH == "functions/video_jobs.zip"
    assert job_control.FUNCTION_SOURCE == PACKAGE and (PACKAGE / "requirements.txt").is_file()
    assert f["Handler"] == contract.API_HANDLER
    module, function = f["Handler"].split(".")
    assert (PACKAGE / f"{module}.py").is_file() and f"def {function}(" in (PACKAGE / f"{module}.py").read_text(
        encoding="utf-8")
    assert f["Code"] == templates[env]["jobs"]["Resources"]["SchedulerFunction"]["Properties"]["Code"]
    # Lambda's packaged code path is the point: only cfn-lint's "only works with package" check is off.
    assert resources(templates, env)["Function"]["Metadata"]["cfn-lint"] == {"config": {"ignore_checks": ["W3002"]}}


@pytest.mark.parametrize("env", ENVS)
def test_function_runs_on_current_python_arm64_traced_and_answers_before_api_gateway_gives_up(templates, env):
    f = props(templates, "Function", env)
    assert (f["Runtime"], f["Architectures"], f["TracingConfig"]["Mode"]) == ("python3.14", ["arm64"], "Active")
    assert f["Timeout"] < 29  # API Gateway gives up on the integration after 29 seconds


@pytest.mark.parametrize("env", ENVS)
def test_function_environment_holds_the_contracts_table_machine_and_limit_and_no_secret(templates, env):
    """The variables contract.py names for the API function; a secret here would be readable by anyone who can
    read the function."""
    variables = props(templates, "Function", env)["Environment"]["Variables"]
    redis = {"REDIS_AUTH", "REDIS_HOST", "REDIS_PORT", "REDIS_REPLICATION_GROUP_ID", "REDIS_TLS", "REDIS_USERNAME"}
    assert set(variables) == {contract.ENV_TABLE, contract.ENV_STATE_MACHINE_ARN, contract.ENV_MAX_CONCURRENT,
                              "MEDIA_BUCKET", "UPLOAD_MAX_BYTES", "UPLOAD_CONTENT_TYPES", "UPLOAD_URL_SECONDS", *redis}
    # GET's progress: the container contract's variables, signing in with IAM (no password), as the reader user.
    assert (variables["REDIS_AUTH"], variables["REDIS_TLS"]) == ("iam", "true") and "REDIS_PASSWORD" not in variables
    for name in ("REDIS_HOST", "REDIS_PORT", "REDIS_REPLICATION_GROUP_ID"):
        assert sources(templates, env, "api", variables[name]) == {("cache", "CacheReplicationGroup")}, name
    assert sources(templates, env, "api", variables["REDIS_USERNAME"]) == {("cache", "ApiCacheUser")}
    assert sources(templates, env, "api", variables["MEDIA_BUCKET"]) == {("media", "MediaBucket")}
    assert variables["UPLOAD_MAX_BYTES"] == str(config.get(env).upload_max_gib * 2 ** 30)
    assert sources(templates, env, "api", variables[contract.ENV_STATE_MACHINE_ARN]) == {("workflow",
                                                                                          "StateMachine")}
    assert sources(templates, env, "api", variables[contract.ENV_TABLE]) == {("jobs", "JobsTable")}
    assert variables[contract.ENV_MAX_CONCURRENT] == str(config.get(env).max_concurrent_videos)
    # The scheduler enforces the same limit on the same table.
    scheduler = templates[env]["jobs"]["Resources"]["SchedulerFunction"]["Properties"]["Environment"]["Variables"]
    assert scheduler[contract.ENV_MAX_CONCURRENT] == variables[contract.ENV_MAX_CONCURRENT]


def test_the_inline_handler_is_gone_from_the_generator():
    """The API function is packaged now: no inline-code machinery left to drift from the package."""
    for name in ("handler_source", "handler_constant", "inline_code", "INLINE_CODE_LIMIT", "HANDLER_MODULE"):
        assert not hasattr(api, name), name


def test_the_api_tier_imports_no_other_tier():
    """Tiers meet through contracts and shared helpers (the job-control function and grants are
    generator/job_control.py): importing the jobs tier's module would tie the api tier to its internals."""
    tree = ast.parse(Path(api.__file__).read_text(encoding="utf-8"))
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported += [node.module or "", *(f"{node.module}.{alias.name}" for alias in node.names)]
    assert not [name for name in imported if name.startswith("generator.tiers")], imported


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
    [(_, title)] = sources(templates, env, "api", f["LoggingConfig"]["LogGroup"])
    group = props(templates, title, env)
    # Lambda's own name for the function's group: the function never creates an unencrypted one beside it.
    assert group["LogGroupName"] == f"/aws/lambda/{f['FunctionName']}"
    assert group["RetentionInDays"] == config.get(env).log_retention_days
    [(_, key)] = sources(templates, env, "api", group["KmsKeyId"])
    assert resources(templates, env)[key]["Type"] == "AWS::KMS::Key"


@pytest.mark.parametrize("env", ENVS)
def test_function_runs_in_every_private_subnet_behind_the_api_function_group_only(templates, env):
    """It reaches Step Functions through the NAT, from every AZ, and its group is its own (the data stores
    admit only the task group)."""
    vpc = props(templates, "Function", env)["VpcConfig"]
    assert sources(templates, env, "api", vpc["SubnetIds"]) == subnets_of_kind(templates, env, "Private")
    assert sources(templates, env, "api", vpc["SecurityGroupIds"]) == {("network", "ApiFunctionSecurityGroup")}


def test_logs_key_serves_exactly_the_two_api_log_groups(templates):
    policy = props(templates, "ApiLogsKey")["KeyPolicy"]
    [logs] = [s for s in statements(policy) if s["Sid"] == "CloudWatchLogsEncryptsTheseLogGroups"]
    groups = logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
    assert [g["Fn::Sub"].rsplit("log-group:", 1)[1] for g in groups] == [
        "/aws/lambda/video-processing-api-dev", "/video-processing/dev/api-access"]


@pytest.mark.parametrize("env", ENVS)
def test_function_role_records_jobs_and_starts_only_this_state_machines_executions_and_nothing_more(templates, env):
    """Beyond running in the VPC, writing its own logs and tracing, the function can read and write job records
    (the table, its indexes, the table's key through DynamoDB) and start executions of this pipeline's state
    machine; it no longer describes executions (the job records answer GET)."""
    role = resources(templates, env)["FunctionRole"]
    assert trusted_services(role) == {"lambda.amazonaws.com"} and "ManagedPolicyArns" not in role["Properties"]
    allowed = grants(templates, env, "api", "FunctionRole")
    assert allowed.pop("states:StartExecution") == {("workflow", "StateMachine")}
    assert "states:DescribeExecution" not in allowed
    for action in ("dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
                   "dynamodb:UpdateItem"):
        assert allowed.pop(action) == {("jobs", "JobsTable")}, action
    # Presigning uploads: only what an upload of a source needs, only under sources/ (checked below).
    for action in ("s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:PutObject"):
        assert allowed.pop(action) == {("media", "MediaBucket")}, action
    # GET /videos/{videoId} reads the manifest and presigns GETs of outputs: outputs/ only (checked below).
    assert allowed.pop("s3:GetObject") == {("media", "MediaBucket")}
    # ... and lists outputs/ only, so that a manifest not there yet answers 404, not 403 (checked below).
    assert allowed.pop("s3:ListBucket") == {("media", "MediaBucket")}
    assert allowed.pop("kms:GenerateDataKey") == {("media", "MediaKey")}
    assert allowed.pop("kms:Decrypt") == {("jobs", "JobsKey"), ("media", "MediaKey")}
    for action in ("kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"):
        assert allowed.pop(action) == {("jobs", "JobsKey")}, action
    # GET's progress: sign in to this replication group as the API's reader user, never as the processor's.
    assert allowed.pop("elasticache:Connect") == {("cache", "CacheReplicationGroup"), ("cache", "ApiCacheUser")}
    pop_vpc_function_grants(allowed, f"/aws/lambda/video-processing-api-{env}", ("network", "ApiFunctionSecurityGroup"))
    assert allowed == {}, f"unexpected grants: {sorted(allowed)}"
    [uploads] = [s for s in inline_statements(role) if s.get("Sid") == "UploadSources"]
    assert [r["Fn::Sub"][0] for r in uploads["Resource"]] == ["${Bucket}/sources/*"], "sources/ only, never outputs/"
    [reads] = [s for s in inline_statements(role) if s.get("Sid") == "ReadOutputs"]
    assert [r["Fn::Sub"][0] for r in reads["Resource"]] == ["${Bucket}/outputs/*"], "outputs/ only, never sources/"
    conditioned = [s for s in inline_statements(role) if "Condition" in s]
    assert [s["Condition"] for s in conditioned] == [
        {"StringEquals": {"kms:ViaService": {"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"}}},
        {"StringLike": {"s3:prefix": "outputs/*"}},
        {"StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}}], \
        "the table's key only through DynamoDB, listing outputs/ only, the media key only through S3"


def test_rest_api_is_regional(templates):
    rest_api = props(templates, "Api")
    assert rest_api["EndpointConfiguration"]["Types"] == ["REGIONAL"]
    assert rest_api["Name"] == "video-processing-api-dev"


def path_of(templates, resource_id, env="dev") -> str:
    """The URL path of an API Gateway resource, from the API's root."""
    if isinstance(resource_id, dict) and "Fn::GetAtt" in resource_id:
        assert resource_id["Fn::GetAtt"] == ["Api", "RootResourceId"]
        return ""
    node = props(templates, resource_id["Ref"], env)
    assert node["RestApiId"] == {"Ref": "Api"}
    return path_of(templates, node["ParentId"], env) + "/" + node["PathPart"]


def declared_routes() -> set[tuple[str, str]]:
    return {(r.method, r.path) for r in contract.ROUTES}


@pytest.mark.parametrize("env", ENVS)
def test_the_api_serves_exactly_the_declared_routes_with_their_parameters_and_bodies(templates, env):
    """contract.ROUTES is the one declaration: the template has a method for each row and no other; a path's
    `{parameters}` are required, the row's query parameters optional (the handler answers 400 naming a bad value),
    and a row's body schema is its method's model."""
    methods = resources_of_type(templates[env]["api"], "AWS::ApiGateway::Method")
    served = {(m["Properties"]["HttpMethod"], path_of(templates, m["Properties"]["ResourceId"], env)):
              m["Properties"] for m in methods.values()}
    assert set(served) == declared_routes() and len(methods) == len(contract.ROUTES)
    for route in contract.ROUTES:
        method = served[(route.method, route.path)]
        required = {f"method.request.path.{part.strip('{}')}": True
                    for part in route.path.split("/") if part.startswith("{")}
        optional = {f"method.request.querystring.{name}": False for name in route.query}
        assert method.get("RequestParameters", {}) == {**required, **optional}, route
        if route.body is None:
            assert "RequestModels" not in method, route
        else:
            [(_, model)] = sources(templates, env, "api", method["RequestModels"]["application/json"])
            assert json.loads(props(templates, model, env)["Schema"]) == route.body, route


def test_every_declared_route_is_dispatched_to_a_function_of_the_handler_and_nothing_else_is():
    """The handler reads the same declaration: each row reaches the function it names (so a new route is a row
    plus that function), and the handler dispatches no path the API does not declare."""
    from jobs_harness import api as handler

    assert set(handler.DISPATCH) == declared_routes()
    for route in contract.ROUTES:
        assert handler.DISPATCH[(route.method, route.path)] is getattr(handler, route.handler), route
    assert contract.route("list_videos").query == handler.LIST_PARAMETERS, "the list accepts the declared query"


def test_a_route_whose_function_is_missing_stops_the_handler_loading_with_its_name():
    from jobs_harness import api as handler

    extra = contract.Route("DELETE", "/videos/{videoId}", "delete_video", "Forget a video")
    with pytest.raises(LookupError, match=r"names no function of api\.py: delete_video"):
        handler.dispatch_table((*contract.ROUTES, extra), vars(handler))


def test_a_new_route_is_one_row_its_resource_method_and_permission_follow(monkeypatch, templates):
    """What the change-cost walk relies on: one more row (here under a new path) gives a method on a resource
    nested under its parent, a permission scoped to it, and a new deployment; nothing else is edited."""
    extra = contract.Route("GET", "/videos/{videoId}/parts", "list_parts", "The parts of a video's upload",
                           query=("next",))
    monkeypatch.setattr(contract, "ROUTES", (*contract.ROUTES, extra))
    built = api.build(config.get("dev")).to_dict()["Resources"]
    method = built["ListPartsMethod"]["Properties"]
    assert (method["HttpMethod"], method["ResourceId"]) == ("GET", {"Ref": "VideoPartsResource"})
    assert method["RequestParameters"] == {"method.request.path.videoId": True,
                                           "method.request.querystring.next": False}
    assert built["VideoPartsResource"]["Properties"]["ParentId"] == {"Ref": "VideoResource"}
    assert built["ListPartsPermission"]["Properties"]["SourceArn"]["Fn::Sub"].endswith("/v1/GET/videos/*/parts")
    before = set(resources(templates))
    added = set(built) - before
    assert {t for t in added if not t.startswith("ApiDeployment")} == {
        "ListPartsMethod", "ListPartsPermission", "VideoPartsResource"}
    assert len(added) == 4, "and a new deployment snapshot"


def test_two_paths_that_would_share_a_resource_name_are_refused(monkeypatch):
    clash = (contract.Route("GET", "/video", "get_one", "a"), contract.Route("GET", "/videos/{videoId}", "get", "b"))
    monkeypatch.setattr(contract, "ROUTES", clash)
    with pytest.raises(ValueError, match="would both be the resource VideoResource"):
        api.build(config.get("dev"))


def test_submit_body_is_validated_by_a_model_with_the_handlers_rule(templates):
    submit = props(templates, "SubmitVideoMethod")
    assert set(submit["RequestModels"]) == {"application/json"}
    [(_, model)] = sources(templates, "dev", "api", submit["RequestModels"]["application/json"])
    [(_, validator)] = sources(templates, "dev", "api", submit["RequestValidatorId"])
    assert props(templates, validator)["ValidateRequestBody"] is True
    schema = json.loads(props(templates, model)["Schema"])
    assert schema["required"] == ["videoId"] and schema["additionalProperties"] is False
    video_id = schema["properties"]["videoId"]
    assert (video_id["type"], video_id["minLength"], video_id["maxLength"]) == ("string", 1, contract.VIDEO_ID_MAX)
    # The model's pattern and the contract's rule (which the handler applies) accept exactly the same ids.
    by_contract = re.compile(f"[{contract.VIDEO_ID_CHARS}]{{1,{contract.VIDEO_ID_MAX}}}")
    for candidate in ("a", "clip-1_A", "v" * 64, "", "v" * 65, "clip 1", "clip/1", "vid\u00e9o", "clip.mp4",
                      "#control", "a.1.2"):
        by_model = bool(re.fullmatch(video_id["pattern"].strip("^$"), candidate)) and 1 <= len(candidate) <= 64
        assert by_model == bool(by_contract.fullmatch(candidate)), candidate
    assert not by_contract.fullmatch(contract.CONTROL_VIDEO_ID), "no videoId can name the control item"


def test_a_body_the_model_rejects_answers_400_with_a_json_message_stating_the_rule(templates):
    response = props(templates, "BadRequestBodyResponse")
    assert (response["ResponseType"], response["StatusCode"]) == ("BAD_REQUEST_BODY", "400")
    message = json.loads(response["ResponseTemplates"]["application/json"])["message"]
    assert "videoId" in message and f"1-{contract.VIDEO_ID_MAX} letters, digits, '-' or '_'" in message


def test_lambda_may_be_invoked_only_by_this_api_on_its_declared_routes(templates):
    """One permission per route, for its method and path on this API's stage (a path parameter matches one
    segment, `*`): no wildcard method or path."""
    permissions = resources_of_type(templates["dev"]["api"], "AWS::Lambda::Permission")
    arns = sorted(p["Properties"]["SourceArn"]["Fn::Sub"] for p in permissions.values())
    prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/v1/"
    assert arns == sorted(prefix + r.method + re.sub(r"\{[^/]+\}", "*", r.path) for r in contract.ROUTES)
    assert prefix + "GET/videos/*" in arns, "GET /videos/{videoId}: the id is one path segment"
    for p in permissions.values():
        assert p["Properties"]["Principal"] == "apigateway.amazonaws.com"
        assert sources(templates, "dev", "api", p["Properties"]["FunctionName"]) == {("api", "Function")}


@pytest.mark.parametrize("env", ENVS)
def test_stage_has_json_access_logs_tracing_and_the_environments_throttling(templates, env):
    stage = props(templates, "ApiStage", env)
    cfg = config.get(env)
    assert stage["StageName"] == "v1" and stage["TracingEnabled"] is True
    [(_, log_group)] = sources(templates, env, "api", stage["AccessLogSetting"]["DestinationArn"])
    access_format = json.loads(stage["AccessLogSetting"]["Format"])
    assert {"requestId", "status", "userArn", "xrayTraceId"} <= set(access_format)
    group = props(templates, log_group, env)
    assert group["RetentionInDays"] == cfg.log_retention_days and group["KmsKeyId"]


@pytest.mark.parametrize("env", ENVS)
def test_every_route_is_throttled_at_the_environments_limits_with_metrics_and_no_body_logging(templates, env):
    """One setting covers every method and path (nothing unthrottled); request bodies never reach the logs."""
    cfg = config.get(env)
    [settings] = props(templates, "ApiStage", env)["MethodSettings"]
    assert (settings["HttpMethod"], settings["ResourcePath"]) == ("*", "/*")
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (
        cfg.api_rate_limit, cfg.api_burst_limit)
    assert settings["MetricsEnabled"] is True and settings["DataTraceEnabled"] is False


def test_throttling_grows_with_the_environment():
    limits = [(config.get(e).api_rate_limit, config.get(e).api_burst_limit) for e in ENVS]
    assert limits == sorted(limits) and all(rate <= burst for rate, burst in limits)


def test_stage_serves_a_deployment_named_after_what_it_snapshots(templates):
    deployments = resources_of_type(templates["dev"]["api"], "AWS::ApiGateway::Deployment")
    [(title, deployment)] = deployments.items()
    assert props(templates, "ApiStage")["DeploymentId"] == {"Ref": title}  # the stage serves the current snapshot
    # A deployment snapshots what exists when it is created: every method and gateway response must come first.
    snapshotted = {title for title, r in resources(templates).items()
                   if r["Type"] in ("AWS::ApiGateway::Method", "AWS::ApiGateway::GatewayResponse")}
    assert snapshotted and snapshotted <= set(deployment["DependsOn"])
    # Same API in every environment, same snapshot, same logical ID; a changed API gets a new deployment.
    assert {title} == {t for env in ENVS for t in resources_of_type(
        templates[env]["api"], "AWS::ApiGateway::Deployment")}


def test_a_changed_route_changes_the_deployment(monkeypatch, templates):
    before = next(iter(resources_of_type(templates["dev"]["api"], "AWS::ApiGateway::Deployment")))
    monkeypatch.setattr(api, "BAD_BODY_MESSAGE", "something else")
    after = [r.title for r in api.build(config.get("dev")).resources.values() if r.title.startswith("ApiDeploy")]
    assert after != [before]


def test_api_gateway_account_setting_is_left_to_the_account_bootstrap(templates):
    """One per account and region (deploytools.bootstrap), never set by an environment's stack."""
    for env in ENVS:
        assert not resources_of_type(templates[env]["api"], "AWS::ApiGateway::Account")
        assert "ApiGatewayLogsRole" not in templates[env]["api"]["Resources"]
    assert "DependsOn" not in resources(templates)["ApiStage"]


@pytest.mark.parametrize("env", ENVS)
def test_outputs_the_stages_url_the_api_and_the_function_and_the_parent_surfaces_the_url(templates, env):
    outputs = templates[env]["api"]["Outputs"]
    url = outputs["ApiUrl"]["Value"]["Fn::Sub"]
    assert url.startswith("https://${Api}.execute-api.") and url.endswith("/${ApiStage}")
    assert sources(templates, env, "api", outputs["ApiUrl"]["Value"]) == {("api", "Api"), ("api", "ApiStage")}
    assert sources(templates, env, "api", outputs["ApiId"]["Value"]) == {("api", "Api")}
    assert sources(templates, env, "api", outputs["ApiFunctionName"]["Value"]) == {("api", "Function")}
    assert sources(templates, env, "main", templates[env]["main"]["Outputs"]["ApiUrl"]["Value"]) == {
        ("main", "ApiStack")}
    assert templates[env]["main"]["Outputs"]["ApiUrl"]["Value"]["Fn::GetAtt"][1] == "Outputs.ApiUrl"


def test_api_consumes_only_the_private_subnets_its_group_the_state_machine_the_job_table_and_the_cache(templates):
    """The api tier deploys after network, workflow and jobs; of the data tiers it reads only the cache (progress),
    as its own user."""
    params = templates["dev"]["api"]["Parameters"]
    consumed = set().union(*(sources(templates, "dev", "api", {"Ref": p}) for p in params))
    assert consumed == subnets_of_kind(templates, "dev", "Private") | {
        ("network", "ApiFunctionSecurityGroup"), ("workflow", "StateMachine"), ("jobs", "JobsTable"),
        ("jobs", "JobsKey"), ("media", "MediaBucket"), ("media", "MediaKey"), ("cache", "CacheReplicationGroup"),
        ("cache", "ApiCacheUser")}
