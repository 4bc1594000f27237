"""api: a regional REST API, IAM-authorised, and the Lambda function behind it that starts and reports
executions of the workflow's state machine (handler: generator/functions/video_api.py, inlined here).

    POST /videos {"videoId": "..."}   202 started, 400 invalid, 409 already submitted
    GET  /videos/{videoId}            200 status and times, 404 never submitted
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

from awacs import states as states_actions
from awacs.aws import Allow, Statement
from troposphere import AWS_REGION, AWS_URL_SUFFIX, GetAtt, Ref, Sub, Template
from troposphere.apigateway import (
    AccessLogSetting,
    Deployment,
    EndpointConfiguration,
    GatewayResponse,
    Integration,
    Method,
    MethodSetting,
    Model,
    RequestValidator,
    Resource,
    RestApi,
    Stage,
)
from troposphere.awslambda import Code, Environment, Function, Permission

from generator import blocks, contracts, names
from generator.config import EnvConfig
from generator.errors import LimitError

CONSUMES = (contracts.PRIVATE_SUBNET_IDS, contracts.API_FUNCTION_SECURITY_GROUP_ID, contracts.STATE_MACHINE_ARN,
            contracts.STATE_MACHINE_NAME)
PRODUCES = (contracts.API_URL, contracts.API_ID, contracts.API_FUNCTION_NAME, contracts.API_NAME,
            contracts.API_STAGE_NAME)

HANDLER_MODULE = "video_api.py"
# CloudFormation puts ZipFile code in `index.py`. 4096 characters is troposphere's ZipFile check (the
# historical CloudFormation limit): past it the handler belongs in a package, not in the template.
INLINE_CODE_LIMIT = 4096
RUNTIME = "python3.14"  # the newest Python runtime, not deprecated before 2029
STAGE_NAME = "v1"
FUNCTION_TIMEOUT_SECONDS = 10  # well inside API Gateway's 29-second integration timeout

def handler_source() -> str:
    # Read as text, never imported: the handler imports boto3, which generation does not need.
    return (Path(__file__).resolve().parent.parent / "functions" / HANDLER_MODULE).read_text(encoding="utf-8")


def handler_constant(name: str):
    """A literal the handler assigns, read from its source: importing the handler would import boto3."""
    for node in ast.parse(handler_source()).body:
        if isinstance(node, ast.Assign) and [getattr(target, "id", None) for target in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise LookupError(f"{HANDLER_MODULE} assigns no {name}")


# The handler's own rule for a videoId, which the API Gateway model repeats.
VIDEO_ID_MAX = handler_constant("VIDEO_ID_MAX")
VIDEO_ID_CHARS = handler_constant("VIDEO_ID_CHARS")
VIDEO_ID_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": VIDEO_ID_MAX,
    "pattern": f"^[{VIDEO_ID_CHARS}]+$",
}
SUBMIT_SCHEMA = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "SubmitVideo",
    "type": "object",
    "properties": {"videoId": VIDEO_ID_SCHEMA},
    "required": ["videoId"],
    "additionalProperties": False,
}
# API Gateway answers for the model before the handler runs; its templates cannot quote the validator's
# own message safely, so this one states the whole rule.
BAD_BODY_MESSAGE = (f'Invalid request body: expected {{"videoId": "..."}} and no other field, the videoId being '
                    f"1-{VIDEO_ID_MAX} letters, digits, '-' or '_'")
# One JSON object per request; only $context values that never contain a double quote.
ACCESS_LOG_FORMAT = {
    "caller": "$context.identity.caller",
    "error": "$context.error.message",
    "httpMethod": "$context.httpMethod",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "resourcePath": "$context.resourcePath",
    "responseLatency": "$context.responseLatency",
    "responseLength": "$context.responseLength",
    "sourceIp": "$context.identity.sourceIp",
    "status": "$context.status",
    "userArn": "$context.identity.userArn",
    "xrayTraceId": "$context.xrayTraceId",
}
# (logical ID, HTTP method, path under the stage); the Lambda permission of each is scoped to exactly it.
ROUTES = (("SubmitVideo", "POST", "/videos"), ("GetVideo", "GET", "/videos/*"))


def inline_code(source: str, label: str = HANDLER_MODULE) -> str:
    """The handler's source for Code.ZipFile; generation fails, naming the file, if it does not fit."""
    if len(source) > INLINE_CODE_LIMIT:
        raise LimitError(f"{label}: {len(source)} characters exceeds the inline code limit of {INLINE_CODE_LIMIT} "
                         "characters (Code.ZipFile); shorten the handler or package it with deploy.sh")
    return source




def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing API: IAM-authorised REST API and the function that starts "
                                 "and reports executions")
    p = blocks.parameters(t, CONSUMES)
    function_name = names.api(cfg.name)
    key = blocks.kms_key(t, cfg, "ApiLogsKey", "Encrypts the video API's log groups",
                         names.env_prefixed(cfg.name, "api-logs"),
                         [blocks.logs_key_statement([names.function_log_group(cfg.name),
                                                     names.api_access_log_group(cfg.name)])])
    function_logs = blocks.encrypted_log_group(t, cfg, "FunctionLogGroup", names.function_log_group(cfg.name),
                                               GetAtt(key, "Arn"))
    access_logs = blocks.encrypted_log_group(t, cfg, "AccessLogGroup", names.api_access_log_group(cfg.name),
                                             GetAtt(key, "Arn"))

    role = blocks.function_role(t, cfg, "FunctionRole",
                                "The video API function starts and describes video processing executions",
                                "StartAndDescribeExecutions", function_statements(cfg, p))
    # In the VPC, behind the API function security group (HTTPS out through NAT only): the network tier
    # made that group for this function, and its traffic then shows in the VPC flow logs.
    function = t.add_resource(Function(
        "Function",
        FunctionName=function_name,
        Description=f"Starts and reports video processing executions for the video API ({cfg.name})",
        Runtime=RUNTIME,
        Architectures=["arm64"],
        Handler="index.lambda_handler",
        Code=Code(ZipFile=inline_code(handler_source())),
        Role=GetAtt(role, "Arn"),
        MemorySize=256,
        Timeout=FUNCTION_TIMEOUT_SECONDS,
        # A reservation guarantees the API its instances (and caps them) where the setting asks for one; Lambda
        # refuses one that leaves the account fewer than 100 unreserved (deploy.sh's preflight checks it).
        **({"ReservedConcurrentExecutions": cfg.api_reserved_concurrency} if cfg.api_reserved_concurrency else {}),
        Environment=Environment(Variables={"STATE_MACHINE_ARN": p[contracts.STATE_MACHINE_ARN]}),
        **blocks.vpc_function_properties(cfg, function_logs, p[contracts.PRIVATE_SUBNET_IDS],
                                         p[contracts.API_FUNCTION_SECURITY_GROUP_ID]),
        Metadata=blocks.checkov_skip(
            ("CKV_AWS_116", "API Gateway invokes it synchronously only; a dead-letter queue receives only "
                            "failed asynchronous invocations"),
            ("CKV_AWS_173", "its one variable is the state machine ARN, no secret; Lambda encrypts it at rest "
                            "with its AWS-managed key"),
            *([] if cfg.api_reserved_concurrency else [(
                "CKV_AWS_115", "no reservation by design where api_reserved_concurrency is 0 (a new account's "
                               "quota cannot hold one); the stage's throttling caps the requests")]),
        ),
    ))

    api = t.add_resource(RestApi(
        "Api",
        Name=function_name,
        Description=f"Submit videos for processing and follow them ({cfg.name})",
        EndpointConfiguration=EndpointConfiguration(Types=["REGIONAL"]),
        Tags=blocks.tags(cfg),
    ))
    videos = t.add_resource(Resource("VideosResource", RestApiId=Ref(api), ParentId=GetAtt(api, "RootResourceId"),
                                     PathPart="videos"))
    video = t.add_resource(Resource("VideoResource", RestApiId=Ref(api), ParentId=Ref(videos),
                                    PathPart="{videoId}"))
    model = t.add_resource(Model("SubmitVideoModel", RestApiId=Ref(api), Name="SubmitVideo",
                                 ContentType="application/json", Description="Body of POST /videos",
                                 Schema=json.dumps(SUBMIT_SCHEMA, sort_keys=True)))
    validator = t.add_resource(RequestValidator("RequestValidator", RestApiId=Ref(api), Name="BodyAndParameters",
                                                ValidateRequestBody=True, ValidateRequestParameters=True))
    integration = Integration(Type="AWS_PROXY", IntegrationHttpMethod="POST", Uri=Sub(
        "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Function.Arn}/invocations"))
    methods = [
        t.add_resource(Method("SubmitVideoMethod", RestApiId=Ref(api), ResourceId=Ref(videos), HttpMethod="POST",
                              AuthorizationType="AWS_IAM", RequestValidatorId=Ref(validator),
                              RequestModels={"application/json": Ref(model)}, Integration=integration)),
        t.add_resource(Method("GetVideoMethod", RestApiId=Ref(api), ResourceId=Ref(video), HttpMethod="GET",
                              AuthorizationType="AWS_IAM", RequestValidatorId=Ref(validator),
                              RequestParameters={"method.request.path.videoId": True}, Integration=integration)),
    ]
    bad_body = t.add_resource(GatewayResponse(
        "BadRequestBodyResponse", RestApiId=Ref(api), ResponseType="BAD_REQUEST_BODY", StatusCode="400",
        ResponseTemplates={"application/json": json.dumps({"message": BAD_BODY_MESSAGE})},
    ))
    for title, method, path in ROUTES:
        t.add_resource(Permission(
            f"{title}Permission",
            Action="lambda:InvokeFunction",
            FunctionName=GetAtt(function, "Arn"),
            Principal="apigateway.amazonaws.com",
            SourceArn=blocks.arn("execute-api", f"${{{api.title}}}/{STAGE_NAME}/{method}{path}"),
        ))

    # A deployment is a snapshot: a new logical ID whenever what it snapshots changes makes CloudFormation
    # create a new one (and the stage switch to it); an unchanged API keeps the same ID.
    snapshot = [videos, video, model, validator, *methods, bad_body]
    deployment = t.add_resource(Deployment(
        f"ApiDeployment{fingerprint(snapshot)}",
        RestApiId=Ref(api),
        Description=f"Video API ({cfg.name})",
        DependsOn=sorted(r.title for r in [*methods, bad_body]),
    ))
    stage = t.add_resource(Stage(
        "ApiStage",
        RestApiId=Ref(api),
        DeploymentId=Ref(deployment),
        StageName=STAGE_NAME,
        Description=f"Video API ({cfg.name})",
        TracingEnabled=True,
        AccessLogSetting=AccessLogSetting(DestinationArn=GetAtt(access_logs, "Arn"),
                                          Format=json.dumps(ACCESS_LOG_FORMAT, sort_keys=True)),
        # Access logs only: execution logs would go to groups API Gateway creates unencrypted, kept forever.
        MethodSettings=[MethodSetting(HttpMethod="*", ResourcePath="/*", MetricsEnabled=True,
                                      DataTraceEnabled=False, ThrottlingRateLimit=cfg.api_rate_limit,
                                      ThrottlingBurstLimit=cfg.api_burst_limit)],
        # Access logging needs the region's API Gateway CloudWatch role: one per account and region, set by the
        # account bootstrap (./deploy.sh --bootstrap), never by an environment; the preflight checks it.
        Tags=blocks.tags(cfg),
        Metadata=blocks.checkov_skip(
            ("CKV_AWS_120", "responses are submissions (POST) and the live status of running executions: a "
                            "cache would serve stale status"),
        ),
    ))

    blocks.output(t, contracts.API_URL, Sub(
        f"https://${{{api.title}}}.execute-api.${{{AWS_REGION}}}.${{{AWS_URL_SUFFIX}}}/${{{stage.title}}}"))
    blocks.output(t, contracts.API_ID, Ref(api))
    blocks.output(t, contracts.API_FUNCTION_NAME, Ref(function))
    # A REST API has no Name attribute: its metrics' ApiName dimension is the name given above.
    blocks.output(t, contracts.API_NAME, function_name)
    blocks.output(t, contracts.API_STAGE_NAME, Ref(stage))
    return t


def fingerprint(resources_: list) -> str:
    text = json.dumps([r.to_dict() for r in resources_], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def function_statements(cfg: EnvConfig, p: dict[contracts.Contract, Ref]) -> list[Statement]:
    """Start executions of this one state machine and describe them; write own logs, traces and ENIs."""
    return [
        Statement(Sid="StartProcessing", Effect=Allow, Action=[states_actions.StartExecution],
                  Resource=[p[contracts.STATE_MACHINE_ARN]]),
        Statement(Sid="DescribeProcessingExecutions", Effect=Allow, Action=[states_actions.DescribeExecution],
                  Resource=[blocks.arn("states", f"execution:${{{contracts.STATE_MACHINE_NAME.name}}}:*")]),
        *blocks.vpc_function_statements(names.function_log_group(cfg.name),
                                        contracts.API_FUNCTION_SECURITY_GROUP_ID.name),
    ]
