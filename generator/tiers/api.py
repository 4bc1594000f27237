"""api: a regional REST API, IAM-authorised, and the Lambda function behind it that submits videos as jobs
and reports them (handler: generator/functions/video_jobs/api.py, the same package as the jobs tier's scheduler:
generator/job_control.py).

Its routes are the rows of contract.ROUTES (POST /videos, GET /videos, GET /videos/{videoId}): each row becomes
its resources, its method, its body's model and its Lambda permission here, and a function of the handler.
"""

from __future__ import annotations

import hashlib
import json

from awacs import elasticache as elasticache_actions
from awacs import kms as kms_actions
from awacs import s3 as s3_actions
from awacs.aws import Allow, Condition, Statement, StringEquals, StringLike
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
from generator.alarms import GT, AlarmSpec
from generator.config import EnvConfig
from generator.functions.video_jobs import contract

CONSUMES = (contracts.PRIVATE_SUBNET_IDS, contracts.API_FUNCTION_SECURITY_GROUP_ID, contracts.STATE_MACHINE_ARN,
            contracts.JOBS_TABLE_NAME, contracts.JOBS_TABLE_ARN, contracts.JOBS_KEY_ARN, contracts.MEDIA_BUCKET_NAME,
            contracts.MEDIA_BUCKET_ARN, contracts.MEDIA_KEY_ARN, contracts.CACHE_ENDPOINT_ADDRESS,
            contracts.CACHE_ENDPOINT_PORT, contracts.CACHE_REPLICATION_GROUP_ID, contracts.CACHE_READER_USER_ID)
PRODUCES = (contracts.API_URL, contracts.API_ID, contracts.API_FUNCTION_NAME, contracts.API_NAME,
            contracts.API_STAGE_NAME)

# Failure modes (generator/alarms.py): the operations tier builds them, the runbook shows them.
API_DIMENSIONS = (("ApiName", contracts.API_NAME), ("Stage", contracts.API_STAGE_NAME))
FUNCTION_DIMENSIONS = (("FunctionName", contracts.API_FUNCTION_NAME),)
ALARMS = (
    AlarmSpec(
        "Api5xxRateAlarm", "api-5xx-rate", "AWS/ApiGateway", "5XXError", API_DIMENSIONS, "Average", GT, 0.05,
        "notBreaching",
        "More than 5% of API requests failed on the server side for 10 minutes",
        "The API access log group (status, error) and the function's log group; the function alarms",
        "Fix or roll back the function or its permissions; callers retry 5XX answers",
        periods=2),
    AlarmSpec(
        "ApiLatencyAlarm", "api-p99-latency", "AWS/ApiGateway", "Latency", API_DIMENSIONS, "p99", GT, 3000,
        "notBreaching",
        "The slowest 1% of API requests took over 3 s for 15 minutes (the function times out at 10 s)",
        "X-Ray traces of the stage; the function's Duration; Step Functions StartExecution latency",
        "Find the slow dependency in the traces; raise the function's memory if it is the function itself",
        periods=3),
    AlarmSpec(
        "FunctionErrorsAlarm", "api-function-errors", "AWS/Lambda", "Errors", FUNCTION_DIMENSIONS, "Sum", GT, 0,
        "notBreaching",
        "The API function raised (an unhandled error or a timeout): callers got a 5XX",
        "The function's log group (/aws/lambda/<function>), its last deployment",
        "Fix or roll back the handler (generator/functions/video_jobs/) and redeploy the api tier"),
    AlarmSpec(
        "FunctionThrottlesAlarm", "api-function-throttles", "AWS/Lambda", "Throttles", FUNCTION_DIMENSIONS, "Sum",
        GT, 0, "notBreaching",
        "Requests found every reserved instance of the function busy and were refused",
        "The function's ConcurrentExecutions against its reserved concurrency (api_reserved_concurrency, or the "
        "account's unreserved pool); API traffic",
        "Raise api_reserved_concurrency (and the account's Lambda concurrency quota), or lower api_rate_limit"),
)

STAGE_NAME = "v1"
FUNCTION_TIMEOUT_SECONDS = 10  # well inside API Gateway's 29-second integration timeout

# API Gateway answers for a route's model before the handler runs; its templates cannot quote the validator's
# own message safely, so this one states every route's rule (one response serves the whole API).
BAD_BODY_MESSAGE = (f'Invalid request body: POST /videos expects {{"videoId": "..."}}, the videoId being '
                    f"1-{contract.VIDEO_ID_MAX} letters, digits, '-' or '_'; POST /videos/{{videoId}}/upload "
                    '{"size": bytes (a whole number from 1), "contentType": "video/...", "sha256": 64 hex digits}; '
                    'POST /videos/{videoId}/upload/parts {"parts": [{"partNumber": n, "sha256": 64 hex digits}], 1 to '
                    f'{contract.PART_URLS_PER_PAGE} parts}}; '
                    'POST /videos/{videoId}/upload/complete {"parts": [{"partNumber": n, "etag": "..."}]}; '
                    "no other field")
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
        "Function", cfg, p[contracts.JOBS_TABLE_NAME], p[contracts.STATE_MACHINE_ARN],
        environment={**upload_environment(cfg, p), **cache_environment(p)},
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
            ("CKV_AWS_173", "its variables are names, ARNs, limits and the cache's endpoint and user, no secret "
                            "(the cache signs it in with IAM); Lambda encrypts them at rest with its AWS-managed "
                            "key"),
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
    paths = path_resources(t, api, contract.ROUTES)
    validator = t.add_resource(RequestValidator("RequestValidator", RestApiId=Ref(api), Name="BodyAndParameters",
                                                ValidateRequestBody=True, ValidateRequestParameters=True))
    models, methods = [], []
    for route in contract.ROUTES:
        model = route_model(api, route)
        if model:
            models.append(t.add_resource(model))
        methods.append(t.add_resource(route_method(api, route, paths[route.path], validator, model)))
        t.add_resource(route_permission(api, route, function))
    bad_body = t.add_resource(GatewayResponse(
        "BadRequestBodyResponse", RestApiId=Ref(api), ResponseType="BAD_REQUEST_BODY", StatusCode="400",
        ResponseTemplates={"application/json": json.dumps({"message": BAD_BODY_MESSAGE})},
    ))

    # A deployment is a snapshot: a new logical ID whenever what it snapshots changes makes CloudFormation
    # create a new one (and the stage switch to it); an unchanged API keeps the same ID.
    snapshot = [*paths.values(), *models, validator, *methods, bad_body]
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


def route_name(route: contract.Route) -> str:
    """The route's name in logical IDs: its handler's in PascalCase (submit_video: SubmitVideo)."""
    return "".join(word.capitalize() for word in route.handler.split("_"))


def resource_title(path: str) -> str:
    """A path's resource, named after what it addresses: /videos is VideosResource, and one video of them,
    /videos/{videoId}, VideoResource (a parameter names an item of the collection before it)."""
    words: list[str] = []
    for segment in path.strip("/").split("/"):
        if segment.startswith("{"):
            words[-1:] = [segment.strip("{}").removesuffix("Id")]
        else:
            words.append(segment)
    return "".join(word[:1].upper() + word[1:] for word in words) + "Resource"


def path_resources(t: Template, api: RestApi, routes: tuple[contract.Route, ...]) -> dict[str, Resource]:
    """One API Gateway resource per path the routes serve and per parent of one, parents first."""
    paths = sorted({"/".join(r.path.split("/")[:n]) for r in routes for n in range(2, r.path.count("/") + 2)})
    made: dict[str, Resource] = {}
    for path in paths:
        parent, _, part = path.rpartition("/")
        title = resource_title(path)
        clash = [p for p, r in made.items() if r.title == title]
        if clash:
            raise ValueError(f"paths {clash[0]} and {path} would both be the resource {title}: rename a segment")
        made[path] = t.add_resource(Resource(
            title, RestApiId=Ref(api), ParentId=Ref(made[parent]) if parent else GetAtt(api, "RootResourceId"),
            PathPart=part))
    return made


def path_parameters(path: str) -> list[str]:
    return [segment.strip("{}") for segment in path.split("/") if segment.startswith("{")]


def route_model(api: RestApi, route: contract.Route) -> Model | None:
    """The model API Gateway checks the route's JSON body against, or None for a route without a body."""
    if route.body is None:
        return None
    return Model(f"{route_name(route)}Model", RestApiId=Ref(api), Name=route_name(route),
                 ContentType="application/json", Description=f"Body of {route.method} {route.path}",
                 Schema=json.dumps(route.body, sort_keys=True))


def route_method(api: RestApi, route: contract.Route, resource: Resource, validator: RequestValidator,
                 model: Model | None) -> Method:
    """IAM-authorised, proxied to the function; API Gateway checks the body against the model and requires the
    path's parameters; the query's are optional (the handler answers 400 naming a bad value)."""
    parameters = {**{f"method.request.path.{name}": True for name in path_parameters(route.path)},
                  **{f"method.request.querystring.{name}": False for name in route.query}}
    return Method(
        f"{route_name(route)}Method", RestApiId=Ref(api), ResourceId=Ref(resource), HttpMethod=route.method,
        AuthorizationType="AWS_IAM", RequestValidatorId=Ref(validator),
        **({"RequestModels": {"application/json": Ref(model)}} if model else {}),
        **({"RequestParameters": parameters} if parameters else {}),
        Integration=Integration(Type="AWS_PROXY", IntegrationHttpMethod="POST", Uri=Sub(
            "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Function.Arn}"
            "/invocations")),
    )


def route_permission(api: RestApi, route: contract.Route, function) -> Permission:
    """API Gateway may invoke the function for this method and path of this API's stage only (a path parameter
    matches any one value: `*`)."""
    path = "/".join("*" if segment.startswith("{") else segment for segment in route.path.split("/"))
    return Permission(
        f"{route_name(route)}Permission",
        Action="lambda:InvokeFunction",
        FunctionName=GetAtt(function, "Arn"),
        Principal="apigateway.amazonaws.com",
        SourceArn=blocks.arn("execute-api", f"${{{api.title}}}/{STAGE_NAME}/{route.method}{path}"),
    )


def fingerprint(resources_: list) -> str:
    text = json.dumps([r.to_dict() for r in resources_], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def upload_environment(cfg: EnvConfig, p: dict[contracts.Contract, Ref]) -> dict:
    """What the upload routes read (generator/functions/video_jobs/jobs/uploads.py): the bucket and this environment's
    limits."""
    return {"MEDIA_BUCKET": p[contracts.MEDIA_BUCKET_NAME], "UPLOAD_MAX_BYTES": str(cfg.upload_max_gib * 2 ** 30),
            "UPLOAD_CONTENT_TYPES": ",".join(cfg.upload_content_types),
            "UPLOAD_URL_SECONDS": str(cfg.upload_url_seconds)}


def cache_environment(p: dict[contracts.Contract, Ref]) -> dict:
    """What GET /videos/{videoId} reads a running attempt's progress with (jobs/progress.py): the container
    contract's REDIS_* variables (docs/processor.md), as the API's read-only cache user, signed in with IAM."""
    return {"REDIS_AUTH": "iam", "REDIS_HOST": p[contracts.CACHE_ENDPOINT_ADDRESS],
            "REDIS_PORT": p[contracts.CACHE_ENDPOINT_PORT],
            "REDIS_REPLICATION_GROUP_ID": p[contracts.CACHE_REPLICATION_GROUP_ID],  # what the token is made for
            "REDIS_TLS": "true", "REDIS_USERNAME": p[contracts.CACHE_READER_USER_ID]}


def cache_statement() -> Statement:
    """IAM authentication to Redis as the API's reader user, on this replication group only: the token is made for
    both, so both are the resources (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/auth-iam.html)."""
    return Statement(Sid="ConnectAsProgressReader", Effect=Allow, Action=[elasticache_actions.Connect], Resource=[
        blocks.arn("elasticache", f"replicationgroup:${{{contracts.CACHE_REPLICATION_GROUP_ID.name}}}"),
        blocks.arn("elasticache", f"user:${{{contracts.CACHE_READER_USER_ID.name}}}")])


# What presigning uploads of sources needs: the URLs the function signs carry its permissions. PutObject covers
# CreateMultipartUpload, UploadPart and CompleteMultipartUpload; nothing outside sources/, no read, no delete.
UPLOAD_ACTIONS = (s3_actions.AbortMultipartUpload, s3_actions.ListMultipartUploadParts, s3_actions.PutObject)


def upload_statements(p: dict[contracts.Contract, Ref]) -> list[Statement]:
    """Upload sources (and abort or list an upload's parts) under sources/ of the media bucket; use the media key
    only through S3 (SSE-KMS uploads need GenerateDataKey, multipart uploads Decrypt as well)."""
    return [
        Statement(Sid="UploadSources", Effect=Allow, Action=list(UPLOAD_ACTIONS),
                  Resource=[Sub(f"${{Bucket}}/{contract.SOURCES_PREFIX}*", Bucket=p[contracts.MEDIA_BUCKET_ARN])]),
        # GET /videos/{videoId} reads an attempt's manifest and presigns GETs of its outputs: outputs/ only.
        Statement(Sid="ReadOutputs", Effect=Allow, Action=[s3_actions.GetObject],
                  Resource=[Sub(f"${{Bucket}}/{contract.OUTPUTS_PREFIX}*", Bucket=p[contracts.MEDIA_BUCKET_ARN])]),
        # A manifest not there yet must answer 404 (NoSuchKey, "no outputs"), which S3 answers only to a caller that
        # may list the bucket, 403 otherwise (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html,
        # Permissions): listing narrowed to outputs/ by s3:prefix, as the processor's.
        Statement(Sid="ListOutputs", Effect=Allow, Action=[s3_actions.ListBucket],
                  Resource=[p[contracts.MEDIA_BUCKET_ARN]],
                  Condition=Condition(StringLike("s3:prefix", f"{contract.OUTPUTS_PREFIX}*"))),
        Statement(Sid="UseMediaKeyThroughS3", Effect=Allow,
                  Action=[kms_actions.Decrypt, kms_actions.GenerateDataKey], Resource=[p[contracts.MEDIA_KEY_ARN]],
                  Condition=Condition(StringEquals("kms:ViaService", Sub(f"s3.${{{AWS_REGION}}}.amazonaws.com")))),
    ]


def function_statements(cfg: EnvConfig, p: dict[contracts.Contract, Ref]) -> list[Statement]:
    """Read and write job records, start executions of this one state machine (a submission admitted at once);
    presign uploads of sources; read progress from the cache; write own logs, traces and ENIs. Job records answer
    GET: no execution is described."""
    return [
        *job_control.table_statements(p[contracts.JOBS_TABLE_ARN], p[contracts.JOBS_KEY_ARN]),
        job_control.start_statement(p[contracts.STATE_MACHINE_ARN]),
        *upload_statements(p),
        cache_statement(),
        *blocks.vpc_function_statements(names.function_log_group(cfg.name),
                                        contracts.API_FUNCTION_SECURITY_GROUP_ID.name),
    ]
