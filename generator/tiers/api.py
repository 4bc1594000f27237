"""api: a regional REST API, IAM-authorised, and the Lambda function behind it that submits videos as jobs
and reports them (handler: generator/functions/video_jobs/api.py, the same package as the jobs tier's scheduler:
generator/job_control.py).

    POST /videos {"videoId": "..."}      202 the job, QUEUED or RUNNING (admitted at once while a slot is free);
                                         400 invalid; 409 while an attempt is queued or running, or after one
                                         succeeded (a failed video may be submitted again: attempt n+1)
    GET  /videos/{videoId}               200 the job (status, attempt, times, lastError, position while queued),
                                         404 never submitted
    GET  /videos?status=&limit=&next=    200 a page of jobs, 400 naming a bad parameter
"""

from __future__ import annotations

import hashlib
import json

from awacs.aws import Statement
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
from troposphere.awslambda import Permission

from generator import blocks, contracts, job_control, names
from generator.config import EnvConfig
from generator.functions.video_jobs import contract

CONSUMES = (contracts.PRIVATE_SUBNET_IDS, contracts.API_FUNCTION_SECURITY_GROUP_ID, contracts.STATE_MACHINE_ARN,
            contracts.JOBS_TABLE_NAME, contracts.JOBS_TABLE_ARN, contracts.JOBS_KEY_ARN)
PRODUCES = (contracts.API_URL, contracts.API_ID, contracts.API_FUNCTION_NAME, contracts.API_NAME,
            contracts.API_STAGE_NAME)

STAGE_NAME = "v1"
FUNCTION_TIMEOUT_SECONDS = 10  # well inside API Gateway's 29-second integration timeout

# The functions' own rule for a videoId (contract.py), which the API Gateway model repeats.
VIDEO_ID_MAX = contract.VIDEO_ID_MAX
VIDEO_ID_CHARS = contract.VIDEO_ID_CHARS
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
ROUTES = (("SubmitVideo", "POST", "/videos"), ("ListVideos", "GET", "/videos"), ("GetVideo", "GET", "/videos/*"))
# GET /videos's optional query-string parameters; the handler validates their values (400 naming the parameter).
LIST_PARAMETERS = ("limit", "next", "status")


def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing API: IAM-authorised REST API and the function that submits "
                                 "and reports video jobs")
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
                                "The video API function records jobs and admits them, starting executions",
                                "RecordAndAdmitJobs", function_statements(cfg, p))
    # In the VPC, behind the API function security group (HTTPS out through NAT only): the network tier
    # made that group for this function, and its traffic then shows in the VPC flow logs.
    function = t.add_resource(job_control.job_control_function(
        "Function", cfg, p[contracts.JOBS_TABLE_NAME], p[contracts.STATE_MACHINE_ARN], environment={},
        FunctionName=function_name,
        Description=f"Submits and reports video jobs for the video API ({cfg.name})",
        Handler=contract.API_HANDLER,
        Role=GetAtt(role, "Arn"),
        Timeout=FUNCTION_TIMEOUT_SECONDS,
        # A reservation guarantees the API its instances (and caps them) where the setting asks for one; Lambda
        # refuses one that leaves the account fewer than 100 unreserved (deploy.sh's preflight checks it).
        **({"ReservedConcurrentExecutions": cfg.api_reserved_concurrency} if cfg.api_reserved_concurrency else {}),
        **blocks.vpc_function_properties(cfg, function_logs, p[contracts.PRIVATE_SUBNET_IDS],
                                         p[contracts.API_FUNCTION_SECURITY_GROUP_ID]),
        Metadata=blocks.checkov_skip(
            ("CKV_AWS_116", "API Gateway invokes it synchronously only; a dead-letter queue receives only "
                            "failed asynchronous invocations"),
            ("CKV_AWS_173", "its variables are the table's name, the state machine ARN and a number, no secret; "
                            "Lambda encrypts them at rest with its AWS-managed key"),
            *([] if cfg.api_reserved_concurrency else [(
                "CKV_AWS_115", "no reservation by design where api_reserved_concurrency is 0 (a new account's "
                               "quota cannot hold one); the stage's throttling caps the requests")]),
            # A local Code path is the point: `aws cloudformation package` uploads it.
            metadata={"cfn-lint": {"config": {"ignore_checks": ["W3002"]}}},
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
        t.add_resource(Method("ListVideosMethod", RestApiId=Ref(api), ResourceId=Ref(videos), HttpMethod="GET",
                              AuthorizationType="AWS_IAM", RequestValidatorId=Ref(validator),
                              RequestParameters={f"method.request.querystring.{name}": False
                                                 for name in LIST_PARAMETERS},
                              Integration=integration)),
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
            ("CKV_AWS_120", "responses are submissions (POST) and the live status of queued and running jobs: a "
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
    """Read and write job records, start executions of this one state machine (a submission admitted at once);
    write own logs, traces and ENIs. Job records answer GET: no execution is described."""
    return [
        *job_control.table_statements(p[contracts.JOBS_TABLE_ARN], p[contracts.JOBS_KEY_ARN]),
        job_control.start_statement(p[contracts.STATE_MACHINE_ARN]),
        *blocks.vpc_function_statements(names.function_log_group(cfg.name),
                                        contracts.API_FUNCTION_SECURITY_GROUP_ID.name),
    ]
