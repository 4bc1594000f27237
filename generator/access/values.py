"""Template values as the strings AWS would see: intrinsics evaluated through the parent's wiring (generator.graph).

One environment at a time, in a fixed sample account and the environment's region. A resource's Ref and attributes
are rendered from its physical name where the template fixes one (a table's TableName, a topic's TopicName) and
from a stand-in `<template>-<logical id>` where CloudFormation would generate one, so that a policy that names a
resource by an `Fn::Sub` of its name and a call that reaches it by a Ref render to the same ARN. What a Ref or
attribute returns per type: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-template-resource-type-ref.html
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from generator import graph

ACCOUNT = "123456789012"
PARTITION = "aws"
SAMPLE_DIGEST = "0" * 64


def sample_image(region: str, account: str = ACCOUNT) -> str:
    """A processor image in this account's ECR, pinned by digest: what a real deploy passes as ProcessorImage."""
    return f"{account}.dkr.ecr.{region}.amazonaws.com/video-processor@sha256:{SAMPLE_DIGEST}"


class Renderer:
    """Evaluates the intrinsics of one environment's templates (`{template name: template}`) to strings."""

    def __init__(self, stacks: graph.Stacks, region: str, account: str = ACCOUNT) -> None:
        self.stacks, self.region, self.account = stacks, region, account
        # deploy-time values without a usable default
        self.parameters = {"ProcessorImage": sample_image(region, account)}

    # --- the pieces of an ARN ------------------------------------------------------------------------------

    def arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        return f"arn:{PARTITION}:{service}:{self.region if region else ''}:{self.account if account else ''}:{resource}"

    def name(self, tier: str, logical_id: str, prop: str | None) -> str:
        """A resource's physical name: the property that fixes it, else a stand-in for the generated one."""
        value = self.value(tier, self.resource(tier, logical_id).get("Properties", {}).get(prop)) if prop else None
        return value if isinstance(value, str) and value else f"{tier}-{logical_id}"

    def resource(self, tier: str, logical_id: str) -> dict:
        return self.stacks[tier]["Resources"][logical_id]

    # --- Ref and Fn::GetAtt of each type ------------------------------------------------------------------------

    def ref(self, tier: str, logical_id: str) -> str:
        kind = self.resource(tier, logical_id)["Type"]
        if kind in REFS:
            return REFS[kind](self, tier, logical_id)
        return f"{tier}-{logical_id}"

    def attribute(self, tier: str, logical_id: str, attribute: str) -> str:
        kind = self.resource(tier, logical_id)["Type"]
        properties = self.resource(tier, logical_id).get("Properties", {})
        if (kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource") and attribute in properties:
            # The project's custom resources answer with Data named like the properties they echo
            # (generator/functions/db_bootstrap/handler.py).
            return self.text(tier, properties[attribute])
        found = ATTRIBUTES.get((kind, attribute))
        return found(self, tier, logical_id) if found else f"{tier}-{logical_id}.{attribute}"

    # --- values ----------------------------------------------------------------------------------------------

    def value(self, tier: str, v: Any) -> Any:
        """A value with its intrinsics evaluated: a string, a list of values, a dict, or None (AWS::NoValue)."""
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        if isinstance(v, list):
            return [x for x in (self.value(tier, i) for i in v) if x is not None]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (key, arg), = v.items()
            function = INTRINSICS.get(key)
            if function is not None:
                return function(self, tier, arg)
        return {k: self.value(tier, x) for k, x in v.items()}

    def text(self, tier: str, v: Any) -> str:
        """A value that must be one string (a list is joined with commas, as a nested stack passes it)."""
        out = self.value(tier, v)
        return ",".join(self.strings(out)) if isinstance(out, list) else str(out)

    def strings(self, v: Any) -> list[str]:
        """A rendered value as a flat list of strings."""
        if v is None:
            return []
        if isinstance(v, list):
            return [s for x in v for s in self.strings(x)]
        return [str(v)]

    def reference(self, tier: str, name: str, attribute: str = "") -> str:
        if name.startswith("AWS::"):
            return PSEUDO.get(name, lambda r: f"<{name}>")(self)
        body = self.stacks[tier]
        if tier == graph.PARENT and attribute.startswith("Outputs.") and name in graph.nested_stacks(body):
            child = graph.nested_stacks(body)[name]
            return self.text(child, graph.output_value(self.stacks, child, attribute.removeprefix("Outputs.")))
        if name in (body.get("Parameters") or {}):
            return self.parameter(tier, name)
        if name in (body.get("Resources") or {}):
            return self.attribute(tier, name, attribute) if attribute else self.ref(tier, name)
        return f"<{tier}.{name}>"

    def parameter(self, tier: str, name: str) -> str:
        passed = graph.wiring(self.stacks, tier, name)
        if passed is not None:
            return self.text(graph.PARENT, passed)
        declared = self.stacks[tier]["Parameters"][name]
        if tier == graph.PARENT and name in self.parameters:
            return self.parameters[name]
        default = declared.get("Default")
        return str(default) if default not in (None, "") else f"<{tier}.{name}>"

    def condition(self, tier: str, name: str) -> bool:
        return self.truth(tier, (self.stacks[tier].get("Conditions") or {}).get(name))

    def truth(self, tier: str, v: Any) -> bool:
        if not isinstance(v, dict) or len(v) != 1:
            return False
        (key, arg), = v.items()
        if key == "Fn::Equals":
            return self.value(tier, arg[0]) == self.value(tier, arg[1])
        if key == "Fn::Not":
            return not self.truth(tier, arg[0])
        if key == "Fn::And":
            return all(self.truth(tier, a) for a in arg)
        if key == "Fn::Or":
            return any(self.truth(tier, a) for a in arg)
        if key == "Condition":
            return self.condition(tier, arg)
        return False


# --- intrinsic functions -------------------------------------------------------------------------------------

def _ref(r: Renderer, tier: str, arg: Any) -> Any:
    return None if arg == "AWS::NoValue" else r.reference(tier, arg)


def _get_att(r: Renderer, tier: str, arg: Any) -> str:
    name, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
    return r.reference(tier, name, r.text(tier, attribute))


def _sub(r: Renderer, tier: str, arg: Any) -> str:
    text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
    values = {k: r.text(tier, v) for k, v in variables.items()}

    def replace(match: Any) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        target, _, attribute = name.partition(".")
        return r.reference(tier, target, attribute)

    return graph.SUB_REFERENCE.sub(replace, text).replace("${!", "${")


def _join(r: Renderer, tier: str, arg: Any) -> str:
    return r.text(tier, arg[0]).join(r.strings(_as_list(r.value(tier, arg[1]))))


def _select(r: Renderer, tier: str, arg: Any) -> Any:
    items = _as_list(r.value(tier, arg[1]))
    index = int(r.text(tier, arg[0]))
    return items[index] if index < len(items) else f"<{tier}: Fn::Select {index} of {len(items)}>"


def _split(r: Renderer, tier: str, arg: Any) -> list[str]:
    return r.text(tier, arg[1]).split(r.text(tier, arg[0]))


def _if(r: Renderer, tier: str, arg: Any) -> Any:
    return r.value(tier, arg[1] if r.condition(tier, arg[0]) else arg[2])


def _as_list(v: Any) -> list:
    """A list value; a string is a comma-joined list (how a nested stack passes a CommaDelimitedList)."""
    return v if isinstance(v, list) else str(v).split(",") if v is not None else []


INTRINSICS: dict[str, Callable[[Renderer, str, Any], Any]] = {
    "Ref": _ref, "Fn::GetAtt": _get_att, "Fn::Sub": _sub, "Fn::Join": _join, "Fn::Select": _select,
    "Fn::Split": _split, "Fn::If": _if,
    "Fn::ImportValue": lambda r, tier, arg: f"<import {graph.export_key(arg)}>",
    "Fn::GetAZs": lambda r, tier, arg: [f"{r.region}a", f"{r.region}c", f"{r.region}d"],
}

PSEUDO: dict[str, Callable[[Renderer], str]] = {
    "AWS::Region": lambda r: r.region, "AWS::AccountId": lambda r: r.account, "AWS::Partition": lambda r: PARTITION,
    "AWS::URLSuffix": lambda r: "amazonaws.com", "AWS::StackName": lambda r: "stack",
    "AWS::StackId": lambda r: r.arn("cloudformation", "stack/stack/0"),
}


# --- what Ref and Fn::GetAtt return, per type ------------------------------------------------------------------

def _table(r: Renderer, t: str, i: str) -> str:
    return r.name(t, i, "TableName")


def _topic(r: Renderer, t: str, i: str) -> str:
    return r.arn("sns", r.name(t, i, "TopicName"))


def _queue_name(r: Renderer, t: str, i: str) -> str:
    return r.name(t, i, "QueueName")


def _state_machine(r: Renderer, t: str, i: str) -> str:
    return r.arn("states", f"stateMachine:{r.name(t, i, 'StateMachineName')}")


def _key_id(r: Renderer, t: str, i: str) -> str:
    return f"{t}-{i}"


def _task_definition(r: Renderer, t: str, i: str) -> str:
    return r.arn("ecs", f"task-definition/{r.name(t, i, 'Family')}:1")


def _cluster(r: Renderer, t: str, i: str) -> str:
    return r.name(t, i, "ClusterName")


def _role(r: Renderer, t: str, i: str) -> str:
    return r.name(t, i, "RoleName")


def _log_group(r: Renderer, t: str, i: str) -> str:
    return r.name(t, i, "LogGroupName")


def _function(r: Renderer, t: str, i: str) -> str:
    return r.name(t, i, "FunctionName")


def _rule(r: Renderer, t: str, i: str) -> str:
    return r.name(t, i, "Name")


def _file_system(r: Renderer, t: str, i: str) -> str:
    return f"fs-{t}-{i}"


def _access_point(r: Renderer, t: str, i: str) -> str:
    return f"fsap-{t}-{i}"


def _secret(r: Renderer, t: str, i: str) -> str:
    return r.arn("secretsmanager", f"secret:{r.name(t, i, 'Name')}-AbCdEf")


REFS: dict[str, Callable[[Renderer, str, str], str]] = {
    "AWS::DynamoDB::Table": _table,
    "AWS::SNS::Topic": _topic,
    "AWS::SQS::Queue": lambda r, t, i: f"https://sqs.{r.region}.amazonaws.com/{r.account}/{_queue_name(r, t, i)}",
    "AWS::StepFunctions::StateMachine": _state_machine,
    "AWS::KMS::Key": _key_id,
    "AWS::ECS::TaskDefinition": _task_definition,
    "AWS::ECS::Cluster": _cluster,
    "AWS::IAM::Role": _role,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::Lambda::Function": _function,
    "AWS::Events::Rule": _rule,
    "AWS::ElastiCache::ReplicationGroup": lambda r, t, i: r.name(t, i, "ReplicationGroupId"),
    "AWS::ElastiCache::User": lambda r, t, i: r.name(t, i, "UserId"),
    "AWS::ElastiCache::UserGroup": lambda r, t, i: r.name(t, i, "UserGroupId"),
    "AWS::RDS::DBInstance": lambda r, t, i: r.name(t, i, "DBInstanceIdentifier"),
    "AWS::EFS::FileSystem": _file_system,
    "AWS::EFS::AccessPoint": _access_point,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::S3::Bucket": lambda r, t, i: r.name(t, i, "BucketName"),
}

ATTRIBUTES: dict[tuple[str, str], Callable[[Renderer, str, str], str]] = {
    ("AWS::DynamoDB::Table", "Arn"): lambda r, t, i: r.arn("dynamodb", f"table/{_table(r, t, i)}"),
    ("AWS::SNS::Topic", "TopicArn"): _topic,
    ("AWS::SNS::Topic", "TopicName"): lambda r, t, i: r.name(t, i, "TopicName"),
    ("AWS::SQS::Queue", "Arn"): lambda r, t, i: r.arn("sqs", _queue_name(r, t, i)),
    ("AWS::SQS::Queue", "QueueName"): _queue_name,
    ("AWS::SQS::Queue", "QueueUrl"): lambda r, t, i: REFS["AWS::SQS::Queue"](r, t, i),
    ("AWS::StepFunctions::StateMachine", "Arn"): _state_machine,
    ("AWS::StepFunctions::StateMachine", "Name"): lambda r, t, i: r.name(t, i, "StateMachineName"),
    ("AWS::KMS::Key", "Arn"): lambda r, t, i: r.arn("kms", f"key/{_key_id(r, t, i)}"),
    ("AWS::KMS::Key", "KeyId"): _key_id,
    ("AWS::ECS::TaskDefinition", "TaskDefinitionArn"): _task_definition,
    ("AWS::ECS::Cluster", "Arn"): lambda r, t, i: r.arn("ecs", f"cluster/{_cluster(r, t, i)}"),
    ("AWS::IAM::Role", "Arn"): lambda r, t, i: r.arn("iam", f"role/{_role(r, t, i)}", region=False),
    ("AWS::Logs::LogGroup", "Arn"): lambda r, t, i: r.arn("logs", f"log-group:{_log_group(r, t, i)}:*"),
    ("AWS::Lambda::Function", "Arn"): lambda r, t, i: r.arn("lambda", f"function:{_function(r, t, i)}"),
    ("AWS::Events::Rule", "Arn"): lambda r, t, i: r.arn("events", f"rule/{_rule(r, t, i)}"),
    ("AWS::ElastiCache::User", "Arn"): lambda r, t, i: r.arn("elasticache", f"user:{r.name(t, i, 'UserId')}"),
    ("AWS::RDS::DBInstance", "DbiResourceId"): lambda r, t, i: f"db-{t}-{i}",
    ("AWS::RDS::DBInstance", "MasterUserSecret.SecretArn"): lambda r, t, i: r.arn(
        "secretsmanager", f"secret:rds!db-{t}-{i}-AbCdEf"),
    ("AWS::EFS::FileSystem", "Arn"): lambda r, t, i: r.arn("elasticfilesystem", f"file-system/{_file_system(r, t, i)}"),
    ("AWS::EFS::FileSystem", "FileSystemId"): _file_system,
    ("AWS::EFS::AccessPoint", "Arn"): lambda r, t, i: r.arn("elasticfilesystem",
                                                            f"access-point/{_access_point(r, t, i)}"),
    ("AWS::EFS::AccessPoint", "AccessPointId"): _access_point,
    ("AWS::S3::Bucket", "Arn"): lambda r, t, i: f"arn:{PARTITION}:s3:::{r.name(t, i, 'BucketName')}",
}
