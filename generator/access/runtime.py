"""Every AWS call the runtime makes in one environment, as (caller, request, route, policies), and its verdict.

Where the calls come from:
  * recorded: the API, scheduler, bootstrap and RDS log-groups functions' calls as the tests record them
    (recorded_calls.json); their resources are named by the function's environment or the custom resource's
    properties; and the processor's, as the task role, named by its container's environment;
  * the state machine's integrations, read from its definition (ecs:runTask(.sync), sns:publish, lambda:invoke);
  * the processor's contract, read from its task definition: image pull and log writes (execution role), IAM
    sign-in to PostgreSQL and Redis, the EFS mount (task role); the same Redis sign-in by a function whose environment
    says REDIS_AUTH=iam (the API function reading progress), as its role;
  * deliveries AWS makes for the templates' wiring: Lambda's logs and dead letters, EventBridge's invocations and
    dead letters, API Gateway's invocations, SNS's dead letters, CloudWatch alarms' notices;
and every KMS use each of them implies, with the service it goes through and its encryption context.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from generator import graph
from generator.access import semantics as aws
from generator.access.policy import IDENTITY, KEY, RESOURCE, Policy, Principal, Request, UnknownCondition, evaluate
from generator.access.routes import IN_VPC_ROUTE, NONE, PUBLIC_ROUTE, SERVICE_SIDE_ROUTE, Route, routes
from generator.access.values import ACCOUNT, Renderer

TLS = {"aws:SecureTransport": "true"}  # every SDK call and every AWS service call here is HTTPS


@dataclass(frozen=True)
class Call:
    caller: str  # "<env>/<template>.json <logical id>" of what makes the call
    origin: str  # how the proof knows of it
    request: Request
    route: Route
    resource_policies: tuple[Policy, ...] = ()
    problem: str = ""  # set when the call cannot even be made as the contract stands

    def verdict(self) -> str | None:
        """None when AWS would allow the call; else one line naming the call and what refuses it."""
        if self.problem:
            reason = self.problem
        elif self.route.kind == NONE:
            reason = f"no route to the service from {self.route.where}"
        elif self.route.refused:
            reason = self.route.refused
        else:
            try:
                reason = evaluate(self.request, self.resource_policies, self.route.policy) or ""
            except UnknownCondition as e:
                reason = f"a condition operator the access proof does not know ({e}): extend generator.access.policy"
            if not reason:
                return None
        return (f"{self.caller}: {self.request.action} on {self.request.resource} ({self.origin}) "
                f"via {self.route.describe()}: {reason}")


@dataclass
class Environment:
    """One environment's templates, rendered, with the lookups the calls need."""

    env: str
    stacks: graph.Stacks
    region: str
    r: Renderer = field(init=False)

    def __post_init__(self) -> None:
        self.r = Renderer(self.stacks, self.region)

    def label(self, tier: str, logical_id: str) -> str:
        return f"{self.env}/{tier}.json {logical_id}"

    def resources(self, *types: str) -> Iterator[tuple[str, str, dict]]:
        return graph.each_resource(self.stacks, *types)

    def find(self, kind: str, rendered: str, attribute: str = "") -> tuple[str, str] | None:
        """The resource of a type whose Ref (or attribute) renders to a value."""
        for t, i, _ in self.resources(kind):
            mine = self.r.attribute(t, i, attribute) if attribute else self.r.ref(t, i)
            if mine == rendered:
                return t, i
        return None

    # --- principals and policies ------------------------------------------------------------------------------

    def role(self, tier: str, value: Any) -> Principal | None:
        """The role a RoleArn-like value names, with its identity policies (inline and attached)."""
        found = sorted({(t, i) for t, i, _ in graph.trace(self.stacks, tier, value)
                        if self.stacks[t].get("Resources", {}).get(i, {}).get("Type") == "AWS::IAM::Role"})
        if not found:
            return None
        t, i = found[0]
        role = self.r.resource(t, i)
        policies = [Policy(IDENTITY, f"{self.label(t, i)} {p.get('PolicyName', n)}",
                           self.statements(t, p["PolicyDocument"]))
                    for n, p in enumerate(role.get("Properties", {}).get("Policies", []))]
        for pt, pi, p in self.resources("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            if (t, i) in {(x, y) for x, y, _ in graph.trace(self.stacks, pt, p["Properties"].get("Roles"))}:
                policies.append(Policy(IDENTITY, self.label(pt, pi),
                                       self.statements(pt, p["Properties"]["PolicyDocument"])))
        return Principal("role", self.r.attribute(t, i, "Arn"), self.label(t, i), ACCOUNT, tuple(policies))

    def statements(self, tier: str, document: Any) -> tuple[dict, ...]:
        rendered = self.r.value(tier, document) or {}
        statements = rendered.get("Statement", [])
        return tuple(statements if isinstance(statements, list) else [statements])

    def key_of(self, tier: str, value: Any) -> tuple[str, str] | None:
        """The customer managed key a KmsKeyId-like value names (None: an AWS managed or owned key)."""
        for t, i, _ in sorted(graph.trace(self.stacks, tier, value)):
            if self.stacks[t].get("Resources", {}).get(i, {}).get("Type") == "AWS::KMS::Key":
                return t, i
        return None

    def key_policy(self, key: tuple[str, str]) -> Policy:
        t, i = key
        return Policy(KEY, f"{self.label(t, i)} KeyPolicy",
                      self.statements(t, self.r.resource(t, i)["Properties"]["KeyPolicy"]))

    def key_arn(self, key: tuple[str, str]) -> str:
        return self.r.attribute(*key, "Arn")

    def attached_policies(self, kind: str, prop: str, target: tuple[str, str], document: str = "PolicyDocument"
                          ) -> tuple[Policy, ...]:
        """Resource policies of a type (TopicPolicy, QueuePolicy) whose `prop` list names the target."""
        found = []
        for t, i, p in self.resources(kind):
            if target in {(x, y) for x, y, _ in graph.trace(self.stacks, t, p["Properties"].get(prop))}:
                found.append(Policy(RESOURCE, f"{self.label(t, i)} {document}",
                                    self.statements(t, p["Properties"][document])))
        return tuple(found)

    def function_permissions(self, function: tuple[str, str]) -> tuple[Policy, ...]:
        """A function's resource policy: its AWS::Lambda::Permission resources, as the statements Lambda adds
        (https://docs.aws.amazon.com/lambda/latest/dg/access-control-resource-based.html)."""
        found = []
        arn = self.r.attribute(*function, "Arn")
        for t, i, p in self.resources("AWS::Lambda::Permission"):
            props = p["Properties"]
            if self.r.text(t, props.get("FunctionName")) not in (arn, self.r.ref(*function)):
                continue
            principal = self.r.text(t, props["Principal"])
            condition: dict[str, dict[str, str]] = {}
            if "SourceArn" in props:
                condition["ArnLike"] = {"aws:SourceArn": self.r.text(t, props["SourceArn"])}
            if "SourceAccount" in props:
                condition["StringEquals"] = {"aws:SourceAccount": self.r.text(t, props["SourceAccount"])}
            statement = {"Sid": i, "Effect": "Allow", "Action": self.r.text(t, props["Action"]), "Resource": arn,
                         "Principal": {"Service": principal} if principal.endswith(".amazonaws.com")
                         else {"AWS": principal}}
            if condition:
                statement["Condition"] = condition
            found.append(Policy(RESOURCE, self.label(t, i), (statement,)))
        return tuple(found)


# --- calls and the KMS uses they imply ---------------------------------------------------------------------------

def role_context(principal: Principal) -> dict[str, str]:
    return {**TLS, "aws:PrincipalAccount": ACCOUNT, "aws:PrincipalArn": principal.name}


def kms_calls(e: Environment, caller: str, origin: str, principal: Principal, key: tuple[str, str] | None,
              actions: tuple[str, ...], via: str | None, context: dict[str, str], source: dict[str, str] | None = None
              ) -> list[Call]:
    """The KMS requests a service makes with a customer managed key for a call: as the caller through the service
    (kms:ViaService, kms:CallerAccount), or as the service principal itself; each with the encryption context."""
    if key is None:
        return []
    request_context = {f"kms:EncryptionContext:{k}": v for k, v in context.items()}
    request_context.update(TLS)
    if via:
        request_context.update({"kms:ViaService": aws.via_service(via, e.region), "kms:CallerAccount": ACCOUNT,
                                "aws:PrincipalAccount": ACCOUNT, "aws:PrincipalArn": principal.name})
    request_context.update(source or {})
    return [Call(caller, f"{origin}, through {via or principal.name}", Request(principal, action, e.key_arn(key),
                                                                              request_context),
                 SERVICE_SIDE_ROUTE, (e.key_policy(key),)) for action in actions]


def _encrypted_send(e: Environment, caller: str, origin: str, principal: Principal, target_arn: str, route: Route,
                    source: dict[str, str] | None, target_type: str, find_by: str, policy_type: str,
                    policy_property: str, action: str, kms_actions: Any, service: str, context_key: str
                    ) -> list[Call]:
    """`action` on a topic or queue (checked against its resource policy), and with an encrypted one the service's
    use of its key, as the sender through the service or as the sending service itself."""
    target = e.find(target_type, target_arn, find_by)  # find_by "": the Ref renders to the ARN
    context = {**(role_context(principal) if principal.kind == "role" else TLS), **(source or {})}
    calls = [Call(caller, origin, Request(principal, action, target_arn, context), route,
                  e.attached_policies(policy_type, policy_property, target) if target else ())]
    if target:
        key = e.key_of(target[0], e.r.resource(*target)["Properties"].get("KmsMasterKeyId"))
        calls += kms_calls(e, caller, origin, principal, key, kms_actions,
                           service if principal.kind == "role" else None, {context_key: target_arn}, source)
    return calls


def topic_publish(e: Environment, caller: str, origin: str, principal: Principal, topic_arn: str, route: Route,
                  source: dict[str, str] | None = None) -> list[Call]:
    """sns:Publish to a topic, and with an encrypted topic kms:GenerateDataKey and kms:Decrypt
    (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#sns-what-permissions-for-sse)."""
    return _encrypted_send(e, caller, origin, principal, topic_arn, route, source, "AWS::SNS::Topic", "",
                           "AWS::SNS::TopicPolicy", "Topics", "sns:Publish", aws.SNS_PUBLISH_KMS, "sns",
                           aws.SNS_CONTEXT)


def queue_send(e: Environment, caller: str, origin: str, principal: Principal, queue_arn: str, route: Route,
               source: dict[str, str] | None = None) -> list[Call]:
    """sqs:SendMessage, and with an encrypted queue kms:GenerateDataKey and kms:Decrypt
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html)."""
    return _encrypted_send(e, caller, origin, principal, queue_arn, route, source, "AWS::SQS::Queue", "Arn",
                           "AWS::SQS::QueuePolicy", "Queues", "sqs:SendMessage", aws.SQS_SEND_KMS, "sqs",
                           aws.SQS_CONTEXT)


def log_writes(e: Environment, caller: str, origin: str, principal: Principal, group: str, stream: str,
               route_of: Any) -> list[Call]:
    """logs:CreateLogStream and logs:PutLogEvents on a log stream, and CloudWatch Logs' own use of the group's
    key, bound to the group by the encryption context
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html)."""
    stream_arn = e.r.arn("logs", f"log-group:{group}:log-stream:{stream}")
    calls = [Call(caller, origin, Request(principal, action, stream_arn, role_context(principal)), route)
             for action in ("logs:CreateLogStream", "logs:PutLogEvents") for route in route_of("logs")]
    found = e.find("AWS::Logs::LogGroup", group)
    if found:
        key = e.key_of(found[0], e.r.resource(*found)["Properties"].get("KmsKeyId"))
        logs = Principal("service", aws.logs_principal(e.region))
        calls += kms_calls(e, caller, f"{origin}, the group's key", logs, key, aws.LOGS_KMS, None,
                           {aws.LOGS_CONTEXT: e.r.arn("logs", f"log-group:{group}")})
    return calls


def secret_read(e: Environment, caller: str, origin: str, principal: Principal, secret_arn: str, routes_: list[Route]
                ) -> list[Call]:
    """secretsmanager:GetSecretValue, and kms:Decrypt through Secrets Manager with the secret's ARN as context
    (https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html)."""
    read = Request(principal, "secretsmanager:GetSecretValue", secret_arn, role_context(principal))
    calls = [Call(caller, origin, read, route) for route in routes_]
    key = None
    database = e.find("AWS::RDS::DBInstance", secret_arn, "MasterUserSecret.SecretArn")
    if database:
        key = e.key_of(database[0], e.r.resource(*database)["Properties"].get("MasterUserSecret", {}).get("KmsKeyId"))
    secret = e.find("AWS::SecretsManager::Secret", secret_arn)
    if secret:
        key = e.key_of(secret[0], e.r.resource(*secret)["Properties"].get("KmsKeyId"))
    return calls + kms_calls(e, caller, origin, principal, key, ("kms:Decrypt",), "secretsmanager",
                             {aws.SECRETS_CONTEXT: secret_arn})


# --- recorded calls of the functions -----------------------------------------------------------------------------

SYMBOL = re.compile(r"\$\{([^}]+)\}")


def function_calls(e: Environment, recorded: list[dict]) -> list[Call]:
    calls = []
    for t, i, fn in e.resources("AWS::Lambda::Function"):
        props = fn["Properties"]
        handler, code = e.r.text(t, props.get("Handler")), json.dumps(props.get("Code"))
        # A function runs a recorded handler when its Handler is the handler's and its Code the package's zip
        # (functions/<package>.zip, as deploy.sh packages generator/functions/<package>/).
        mine = [c for c in recorded if c["handler"] == handler and f"{c['package']}.zip" in code]
        principal = e.role(t, props.get("Role"))
        caller = e.label(t, i)
        if principal is None:
            continue
        variables = {k: e.r.text(t, v) for k, v in ((props.get("Environment") or {}).get("Variables") or {}).items()}
        subnet_value = (props.get("VpcConfig") or {}).get("SubnetIds")
        group_value = (props.get("VpcConfig") or {}).get("SecurityGroupIds")

        def route_of(service: str, t: str = t, subnet_value: Any = subnet_value,
                     group_value: Any = group_value) -> list[Route]:
            return routes(e.r, e.env, t, subnet_value, service, group_value)

        served = custom_resource_properties(e, (t, i))
        for entry in mine:
            for symbols in served or [{}]:
                if applies(entry, {**variables, **symbols}):
                    calls += recorded_call(e, caller, principal, entry, {**variables, **symbols}, route_of)
        calls += platform_calls(e, t, i, fn, principal, route_of)
        raw = (props.get("Environment") or {}).get("Variables") or {}
        if variables.get("REDIS_AUTH") == "iam":  # the container contract's Redis sign-in, as a function makes it
            calls += cache_connect(e, caller, t, f"function {i}: REDIS_AUTH=iam", "the function's", raw, variables,
                                   principal)
    return calls


def custom_resource_properties(e: Environment, function: tuple[str, str]) -> list[dict[str, str]]:
    """The `ResourceProperties.<name>` symbols of every custom resource the function serves, and its
    `DeletionPolicy` (CloudFormation sends Delete only where it is Delete, the default:
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html)."""
    found = []
    for t, _i, r in e.resources():
        if r["Type"].startswith("Custom::") or r["Type"] == "AWS::CloudFormation::CustomResource":
            props = r.get("Properties", {})
            if function in {(x, y) for x, y, _ in graph.trace(e.stacks, t, props.get("ServiceToken"))}:
                found.append({**{f"ResourceProperties.{k}": e.r.text(t, v) for k, v in props.items()},
                              "DeletionPolicy": str(r.get("DeletionPolicy", "Delete"))})
    return found


def applies(entry: dict, symbols: dict[str, str]) -> bool:
    """Whether the handler makes a recorded call here: every symbol of its `only` renders to the value named."""
    return all(symbols.get(name, "").lower() == str(value).lower() for name, value in (entry.get("only") or {}).items())


def recorded_call(e: Environment, caller: str, principal: Principal, entry: dict, symbols: dict[str, str],
                  route_of: Any) -> list[Call]:
    operation = entry["operation"]
    origin = f"recorded {entry['handler']} {operation}"
    service, name = operation.split(".", 1)
    named = {m.removeprefix("execution of ") for value in _flat(entry["parameters"]) for m in SYMBOL.findall(value)}
    missing = sorted(named - set(symbols) - {aws.RESPONSE_URL})
    if missing:
        request = Request(principal, operation, ", ".join(f"${{{m}}}" for m in missing))
        return [Call(caller, origin, request, IN_VPC_ROUTE, problem=f"the function is given no {', '.join(missing)}")]

    def value(v: str) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("execution of "):
                return aws.execution_arn(symbols[name.removeprefix("execution of ")])
            if name == aws.RESPONSE_URL:
                return aws.RESPONSE_URL
            return symbols[name]
        return SYMBOL.sub(one, v)

    params: dict[str, Any] = {k: ([value(x) for x in v] if isinstance(v, list) else value(v))
                              for k, v in entry["parameters"].items()}
    route_service = aws.ENDPOINT_SERVICE.get(service, service)
    routes_ = route_of(route_service)
    if service == "dynamodb":
        return dynamodb_calls(e, caller, origin, principal, name, params, routes_)
    if service == "stepfunctions":
        arn = params.get("stateMachineArn") or params.get("executionArn", "")
        return [Call(caller, origin, Request(principal, f"states:{name}", arn, role_context(principal)), route)
                for route in routes_]
    if service == "sns" and name == "Publish":
        return [c for route in routes_ for c in topic_publish(e, caller, origin, principal,
                                                               params.get("TopicArn") or params["TargetArn"], route)]
    if service == "secretsmanager" and name == "GetSecretValue":
        return secret_read(e, caller, origin, principal, params["SecretId"], routes_)
    if service == "s3" and name == "PutObject" and params.get(aws.RESPONSE_URL_PARAMETER) == aws.RESPONSE_URL:
        # The response PUT goes to a URL CloudFormation pre-signed: AWS's principal, AWS's bucket; only the
        # endpoint policy on the route is ours.
        bucket = aws.custom_resource_response_bucket(e.region)
        request = Request(Principal("aws", "CloudFormation's pre-signed response URL", account="AWS"),
                          "s3:PutObject", f"arn:aws:s3:::{bucket}/{aws.SAMPLE_RESPONSE_KEY}",
                          {**TLS, "aws:PrincipalAccount": "AWS", "s3:ResourceAccount": "AWS"})
        return [Call(caller, origin, request, route) for route in routes_]
    if service == "s3" and "Bucket" in params and name in aws.S3_ACTIONS:
        # A pre-signed URL is used by the function's client, from wherever it is, with the function's role.
        return s3_calls(e, caller, origin, principal, name, params,
                        [PUBLIC_ROUTE] if entry.get("presigned") else routes_, bool(entry.get("missing")))
    if service == "logs" and ("logGroupName" in params or "logGroupIdentifier" in params):
        return log_group_calls(e, caller, origin, principal, name, params, routes_)
    request = Request(principal, operation, json.dumps(params, sort_keys=True))
    return [Call(caller, origin, request, IN_VPC_ROUTE,
                 problem="the access proof does not know how AWS authorizes this operation: extend "
                         "generator.access.runtime.recorded_call")]


def _flat(parameters: dict) -> list[str]:
    return [x for v in parameters.values() for x in (v if isinstance(v, list) else [v])]


def dynamodb_calls(e: Environment, caller: str, origin: str, principal: Principal, operation: str, params: dict,
                   routes_: list[Route]) -> list[Call]:
    """Each item action a DynamoDB operation is authorized as (a transaction: one per item,
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html), on the table or
    the index it names, and kms:Decrypt through DynamoDB of an encrypted table's key (its context: the table's name
    and the account, https://docs.aws.amazon.com/kms/latest/developerguide/services-dynamodb.html)."""
    items: list[tuple[str, str, str]] = []  # (action, table, index)
    if operation in aws.DYNAMODB_TRANSACTIONS:
        for item in params.get("TransactItems", []):
            kind, _, table = item.partition(" ")
            items.append((aws.DYNAMODB_TRANSACTION_ITEM[kind], table, ""))
    else:
        items.append((f"dynamodb:{operation}", params["TableName"], params.get("IndexName", "")))
    calls = []
    for action, table, index in items:
        arn = e.r.arn("dynamodb", f"table/{table}" + (f"/index/{index}" if index else ""))
        calls += [Call(caller, origin, Request(principal, action, arn, role_context(principal)), route)
                  for route in routes_]
        found = e.find("AWS::DynamoDB::Table", table)
        if found:
            sse = e.r.resource(*found)["Properties"].get("SSESpecification") or {}
            key = e.key_of(found[0], sse.get("KMSMasterKeyId"))
            calls += kms_calls(e, caller, origin, principal, key, ("kms:Decrypt",), "dynamodb",
                               {"aws:dynamodb:tableName": table, "aws:dynamodb:subscriberId": ACCOUNT})
    return calls


def s3_calls(e: Environment, caller: str, origin: str, principal: Principal, operation: str, params: dict,
             routes_: list[Route], missing: bool = False) -> list[Call]:
    """An S3 operation as the action S3 authorizes it as (a bucket operation on the bucket's ARN, an object one on
    the object's; a version named by its id as s3:GetObjectVersion; a listing's Prefix as s3:prefix), judged with
    the bucket's policy, and its use of the bucket's KMS key through S3. A read S3 answered "no such key" also needs
    s3:ListBucket (else S3 answers 403 and the caller's handling of the absence never runs)."""
    bucket_arn = f"arn:aws:s3:::{params['Bucket']}"
    arn = bucket_arn if operation in aws.S3_BUCKET_OPERATIONS else f"{bucket_arn}/{params.get('Key', '')}"
    found = e.find("AWS::S3::Bucket", params["Bucket"])
    context = {**role_context(principal), "s3:ResourceAccount": ACCOUNT if found else "AWS"}
    context.update({key: params[name] for name, key in aws.S3_HEADER_KEYS.items() if name in params})
    if operation in aws.S3_BUCKET_OPERATIONS and "Prefix" in params:
        context[aws.S3_PREFIX_KEY] = params["Prefix"]
    action = (aws.S3_VERSION_ACTIONS[operation] if params.get("VersionId") and operation in aws.S3_VERSION_ACTIONS
              else aws.S3_ACTIONS[operation])
    policies = e.attached_policies("AWS::S3::BucketPolicy", "Bucket", found) if found else ()
    calls = [Call(caller, origin, Request(principal, action, arn, context), route, policies) for route in routes_]
    if missing:
        listing = {**context, aws.S3_PREFIX_KEY: params.get("Key", "")}
        calls += [Call(caller, f"{origin}, answered no such key", Request(
            principal, aws.S3_MISSING_KEY_ACTION, bucket_arn, listing), route, policies) for route in routes_]
    if found:
        rules = (e.r.resource(*found)["Properties"].get("BucketEncryption") or {}).get(
            "ServerSideEncryptionConfiguration") or [{}]
        default = rules[0].get("ServerSideEncryptionByDefault") or {}
        key = e.key_of(found[0], default.get("KMSMasterKeyID"))
        bound = bucket_arn if e.r.text(found[0], rules[0].get("BucketKeyEnabled", False)) == "true" else arn
        calls += kms_calls(e, caller, origin, principal, key, aws.S3_KMS.get(operation, ()), "s3",
                           {aws.S3_CONTEXT: bound})
    return calls


def log_group_calls(e: Environment, caller: str, origin: str, principal: Principal, operation: str, params: dict,
                    routes_: list[Route]) -> list[Call]:
    """A CloudWatch Logs operation on a log group, and where it names a key, CloudWatch Logs' own use of that key
    for the group (see aws.LOGS_KEY_OPERATIONS)."""
    group = params.get("logGroupName") or params["logGroupIdentifier"]
    group_arn = e.r.arn("logs", f"log-group:{group}")
    calls = [Call(caller, origin, Request(principal, f"logs:{operation}", group_arn, role_context(principal)), route)
             for route in routes_]
    if operation in aws.LOGS_KEY_OPERATIONS and params.get("kmsKeyId"):
        key = e.find("AWS::KMS::Key", params["kmsKeyId"], "Arn")
        calls += kms_calls(e, caller, f"{origin}, the group's key", Principal("service", aws.logs_principal(e.region)),
                           key, aws.LOGS_KMS, None, {aws.LOGS_CONTEXT: group_arn})
    return calls


def platform_calls(e: Environment, t: str, i: str, fn: dict, principal: Principal, route_of: Any) -> list[Call]:
    """What Lambda does with the function's role: writes its logs, sends failed asynchronous events to its dead
    letter target (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html#invocation-dlq).
    Lambda makes these calls itself, not from the function's subnets."""
    props, caller = fn["Properties"], e.label(t, i)
    group = e.r.text(t, (props.get("LoggingConfig") or {}).get("LogGroup")) if (props.get("LoggingConfig") or {}).get(
        "LogGroup") else f"/aws/lambda/{e.r.ref(t, i)}"
    calls = log_writes(e, caller, "Lambda writes the function's logs", principal, group, "2026/01/01/[$LATEST]0",
                       lambda service: [SERVICE_SIDE_ROUTE])
    target = (props.get("DeadLetterConfig") or {}).get("TargetArn")
    if target:
        arn = e.r.text(t, target)
        send = queue_send if ":sqs:" in arn else topic_publish
        calls += send(e, caller, "Lambda dead-letters a failed event", principal, arn, SERVICE_SIDE_ROUTE)
    return calls


# --- the state machine's integrations ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskLaunch:
    task_definition: tuple[str, str]
    subnets: tuple[str, Any]  # (template, value) the task's subnets come from
    # container name -> the variables the state machine sets per execution, valued from a sample execution input
    overrides: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    groups: Any = ()  # the value (in the subnets' template) the task's security groups come from


def state_machine_calls(e: Environment) -> tuple[list[Call], list[TaskLaunch]]:
    calls: list[Call] = []
    launches: list[TaskLaunch] = []
    for t, i, sm in e.resources("AWS::StepFunctions::StateMachine"):
        props = sm["Properties"]
        principal = e.role(t, props.get("RoleArn"))
        if principal is None:
            continue
        raw = props.get("DefinitionSubstitutions") or {}
        substitutions = {k: e.r.text(t, v) for k, v in raw.items()}
        definition = props.get("Definition")
        if definition is None:
            definition = json.loads(e.r.text(t, props.get("DefinitionString")))
        for name, state in _task_states(definition):
            found = integration_calls(e, e.label(t, i), name, state, principal, substitutions, t, raw)
            calls += found[0]
            launches += found[1]
    return calls, launches


def _task_states(definition: dict) -> Iterator[tuple[str, dict]]:
    for name, state in sorted((definition.get("States") or {}).items()):
        if state.get("Type") == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from _task_states(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from _task_states(state[key])


def _substitute(value: Any, substitutions: dict[str, str]) -> Any:
    if isinstance(value, str):
        return SYMBOL.sub(lambda m: substitutions.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_substitute(v, substitutions) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, substitutions) for k, v in value.items()}
    return value


def integration_calls(e: Environment, caller: str, state_name: str, state: dict, principal: Principal,
                      substitutions: dict[str, str], tier: str, raw: dict) -> tuple[list[Call], list[TaskLaunch]]:
    """The calls Step Functions makes with the state machine's role for one Task state: the documented policies of
    each integration (https://docs.aws.amazon.com/step-functions/latest/dg/service-integration-iam-templates.html)."""
    resource = str(state.get("Resource", ""))
    integration = re.sub(r"^arn:[^:]+:states:::", "", resource)
    params = _substitute(state.get("Parameters") or state.get("Arguments") or {}, substitutions)
    origin = f"state {state_name} ({integration})"
    context = role_context(principal)
    if integration.startswith("ecs:runTask"):
        return ecs_calls(e, caller, origin, principal, integration, params, state, raw, tier)
    if integration.startswith("sns:publish"):
        return topic_publish(e, caller, origin, principal, params.get("TopicArn") or params.get("TargetArn", ""),
                             SERVICE_SIDE_ROUTE), []
    if integration.startswith("lambda:invoke"):
        function = str(params.get("FunctionName", ""))
        found = e.find("AWS::Lambda::Function", function, "Arn")
        return [Call(caller, origin, Request(principal, "lambda:InvokeFunction", function, context),
                     SERVICE_SIDE_ROUTE, e.function_permissions(found) if found else ())], []
    request = Request(principal, integration, resource)
    return [Call(caller, origin, request, SERVICE_SIDE_ROUTE,
                 problem="an integration the access proof does not know: extend "
                         "generator.access.runtime.integration_calls")], []


def ecs_calls(e: Environment, caller: str, origin: str, principal: Principal, integration: str, params: dict,
              state: dict, raw: dict, tier: str) -> tuple[list[Call], list[TaskLaunch]]:
    """RunTask on the task definition in the cluster, iam:PassRole of its roles to ECS tasks, and for .sync
    DescribeTasks/StopTask of its tasks and the managed rule Step Functions keeps for ECS events
    (https://docs.aws.amazon.com/step-functions/latest/dg/ecs-iam.html)."""
    cluster = str(params.get("Cluster", "default"))
    cluster_arn = cluster if cluster.startswith("arn:") else e.r.arn("ecs", f"cluster/{cluster}")
    cluster_name = cluster_arn.rsplit("/", 1)[-1]
    task_definition = str(params.get("TaskDefinition", ""))
    on_cluster = {**role_context(principal), "ecs:cluster": cluster_arn}
    calls = [Call(caller, origin, Request(principal, "ecs:RunTask", task_definition, on_cluster), SERVICE_SIDE_ROUTE)]
    found = e.find("AWS::ECS::TaskDefinition", task_definition)
    launches = []
    if found:
        props = e.r.resource(*found)["Properties"]
        for prop in ("TaskRoleArn", "ExecutionRoleArn"):
            if prop in props:
                calls.append(Call(caller, f"{origin}, passes its {prop}", Request(
                    principal, "iam:PassRole", e.r.text(found[0], props[prop]),
                    {**role_context(principal), "iam:PassedToService": "ecs-tasks.amazonaws.com"}), SERVICE_SIDE_ROUTE))
        awsvpc = (state.get("Parameters") or state.get("Arguments") or {}).get("NetworkConfiguration", {}).get(
            "AwsvpcConfiguration", {})

        def substituted(values: list) -> list:
            return [raw[m] for s in values for m in SYMBOL.findall(str(s)) if m in raw]

        bucket = e.r.text(tier, raw[aws.EXECUTION_BUCKET]) if aws.EXECUTION_BUCKET in raw else ""
        launches.append(TaskLaunch(found, (tier, substituted(awsvpc.get("Subnets", []))),
                                   container_overrides(params, bucket), substituted(awsvpc.get("SecurityGroups", []))))
    if integration.endswith(".sync"):
        task = e.r.arn("ecs", f"task/{cluster_name}/0123456789abcdef0123456789abcdef")
        calls += [Call(caller, origin, Request(principal, action, task, on_cluster), SERVICE_SIDE_ROUTE)
                  for action in ("ecs:DescribeTasks", "ecs:StopTask")]
        rule = e.r.arn("events", f"rule/{aws.ECS_SYNC_RULE}")
        calls += [Call(caller, origin, Request(principal, action, rule, role_context(principal)), SERVICE_SIDE_ROUTE)
                  for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule")]
    return calls, launches


def container_overrides(params: dict, bucket: str) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """The environment RunTask's ContainerOverrides set, each `Value.$` read from a sample execution input of the
    shape job control starts executions with (aws.sample_execution_input), the bucket the state machine's own."""
    found = []
    sample = aws.sample_execution_input(bucket)
    for container in (params.get("Overrides") or {}).get("ContainerOverrides") or []:
        values = []
        for variable in container.get("Environment") or []:
            value = variable.get("Value") if "Value" in variable else aws.read_input(variable.get("Value.$", ""),
                                                                                   sample)
            if value is not None and variable.get("Name"):
                values.append((str(variable["Name"]), str(value)))
        found.append((str(container.get("Name", "")), tuple(sorted(values))))
    return tuple(found)


# --- the processor's contract ----------------------------------------------------------------------------------

ECR_IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([^:@]+)")


def task_calls(e: Environment, launch: TaskLaunch, recorded: Sequence[dict] = ()) -> list[Call]:
    t, i = launch.task_definition
    props = e.r.resource(t, i)["Properties"]
    caller = e.label(t, i)
    execution = e.role(t, props.get("ExecutionRoleArn"))
    task_role = e.role(t, props.get("TaskRoleArn"))

    def route_of(service: str) -> list[Route]:
        return routes(e.r, e.env, launch.subnets[0], launch.subnets[1], service, launch.groups)

    calls: list[Call] = []
    for container in props.get("ContainerDefinitions", []):
        name = container.get("Name", "?")
        if execution is not None:
            calls += pull_and_log_calls(e, caller, t, name, container, execution, route_of)
        if task_role is not None:
            calls += contract_calls(e, caller, t, name, container, props, task_role)
            calls += processor_calls(e, caller, t, container, launch, task_role, recorded, route_of)
    return calls


def processor_calls(e: Environment, caller: str, t: str, container: dict, launch: TaskLaunch, role: Principal,
                    recorded: Sequence[dict], route_of: Any) -> list[Call]:
    """The processor's recorded calls (package `processor`, recorded from tests/test_processor_media.py's runs of
    processor.pipeline) as the task role from the task's subnets, their symbols the container's environment: the
    task definition's, and what the state machine sets per execution."""
    name = container.get("Name", "?")
    symbols = {x["Name"]: e.r.text(t, x.get("Value")) for x in container.get("Environment", []) if "Name" in x}
    symbols.update(dict(dict(launch.overrides).get(name, ())))
    return [c for entry in recorded if entry["package"] == aws.PROCESSOR_PACKAGE and applies(entry, symbols)
            for c in recorded_call(e, caller, role, entry, symbols, route_of)]


def pull_and_log_calls(e: Environment, caller: str, t: str, name: str, container: dict, execution: Principal,
                       route_of: Any) -> list[Call]:
    """What ECS does with the execution role from the task's subnets: log in to ECR and pull the image (its layers
    come from ECR's S3 bucket: https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html), read
    the container's secrets, and ship its logs with the awslogs driver
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_execution_IAM_role.html)."""
    calls: list[Call] = []
    image = e.r.text(t, container.get("Image"))
    ecr = ECR_IMAGE.match(image)
    origin = f"container {name}: image {image}"
    context = role_context(execution)
    if ecr and ecr.group(1) == ACCOUNT:
        repository = e.r.arn("ecr", f"repository/{ecr.group(3)}")
        calls += [Call(caller, origin, Request(execution, "ecr:GetAuthorizationToken", "*", context), route)
                  for route in route_of("ecr.api")]
        calls += [Call(caller, origin, Request(execution, action, repository, context), route)
                  for action in aws.ECR_PULL for route in route_of("ecr.dkr")]
        layer = Request(Principal("aws", "ECR's pre-signed layer URL", account="AWS"), "s3:GetObject",
                        f"arn:aws:s3:::{aws.ecr_layer_bucket(e.region)}/sha256/0",
                        {**TLS, "aws:PrincipalAccount": "AWS", "s3:ResourceAccount": "AWS"})
        calls += [Call(caller, f"{origin}, its layers", layer, route) for route in route_of("s3")]
    for secret in container.get("Secrets", []):
        # ValueFrom is the secret's ARN, optionally with `:<json key>:<stage>:<version>`: the ARN is 7 fields.
        arn = ":".join(e.r.text(t, secret.get("ValueFrom")).split(":")[:7])
        calls += secret_read(e, caller, f"container {name}: secret {secret.get('Name')}", execution, arn,
                             route_of("secretsmanager"))
    logging = container.get("LogConfiguration") or {}
    if logging.get("LogDriver") == "awslogs":
        options = {k: e.r.text(t, v) for k, v in (logging.get("Options") or {}).items()}
        stream = f"{options.get('awslogs-stream-prefix', 'ecs')}/{name}/0123456789abcdef"
        calls += log_writes(e, caller, f"container {name}: awslogs", execution, options.get("awslogs-group", ""),
                            stream, route_of)
    return calls


def contract_calls(e: Environment, caller: str, t: str, name: str, container: dict, task: dict, role: Principal
                   ) -> list[Call]:
    """What the container's environment says the processor does as the task role: IAM sign-in to PostgreSQL and to
    Redis, and the EFS mount of its volumes. These are connections inside the VPC, authorized by IAM."""
    environment = {x["Name"]: x.get("Value") for x in container.get("Environment", [])}
    text = {k: e.r.text(t, v) for k, v in environment.items()}
    calls = []
    if text.get("DATABASE_AUTH") == "iam":
        calls += database_connect(e, caller, t, name, environment, text, role)
    if text.get("REDIS_AUTH") == "iam":
        calls += cache_connect(e, caller, t, f"container {name}: REDIS_AUTH=iam", "the container's", environment, text,
                               role)
    calls += mount_calls(e, caller, t, name, container, task, role)
    return calls


def _traced(e: Environment, t: str, value: Any, kind: str) -> list[tuple[str, str, str]]:
    return sorted((x, y, a) for x, y, a in graph.trace(e.stacks, t, value)
                  if e.stacks[x].get("Resources", {}).get(y, {}).get("Type") == kind)


def database_connect(e: Environment, caller: str, t: str, name: str, environment: dict, text: dict, role: Principal
                     ) -> list[Call]:
    """rds-db:connect as DATABASE_USERNAME on the database DATABASE_HOST names, which must enable IAM
    authentication (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.IAMPolicy.html)."""
    origin = f"container {name}: DATABASE_AUTH=iam"
    databases = _traced(e, t, environment.get("DATABASE_HOST"), "AWS::RDS::DBInstance")
    user = text.get("DATABASE_USERNAME", "")
    if not databases:
        request = Request(role, "rds-db:connect", f"dbuser:?/{user}")
        return [Call(caller, origin, request, IN_VPC_ROUTE, problem="DATABASE_HOST names no database of the templates")]
    calls = []
    for dt, di, _ in databases[:1]:
        arn = e.r.arn("rds-db", f"dbuser:{e.r.attribute(dt, di, 'DbiResourceId')}/{user}")
        request = Request(role, "rds-db:connect", arn, role_context(role))
        enabled = e.r.text(dt, e.r.resource(dt, di)["Properties"].get("EnableIAMDatabaseAuthentication", False))
        problem = "" if enabled == "true" else f"{e.label(dt, di)} does not enable IAM database authentication"
        calls.append(Call(caller, origin, request, IN_VPC_ROUTE, problem=problem))
    return calls


def cache_connect(e: Environment, caller: str, t: str, origin: str, whose: str, environment: dict, text: dict,
                  role: Principal) -> list[Call]:
    """elasticache:Connect on the replication group and on the user: the IAM token is a request pre-signed for the
    replication group's id and the user id, so the caller's environment (`whose`: a container's or a function's,
    raw in `environment`, rendered in `text`) needs both
    (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/auth-iam.html)."""
    groups = _traced(e, t, environment.get("REDIS_HOST"), "AWS::ElastiCache::ReplicationGroup")
    user = text.get("REDIS_USERNAME", "")
    if not groups:
        request = Request(role, "elasticache:Connect", f"replicationgroup:?/user:{user}")
        return [Call(caller, origin, request, IN_VPC_ROUTE, problem="REDIS_HOST names no replication group")]
    gt, gi, _ = groups[0]
    group_id = e.r.ref(gt, gi)
    group_arn = e.r.arn("elasticache", f"replicationgroup:{group_id}")
    user_arn = e.r.arn("elasticache", f"user:{user}")
    given = [k for k, v in environment.items() if (gt, gi, "") in graph.trace(e.stacks, t, v)]
    problem = "" if given else (
        f"the token cannot be signed: no variable of {whose} environment holds the id of {e.label(gt, gi)} "
        "(a token is pre-signed for the replication group id and the user)")
    users = [(ut, ui) for ut, ui, u in e.resources("AWS::ElastiCache::User") if e.r.ref(ut, ui) == user]
    if not problem and users:
        mode = e.r.text(users[0][0], e.r.resource(*users[0])["Properties"].get("AuthenticationMode", {}).get("Type"))
        if mode != "iam":
            problem = f"{e.label(*users[0])} does not sign in with IAM (AuthenticationMode {mode})"
    return [Call(caller, origin, Request(role, "elasticache:Connect", arn, role_context(role)), IN_VPC_ROUTE,
                 problem=problem) for arn in (group_arn, user_arn)]


def mount_calls(e: Environment, caller: str, t: str, name: str, container: dict, task: dict, role: Principal
                ) -> list[Call]:
    """elasticfilesystem:ClientMount (and ClientWrite for a writable mount) with IAM authorization, through the
    access point, over TLS, judged by the task role and the file system policy
    (https://docs.aws.amazon.com/efs/latest/ug/iam-access-control-nfs-efs.html)."""
    volumes = {v.get("Name"): v for v in task.get("Volumes", [])}
    calls = []
    for mount in container.get("MountPoints", []):
        efs = (volumes.get(mount.get("SourceVolume")) or {}).get("EFSVolumeConfiguration")
        if not efs or (efs.get("AuthorizationConfig") or {}).get("IAM") != "ENABLED":
            continue
        systems = _traced(e, t, efs.get("FilesystemId"), "AWS::EFS::FileSystem")
        points = _traced(e, t, (efs.get("AuthorizationConfig") or {}).get("AccessPointId"), "AWS::EFS::AccessPoint")
        if not systems:
            continue
        ft, fi, _ = systems[0]
        context = {**role_context(role), "aws:SecureTransport": "true" if efs.get("TransitEncryption") == "ENABLED"
                   else "false", "elasticfilesystem:AccessedViaMountTarget": "true"}
        if points:
            context["elasticfilesystem:AccessPointArn"] = e.r.attribute(points[0][0], points[0][1], "Arn")
        system = e.r.resource(ft, fi)["Properties"]
        policies = ((Policy(RESOURCE, f"{e.label(ft, fi)} FileSystemPolicy",
                            e.statements(ft, system["FileSystemPolicy"])),) if system.get("FileSystemPolicy") else ())
        writes = [] if mount.get("ReadOnly") else ["elasticfilesystem:ClientWrite"]
        actions = ["elasticfilesystem:ClientMount", *writes]
        calls += [Call(caller, f"container {name}: mounts {mount.get('ContainerPath')}",
                       Request(role, action, e.r.attribute(ft, fi, "Arn"), context), IN_VPC_ROUTE, policies)
                  for action in actions]
    return calls


# --- deliveries AWS makes for the wiring -----------------------------------------------------------------------------

def delivery_calls(e: Environment) -> list[Call]:
    calls: list[Call] = []
    source = {"aws:SourceAccount": ACCOUNT}
    events = Principal("service", "events.amazonaws.com")
    for t, i, rule in e.resources("AWS::Events::Rule"):
        rule_arn = e.r.attribute(t, i, "Arn")
        for target in rule["Properties"].get("Targets", []):
            arn = e.r.text(t, target.get("Arn"))
            via = {**source, "aws:SourceArn": rule_arn}
            function = e.find("AWS::Lambda::Function", arn, "Arn")
            if function:  # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-lambda-permissions
                calls.append(Call(e.label(t, i), f"EventBridge target {target.get('Id')}",
                                  Request(events, "lambda:InvokeFunction", arn, {**TLS, **via}), SERVICE_SIDE_ROUTE,
                                  e.function_permissions(function)))
            letter = (target.get("DeadLetterConfig") or {}).get("Arn")
            if letter:  # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html
                calls += queue_send(e, e.label(t, i), f"EventBridge dead-letters target {target.get('Id')}", events,
                                    e.r.text(t, letter), SERVICE_SIDE_ROUTE, via)
    sns = Principal("service", "sns.amazonaws.com")
    for t, i, sub in e.resources("AWS::SNS::Subscription"):
        letter = ((sub["Properties"].get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
        if letter:  # https://docs.aws.amazon.com/sns/latest/dg/sns-configure-dead-letter-queue.html
            via = {**source, "aws:SourceArn": e.r.text(t, sub["Properties"].get("TopicArn"))}
            calls += queue_send(e, e.label(t, i), "SNS dead-letters an undeliverable message", sns,
                                e.r.text(t, letter), SERVICE_SIDE_ROUTE, via)
    cloudwatch = Principal("service", "cloudwatch.amazonaws.com")
    for t, i, alarm in e.resources("AWS::CloudWatch::Alarm"):
        props = alarm["Properties"]
        alarm_arn = e.r.arn("cloudwatch", f"alarm:{e.r.text(t, props.get('AlarmName', f'{t}-{i}'))}")
        topics = sorted({a for key in ("AlarmActions", "OKActions", "InsufficientDataActions")
                         for a in e.r.strings(e.r.value(t, props.get(key))) if ":sns:" in a})
        for topic in topics:  # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html
            calls += topic_publish(e, e.label(t, i), "the alarm notifies", cloudwatch, topic, SERVICE_SIDE_ROUTE,
                                   {**source, "aws:SourceArn": alarm_arn})
    calls += api_invocations(e)
    return calls


def api_invocations(e: Environment) -> list[Call]:
    """API Gateway invoking a proxy integration's function, as `execute-api:<api>/<stage>/<METHOD>/<path>`
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html)."""
    calls = []
    apigateway = Principal("service", "apigateway.amazonaws.com")
    for t, i, method in e.resources("AWS::ApiGateway::Method"):
        props = method["Properties"]
        uri = e.r.text(t, (props.get("Integration") or {}).get("Uri", ""))
        found = re.search(r":lambda:path/2015-03-31/functions/(.+)/invocations$", uri)
        if not found:
            continue
        function_arn = found.group(1)
        function = e.find("AWS::Lambda::Function", function_arn, "Arn")
        api = e.r.text(t, props.get("RestApiId"))
        stages = [e.r.text(st, s["Properties"].get("StageName")) for st, _si, s in e.resources("AWS::ApiGateway::Stage")
                  if e.r.text(st, s["Properties"].get("RestApiId")) == api] or ["stage"]
        path = _api_path(e, t, props.get("ResourceId"))
        verb = e.r.text(t, props.get("HttpMethod"))
        source = e.r.arn("execute-api", f"{api}/{stages[0]}/{verb}{path}")
        calls.append(Call(e.label(t, i), f"API Gateway {verb} {path}", Request(
            apigateway, "lambda:InvokeFunction", function_arn,
            {**TLS, "aws:SourceArn": source, "aws:SourceAccount": ACCOUNT}), SERVICE_SIDE_ROUTE,
            e.function_permissions(function) if function else ()))
    return calls


def _api_path(e: Environment, tier: str, resource_id: Any) -> str:
    """The request path of an API resource: its PathParts up to the root, each `{param}` a sample value."""
    parts = []
    ref = graph.resolve(e.stacks, tier, resource_id)
    while ref and e.r.resource(*ref)["Type"] == "AWS::ApiGateway::Resource":
        props = e.r.resource(*ref)["Properties"]
        parts.append(re.sub(r"^\{.+\}$", "sample", e.r.text(ref[0], props.get("PathPart"))))
        ref = graph.resolve(e.stacks, ref[0], props.get("ParentId"))
    return "/" + "/".join(reversed(parts))


# --- all of it ---------------------------------------------------------------------------------------------------

def environment_calls(e: Environment, recorded: list[dict]) -> list[Call]:
    machine, launches = state_machine_calls(e)
    calls = function_calls(e, recorded) + machine
    for launch in launches:
        calls += task_calls(e, launch, recorded)
    return calls + delivery_calls(e)
