"""api: a regional REST API, IAM-authorised, and the Lambda function behind it that starts and reports
executions of the workflow's state machine (handler: generator/functions/video_api.py, inlined here).

    POST /videos {"videoId": "..."}   202 started, 400 invalid, 409 already submitted
    GET  /videos/{videoId}            200 status and times, 404 never submitted
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources

from awacs import ec2 as ec2_actions
from awacs import logs as logs_actions
from awacs import states as states_actions
from awacs import xray as xray_actions
from awacs.aws import Allow, PolicyDocument, Statement
from awacs.sts import AssumeRole
from troposphere import AWS_REGION, AWS_URL_SUFFIX, GetAtt, Ref, Sub, Template
from troposphere.apigateway import (
    AccessLogSetting,
    Account,
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
from troposphere.awslambda import Code, Environment, Function, LoggingConfig, Permission, TracingConfig, VPCConfig
from troposphere.iam import Policy, Role

from generator import blocks, contracts
from generator.blocks import LimitError
from generator.config import EnvConfig
from generator.functions import video_api

HANDLER_MODULE = "video_api.py"
# CloudFormation puts ZipFile code in `index.py`. 4096 characters is troposphere's ZipFile check (the
# historical CloudFormation limit): past it the handler belongs in a package, not in the template.
INLINE_CODE_LIMIT = 4096
RUNTIME = "python3.14"  # the newest Python runtime, not deprecated before 2029
STAGE_NAME = "v1"
FUNCTION_TIMEOUT_SECONDS = 10  # well inside API Gateway's 29-second integration timeout

VIDEO_ID_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": video_api.VIDEO_ID_MAX,
    "pattern": f"^[{video_api.VIDEO_ID_CHARS}]+$",
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
                    f"1-{video_api.VIDEO_ID_MAX} letters, digits, '-' or '_'")
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


def function_log_group_name(env: str) -> str:
    return f"/aws/lambda/{contracts.physical_name('api', env)}"


def access_log_group_name(env: str) -> str:
    return f"/video-processing/{env}/api-access"


def inline_code(source: str, label: str = HANDLER_MODULE) -> str:
    """The handler's source for Code.ZipFile; generation fails, naming the file, if it does not fit."""
    if len(source) > INLINE_CODE_LIMIT:
        raise LimitError(f"{label}: {len(source)} characters exceeds the inline code limit of {INLINE_CODE_LIMIT} "
                         "characters (Code.ZipFile); shorten the handler or package it with deploy.sh")
    return source


def handler_source() -> str:
    return resources.files("generator.functions").joinpath(HANDLER_MODULE).read_text(encoding="utf-8")


def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing API: IAM-authorised REST API and the function that starts "
                                 "and reports executions")
    p = {c.name: blocks.parameter(t, c) for c in (
        contracts.PRIVATE_SUBNET_IDS, contracts.API_FUNCTION_SECURITY_GROUP_ID,
        contracts.STATE_MACHINE_ARN, contracts.STATE_MACHINE_NAME,
    )}
    function_name = contracts.physical_name("api", cfg.name)
    key = blocks.kms_key(t, cfg, "ApiLogsKey", "Encrypts the video API's log groups",
                         f"video-processing-{cfg.name}-api-logs",
                         [blocks.logs_key_statement([function_log_group_name(cfg.name),
                                                     access_log_group_name(cfg.name)])])
    function_logs = blocks.encrypted_log_group(t, cfg, "FunctionLogGroup", function_log_group_name(cfg.name),
                                               GetAtt(key, "Arn"))
    access_logs = blocks.encrypted_log_group(t, cfg, "AccessLogGroup", access_log_group_name(cfg.name),
                                             GetAtt(key, "Arn"))

    role = t.add_resource(Role(
        "FunctionRole",
        Description=f"The video API function starts and describes video processing executions ({cfg.name})",
        AssumeRolePolicyDocument=PolicyDocument(Version="2012-10-17", Statement=[Statement(
            Effect=Allow, Principal=blocks.service_principal("lambda"), Action=[AssumeRole])]),
        Policies=[Policy(PolicyName="StartAndDescribeExecutions",
                         PolicyDocument=function_policy(cfg, p))],
        Tags=blocks.tags(cfg),
    ))
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
        Environment=Environment(Variables={"STATE_MACHINE_ARN": p["StateMachineArn"]}),
        # Ref to our own group: the function starts only after its encrypted, retained log group exists.
        LoggingConfig=LoggingConfig(LogGroup=Ref(function_logs)),
        TracingConfig=TracingConfig(Mode="Active"),
        VpcConfig=VPCConfig(SubnetIds=p["PrivateSubnetIds"], SecurityGroupIds=[p["ApiFunctionSecurityGroupId"]]),
        Tags=blocks.tags(cfg),
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
    account = api_gateway_account(t, cfg)
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
        Tags=blocks.tags(cfg),
        DependsOn=[account.title],  # access logging needs the account's CloudWatch role in place
    ))

    blocks.output(t, contracts.API_URL, Sub(
        f"https://${{{api.title}}}.execute-api.${{{AWS_REGION}}}.${{{AWS_URL_SUFFIX}}}/${{{stage.title}}}"))
    blocks.output(t, contracts.API_ID, Ref(api))
    blocks.output(t, contracts.API_FUNCTION_NAME, Ref(function))
    return t


def fingerprint(resources_: list) -> str:
    text = json.dumps([r.to_dict() for r in resources_], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def api_gateway_account(t: Template, cfg: EnvConfig) -> Account:
    """The region's API Gateway CloudWatch role, which REST API logging requires.

    It is one setting per account and region, shared by every REST API there (and by every environment
    deployed to the same account): the last stack to set it wins, and the role is retained when a stack
    goes away, so deleting one environment never breaks the logging of the others.
    """
    role = t.add_resource(Role(
        "ApiGatewayLogsRole",
        Description="API Gateway writes the access and execution logs of this region's REST APIs",
        AssumeRolePolicyDocument=PolicyDocument(Version="2012-10-17", Statement=[Statement(
            Effect=Allow, Principal=blocks.service_principal("apigateway"), Action=[AssumeRole])]),
        Policies=[Policy(PolicyName="WriteApiLogs", PolicyDocument=PolicyDocument(Version="2012-10-17", Statement=[
            Statement(Sid="WriteApiLogsInThisRegion", Effect=Allow, Action=[
                logs_actions.CreateLogGroup, logs_actions.CreateLogStream, logs_actions.DescribeLogGroups,
                logs_actions.DescribeLogStreams, logs_actions.PutLogEvents,
            ], Resource=[blocks.arn("logs", "log-group:*")]),  # any API's groups: the role is region-wide
        ]))],
        Tags=blocks.tags(cfg),
        DeletionPolicy="Retain",
        UpdateReplacePolicy="Retain",
    ))
    return t.add_resource(Account("ApiGatewayAccount", CloudWatchRoleArn=GetAtt(role, "Arn")))


def function_policy(cfg: EnvConfig, p: dict) -> PolicyDocument:
    """Start executions of this one state machine and describe them; write own logs, traces and ENIs."""
    log_group_arn = blocks.arn("logs", f"log-group:{function_log_group_name(cfg.name)}")
    return PolicyDocument(Version="2012-10-17", Statement=[
        Statement(Sid="StartProcessing", Effect=Allow, Action=[states_actions.StartExecution],
                  Resource=[p["StateMachineArn"]]),
        Statement(Sid="DescribeProcessingExecutions", Effect=Allow, Action=[states_actions.DescribeExecution],
                  Resource=[blocks.arn("states", "execution:${StateMachineName}:*")]),
        Statement(Sid="WriteFunctionLogs", Effect=Allow, Action=[logs_actions.CreateLogStream,
                                                                 logs_actions.PutLogEvents],
                  Resource=[Sub("${Group}:log-stream:*", Group=log_group_arn)]),
        Statement(Sid="TraceWithXRay", Effect=Allow, Action=[
            xray_actions.PutTelemetryRecords, xray_actions.PutTraceSegments,
        ], Resource=["*"]),  # X-Ray actions support no resource-level permissions
        Statement(Sid="AttachToPrivateSubnets", Effect=Allow, Action=[
            ec2_actions.AssignPrivateIpAddresses, ec2_actions.CreateNetworkInterface,
            ec2_actions.DeleteNetworkInterface, ec2_actions.DescribeNetworkInterfaces,
            ec2_actions.DescribeSubnets, ec2_actions.UnassignPrivateIpAddresses,
        ], Resource=["*"]),  # Lambda's VPC access checks these on "*" (AWSLambdaVPCAccessExecutionRole)
    ])
