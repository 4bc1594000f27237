"""Flat helpers shared by the tiers: template skeleton, contract Outputs/Parameters, keys, logs.

Each helper returns or adds one troposphere object; no class hierarchy, no hidden state.
"""

from __future__ import annotations

import re

from awacs import ec2 as ec2_actions
from awacs import kms as kms_actions
from awacs import logs as logs_actions
from awacs import sns as sns_actions
from awacs import xray as xray_actions
from awacs.aws import (
    Action,
    Allow,
    ArnEquals,
    ArnLike,
    Condition,
    Deny,
    PolicyDocument,
    Principal,
    Statement,
    StringEquals,
    StringLike,
)
from awacs.aws import Bool as BoolCondition
from awacs.sts import AssumeRole
from troposphere import (
    AWS_ACCOUNT_ID,
    AWS_PARTITION,
    AWS_REGION,
    Export,
    Join,
    Output,
    Parameter,
    Ref,
    Sub,
    Tags,
    Template,
)
from troposphere.awslambda import LoggingConfig, TracingConfig, VPCConfig
from troposphere.iam import Policy, Role
from troposphere.kms import Alias, Key
from troposphere.logs import LogGroup
from troposphere.secretsmanager import GenerateSecretString, Secret
from troposphere.sns import TopicPolicy

from generator.aws_facts import SNS_TOPIC_POLICY_ACTIONS
from generator.config import EnvConfig
from generator.contracts import Contract, export_name
from generator.errors import SkipError

TEMPLATE_FORMAT_VERSION = "2010-09-09"


def capacity_provider_strategy(cfg: EnvConfig) -> list[dict]:
    """Spot where interruptions are acceptable (dev); on-demand Fargate elsewhere: the cluster's default (compute)
    and what the state machine's RunTask asks for (workflow)."""
    return [{"CapacityProvider": "FARGATE_SPOT" if cfg.spot_default else "FARGATE", "Weight": 1}]


def new_template(cfg: EnvConfig, description: str) -> Template:
    t = Template(Description=f"{description} ({cfg.name})")
    t.set_version(TEMPLATE_FORMAT_VERSION)
    return t


def tags(cfg: EnvConfig, **extra: str) -> Tags:
    return Tags(**dict(sorted({**dict(cfg.tags), **extra}.items())))


def parameters(t: Template, consumes: tuple[Contract, ...]) -> dict[Contract, Ref]:
    """Declare a tier's CONSUMES as Parameters (fed by other tiers' Outputs or the parent); Refs by contract."""
    refs = {}
    for contract in consumes:
        t.add_parameter(Parameter(contract.name, Type=contract.type, Description=contract.description))
        refs[contract] = Ref(contract.name)
    return refs


def output(t: Template, contract: Contract, value, cfg: EnvConfig | None = None) -> None:
    """Add an Output named by a contract; pass cfg to export it under the sketch's `<Name>-<env>`."""
    kwargs = {"Export": Export(export_name(contract, cfg.name))} if cfg is not None else {}
    if contract.is_list:
        value = Join(",", value)
    t.add_output(Output(contract.name, Description=contract.description, Value=value, **kwargs))


def arn(service: str, resource: str) -> Sub:
    """An ARN in this stack's partition, region and account; `resource` may use ${...} substitutions."""
    return Sub(f"arn:${{{AWS_PARTITION}}}:{service}:${{{AWS_REGION}}}:${{{AWS_ACCOUNT_ID}}}:{resource}")


def account_root() -> Sub:
    return Sub(f"arn:${{{AWS_PARTITION}}}:iam::${{{AWS_ACCOUNT_ID}}}:root")


RETAIN_POLICIES = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}


def retention_policies(cfg: EnvConfig, when_kept: str = "Retain") -> dict[str, str]:
    """DeletionPolicy/UpdateReplacePolicy for stateful resources: kept in environments that retain data."""
    policy = when_kept if cfg.retain_data else "Delete"
    return {"DeletionPolicy": policy, "UpdateReplacePolicy": policy}


def snapshot_policies(cfg: EnvConfig) -> dict[str, str]:
    """Databases and caches: a snapshot when replaced (a replacement is an accident; the snapshot is the way
    back), and when deleted only where the config asks (prod): elsewhere one manual snapshot per delete would
    pile up to the region's snapshot quota for data that is disposable there."""
    return {"DeletionPolicy": "Snapshot" if cfg.snapshot_on_delete else "Delete", "UpdateReplacePolicy": "Snapshot"}


def inline_policy(name: str, *statements: Statement) -> Policy:
    """A role's inline policy: a name and its statements (the document boilerplate lives here)."""
    return Policy(PolicyName=name, PolicyDocument=PolicyDocument(Version="2012-10-17", Statement=list(statements)))


def service_principal(service: str) -> Principal:
    return Principal("Service", [f"{service}.amazonaws.com"])


def service_trust(service: str, source_account: bool = True) -> PolicyDocument:
    """A role's trust policy: `<service>.amazonaws.com` may assume it, by default only on behalf of this
    account (aws:SourceAccount, the confused-deputy guard); callers that pass False say why."""
    guard = Condition(StringEquals("aws:SourceAccount", Ref(AWS_ACCOUNT_ID)))
    condition = {"Condition": guard} if source_account else {}
    return PolicyDocument(Version="2012-10-17", Statement=[Statement(
        Effect=Allow, Principal=service_principal(service), Action=[AssumeRole], **condition)])


def service_principal_regional(service: str) -> Principal:
    """Services such as CloudWatch Logs that sign as `<service>.<region>.amazonaws.com`."""
    return Principal("Service", [Sub(f"{service}.${{{AWS_REGION}}}.amazonaws.com")])


# What the account may do with a key directly: administer it, never use it. Using a key (Encrypt, Decrypt,
# GenerateDataKey*, ReEncrypt*, CreateGrant) is granted per key, only through the services that need it.
# Named rather than `kms:*`: no service-wide wildcard.
KEY_ACCOUNT_ACTIONS = (
    "CancelKeyDeletion", "CreateAlias", "Delete*", "Describe*", "Disable*", "Enable*", "Get*", "List*", "Put*",
    "Revoke*", "RotateKeyOnDemand", "ScheduleKeyDeletion", "TagResource", "UntagResource", "Update*",
)


def key_admin_statement() -> Statement:
    """The account keeps administering its key (without this a key can become unmanageable), not using it."""
    return Statement(
        Sid="AccountAdministers",
        Effect=Allow,
        Principal=Principal("AWS", [account_root()]),
        Action=[kms_actions.Action(a) for a in KEY_ACCOUNT_ACTIONS],
        Resource=["*"],  # in a key policy, "*" means this key
    )


def kms_key(t: Template, cfg: EnvConfig, title: str, description: str, alias: str,
            service_statements: list[Statement], policies: dict[str, str] | None = None) -> Key:
    """A rotating customer-managed key whose policy admits the account's admins and the given services.

    `policies` overrides the per-environment retention, e.g. for a key that decrypts snapshots outliving the stack.
    """
    policy = PolicyDocument(Version="2012-10-17", Statement=[key_admin_statement(), *service_statements])
    key = t.add_resource(Key(
        title,
        Description=f"{description} ({cfg.name})",
        EnableKeyRotation=True,
        KeyPolicy=policy,
        PendingWindowInDays=30 if cfg.retain_data else 7,
        Tags=tags(cfg),
        **(policies or retention_policies(cfg)),
    ))
    t.add_resource(Alias(f"{title}Alias", AliasName=f"alias/{alias}", TargetKeyId=Ref(key)))
    return key


# The encryption context SNS and SQS set on the KMS calls made for an encrypted topic or queue.
SNS_TOPIC_CONTEXT = "kms:EncryptionContext:aws:sns:topicArn"
SQS_QUEUE_CONTEXT = "kms:EncryptionContext:aws:sqs:arn"


def service_key_user_statement(service: str, sid: str, context: str, resource_arn) -> Statement:
    """Key-policy statement letting `<service>.amazonaws.com` encrypt for one topic or this account's queues
    (publish, deliver, dead-letter), scoped by the encryption context the topic or queue sets.

    Not by aws:SourceAccount: AWS documents no such key on the KMS calls services make for an encrypted topic
    or queue, and a condition the call does not carry would deny it (a notification silently lost).
    https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
    """
    return Statement(
        Sid=sid, Effect=Allow, Principal=service_principal(service),
        Action=[kms_actions.Decrypt, kms_actions.Action("GenerateDataKey*")],
        Resource=["*"],  # in a key policy, "*" means this key
        Condition=Condition(StringLike(context, resource_arn)),  # context keys are strings, not ARNs
    )


def alarms_publish_statement(sid: str, topic_refs: list, alarm_name_pattern: str = "*") -> Statement:
    """Topic-policy statement: CloudWatch alarms of this account (named by the pattern) publish to the topics.

    Alarms publish as a service, which only a resource policy admits; identity policies cover this account's roles.
    """
    return Statement(
        Sid=sid, Effect=Allow, Principal=service_principal("cloudwatch"), Action=[sns_actions.Publish],
        Resource=topic_refs,
        Condition=Condition([StringEquals("aws:SourceAccount", Ref(AWS_ACCOUNT_ID)),
                             ArnLike("aws:SourceArn", arn("cloudwatch", f"alarm:{alarm_name_pattern}"))]),
    )


def via_services_statement(services: list[str]) -> Statement:
    """Key-policy statement letting this account's principals use the key only through the given services."""
    return Statement(
        Sid="AccountPrincipalsThroughServices",
        Effect=Allow,
        Principal=Principal("AWS", [account_root()]),
        Action=[kms_actions.CreateGrant, kms_actions.Decrypt, kms_actions.DescribeKey, kms_actions.Encrypt,
                kms_actions.Action("GenerateDataKey*"), kms_actions.ListGrants, kms_actions.Action("ReEncrypt*")],
        Resource=["*"],  # in a key policy, "*" means this key
        Condition=Condition(StringEquals({
            "kms:CallerAccount": Ref(AWS_ACCOUNT_ID),
            "kms:ViaService": [Sub(f"{service}.${{{AWS_REGION}}}.amazonaws.com") for service in sorted(services)],
        })),
    )


def logs_key_statement(log_group_names: list[str]) -> Statement:
    """Key-policy statement letting CloudWatch Logs use the key, only for the named log groups."""
    return Statement(
        Sid="CloudWatchLogsEncryptsTheseLogGroups",
        Effect=Allow,
        Principal=service_principal_regional("logs"),
        Action=[kms_actions.Encrypt, kms_actions.Decrypt, kms_actions.ReEncryptFrom, kms_actions.ReEncryptTo,
                kms_actions.GenerateDataKey, kms_actions.GenerateDataKeyWithoutPlaintext, kms_actions.DescribeKey],
        Resource=["*"],  # in a key policy, "*" means this key
        Condition=Condition(ArnEquals("kms:EncryptionContext:aws:logs:arn", [
            arn("logs", f"log-group:{name}") for name in sorted(log_group_names)])),
    )


def encrypted_log_group(t: Template, cfg: EnvConfig, title: str, name, key_arn) -> LogGroup:
    return t.add_resource(LogGroup(
        title,
        LogGroupName=name,
        KmsKeyId=key_arn,
        RetentionInDays=cfg.log_retention_days,
        Tags=tags(cfg),
        # Where data is retained, nobody deletes the log group by hand either.
        **({"DeletionProtectionEnabled": True} if cfg.retain_data else {}),
        **retention_policies(cfg),
    ))


def deny_insecure_transport(actions: list[Action], resource=None) -> Statement:
    """Resource-policy statement refusing the given actions to any request that does not use TLS.

    Without `resource` the statement applies to the policy's own resource (EFS file system policies).
    """
    scope = {} if resource is None else {"Resource": resource if isinstance(resource, list) else [resource]}
    return Statement(
        Sid="DenyInsecureTransport",
        Effect=Deny,
        Principal=Principal("*"),
        Action=actions,
        Condition=Condition(BoolCondition("aws:SecureTransport", "false")),
        **scope,
    )


def topic_policy(t: Template, title: str, topic, *statements: Statement) -> TopicPolicy:
    """One topic's policy (AWS documents one per topic): the TLS-only deny over the topic-policy actions
    (aws_facts.SNS_TOPIC_POLICY_ACTIONS, never sns:*), then the given statements, each naming this topic."""
    deny = deny_insecure_transport([sns_actions.Action(a) for a in SNS_TOPIC_POLICY_ACTIONS], [Ref(topic)])
    return t.add_resource(TopicPolicy(title, Topics=[Ref(topic)], PolicyDocument=PolicyDocument(
        Version="2012-10-17", Statement=[deny, *statements])))


def generated_secret(t: Template, cfg: EnvConfig, title: str, description: str, key_arn,
                     generate: GenerateSecretString) -> Secret:
    """A Secrets Manager secret generated by AWS: its value never appears in a template, parameter or output."""
    return t.add_resource(Secret(
        title,
        Description=f"{description} ({cfg.name})",
        KmsKeyId=key_arn,
        GenerateSecretString=generate,
        Tags=tags(cfg),
        **retention_policies(cfg),
    ))


def secret_reference(secret: Secret, json_key: str | None = None) -> Sub:
    """A dynamic reference: CloudFormation resolves the secret at deploy time, the template holds only its ARN."""
    field = f":SecretString:{json_key}" if json_key else ":SecretString"
    return Sub(f"{{{{resolve:secretsmanager:${{{secret.title}}}{field}}}}}")


CHECKOV_ID = re.compile(r"^CKV2?_AWS_[0-9]+$")


def checkov_skip(*skips: tuple[str, str], metadata: dict | None = None) -> dict:
    """Resource Metadata that skips checkov checks which cannot apply to this resource.

    Each skip is (check id, one-line reason saying why the check cannot apply here). Other Metadata
    (e.g. cfn-lint's) passed as `metadata` is kept, and so are skips already in it.
    """
    merged = dict(metadata or {})
    entries = {e["id"]: e["comment"] for e in merged.get("checkov", {}).get("skip", [])}
    for check_id, reason in skips:
        if not CHECKOV_ID.match(check_id):
            raise SkipError(f"checkov skip: {check_id!r} is not a check id such as CKV_AWS_7")
        if not reason.strip() or "\n" in reason:
            raise SkipError(f"checkov skip {check_id}: the reason must be one non-empty line")
        entries[check_id] = reason
    merged["checkov"] = {"skip": [{"id": i, "comment": r} for i, r in sorted(entries.items())]}
    return merged


def vpc_function_statements(log_group_name: str, security_group_parameter: str) -> list[Statement]:
    """A VPC function's own needs: write its log group, X-Ray traces, and its network interfaces.

    `security_group_parameter` names the template Parameter holding the function's security group.
    """
    log_group_arn = arn("logs", f"log-group:{log_group_name}")
    return [
        Statement(Sid="WriteFunctionLogs", Effect=Allow, Action=[logs_actions.CreateLogStream,
                                                                 logs_actions.PutLogEvents],
                  Resource=[Sub("${Group}:log-stream:*", Group=log_group_arn)]),
        Statement(Sid="TraceWithXRay", Effect=Allow, Action=[
            xray_actions.PutTelemetryRecords, xray_actions.PutTraceSegments,
        ], Resource=["*"]),  # X-Ray actions support no resource-level permissions
        # Lambda attaches the function to the private subnets with these (AWSLambdaVPCAccessExecutionRole's
        # actions), scoped: interfaces only in this account and region, and only with the function's group.
        Statement(Sid="AttachToPrivateSubnets", Effect=Allow, Action=[
            ec2_actions.AssignPrivateIpAddresses, ec2_actions.CreateNetworkInterface,
            ec2_actions.DeleteNetworkInterface, ec2_actions.UnassignPrivateIpAddresses,
        ], Resource=[
            arn("ec2", "network-interface/*"), arn("ec2", "subnet/*"),
            arn("ec2", "security-group/${" + security_group_parameter + "}"),
        ]),
        Statement(Sid="FindNetworkInterfaces", Effect=Allow, Action=[
            ec2_actions.DescribeNetworkInterfaces, ec2_actions.DescribeSubnets,
        ], Resource=["*"]),  # Describe actions support no resource-level permissions
    ]


def decrypt_secrets_statement(sid: str, key_arns: list) -> Statement:
    """Identity-policy statement: decrypt with these keys only through Secrets Manager (reading its secrets); the
    keys also protect data stores, which the role may not decrypt directly."""
    return Statement(Sid=sid, Effect=Allow, Action=[kms_actions.Decrypt], Resource=key_arns,
                     Condition=Condition(StringEquals("kms:ViaService",
                                                      Sub(f"secretsmanager.${{{AWS_REGION}}}.amazonaws.com"))))


def function_role(t: Template, cfg: EnvConfig, title: str, description: str, policy_name: str,
                  statements: list[Statement]) -> Role:
    """A Lambda function's execution role with one inline policy.

    No aws:SourceAccount in its trust, unlike the other roles: AWS documents a Lambda execution role's trust
    without it and publishes no list of the services that send the key when assuming a role
    (prowler-cloud/prowler#2810); a StringEquals on a key the service does not send is false, so the function
    could no longer assume its role (prowler-cloud/prowler#4714 reports it for other services). Add it only once a
    real deploy shows Lambda sends it.
    """
    return t.add_resource(Role(
        title,
        Description=f"{description} ({cfg.name})",
        AssumeRolePolicyDocument=service_trust("lambda", source_account=False),
        Policies=[inline_policy(policy_name, *statements)],
        Tags=tags(cfg),
    ))


def vpc_function_properties(cfg: EnvConfig, log_group: LogGroup, subnet_ids, security_group_id) -> dict:
    """A function's logging (its own encrypted group: a Ref, so the function starts after the group exists),
    active X-Ray tracing, its place in the VPC (its traffic then shows in the flow logs) and tags."""
    return {
        "LoggingConfig": LoggingConfig(LogGroup=Ref(log_group)),
        "TracingConfig": TracingConfig(Mode="Active"),
        "VpcConfig": VPCConfig(SubnetIds=subnet_ids, SecurityGroupIds=[security_group_id]),
        "Tags": tags(cfg),
    }
