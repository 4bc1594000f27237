"""IAM rules (VP1xx): every role, resource policy, key policy and endpoint policy of every template."""

from __future__ import annotations

import json
import re

from generator import aws_facts
from generator.rules.common import Templates, as_list, each_statement, matches, rule

# The one other explained case: a KMS key policy's Resource "*" means the key the policy is attached to.
KEY_POLICY_RESOURCE = "*"
SERVICE_WIDE = re.compile(r"^[a-z0-9-]+:\*$", re.IGNORECASE)
ANY_PRINCIPAL = ("*", {"AWS": "*"}, {"AWS": ["*"]})


@rule("VP101", "No Allow grants `*` or `service:*`, uses NotAction/NotResource/NotPrincipal, or admits any principal",
      "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#grant-least-privilege")
def wildcard_actions(templates: Templates) -> list[str]:
    problems = []
    for where, kind, s in each_statement(templates):
        if s.get("Effect") != "Allow":
            continue
        for action in as_list(s.get("Action", [])):
            if action == "*" or SERVICE_WIDE.match(str(action)):
                problems.append(f"{where}: allows {action!r}")
        for negation in ("NotAction", "NotResource", "NotPrincipal"):
            if negation in s:
                problems.append(f"{where}: Allow with {negation}")
        if s.get("Principal") in ANY_PRINCIPAL and not (
                kind == "endpoint" and (names_aws_owned_objects(s) or narrowed_to_principals(s))):
            problems.append(f"{where}: allows any principal")
    return problems


# A gateway endpoint's policy must name its principals by condition, "*" in Principal (an account root there means
# the root user alone): https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html
PRINCIPAL_CONDITION_KEYS = ("aws:PrincipalAccount", "aws:PrincipalArn")


def narrowed_to_principals(statement: dict) -> bool:
    """An endpoint statement whose "*" principal a StringEquals on the principal's account or ARN narrows."""
    equals = statement.get("Condition", {}).get("StringEquals", {})
    return any(key in equals for key in PRINCIPAL_CONDITION_KEYS)


def names_aws_owned_objects(statement: dict) -> bool:
    """An endpoint statement for URLs AWS signs (ECR layers, CloudFormation responses): one S3 action on the
    objects of named buckets, no wildcard in a bucket name."""
    resources = as_list(statement.get("Resource", []))
    texts = [as_list(r.get("Fn::Sub"))[0] if isinstance(r, dict) else r for r in resources]
    return (len(as_list(statement.get("Action", []))) == 1 and bool(texts)
            and all(isinstance(x, str) and ":s3:::" in x and "*" not in x.split(":s3:::", 1)[1].split("/")[0]
                    for x in texts))


@rule("VP102", 'Resource "*" only for actions AWS cannot scope (no resource type in the Service Authorization '
      "Reference, as cfn-lint ships it: aws_facts.is_unscopable) or in a key policy, where it means the key",
      "https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html")
def resource_star(templates: Templates) -> list[str]:
    problems = []
    for where, kind, s in each_statement(templates):
        if s.get("Effect") != "Allow" or kind == "trust":
            continue
        resources = as_list(s.get("Resource", []))
        if "*" not in resources:
            continue
        if kind == "endpoint" and "aws:PrincipalAccount" in json.dumps(s.get("Condition", {})):
            continue  # an endpoint policy limits this account's principals; their own policies scope resources
        if kind == "key":
            if resources != [KEY_POLICY_RESOURCE]:
                problems.append(f"{where}: a key policy statement names its key as {KEY_POLICY_RESOURCE!r} only")
            continue
        for action in as_list(s.get("Action", [])):
            if not aws_facts.is_unscopable(str(action)):
                problems.append(f"{where}: {action} on Resource '*', but AWS lets it be scoped to a resource "
                                "(or it is a wildcard or unknown action): name the resource")
    return problems


def names_a_role(resource: object) -> bool:
    """A role ARN: a Ref/GetAtt/import of one, or a literal/Sub ARN of one named role (no wildcard)."""
    if isinstance(resource, dict):
        if "Fn::Sub" in resource:
            text = as_list(resource["Fn::Sub"])[0]
            return ":role/" in text and "*" not in text
        return bool({"Ref", "Fn::GetAtt", "Fn::ImportValue"} & set(resource))
    return isinstance(resource, str) and ":role/" in resource and "*" not in resource


@rule("VP103", "Every iam:PassRole names the role ARNs and the service they are passed to (iam:PassedToService)",
      "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html")
def pass_role(templates: Templates) -> list[str]:
    problems = []
    for where, _kind, s in each_statement(templates):
        if s.get("Effect") != "Allow" or not matches(as_list(s.get("Action", [])), "iam:PassRole"):
            continue
        bad = [r for r in as_list(s.get("Resource", [])) if not names_a_role(r)]
        if bad or not s.get("Resource"):
            problems.append(f"{where}: iam:PassRole on {bad or 'no resource'}; name the role ARNs")
        conditions = s.get("Condition", {})
        if not any("iam:PassedToService" in (block or {}) for block in conditions.values()):
            problems.append(f"{where}: iam:PassRole without an iam:PassedToService condition")
    return problems


KEY_USE_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:CreateGrant")


@rule("VP104", "A key policy lets an account principal use the key (encrypt, decrypt, grant) only under a condition "
      "such as kms:ViaService; administering a key is not using it",
      "https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-via-service")
def key_use(templates: Templates) -> list[str]:
    return [f"{where}: grants {', '.join(a for a in KEY_USE_ACTIONS if matches(as_list(s.get('Action', [])), a))} "
            "to an account principal without a condition"
            for where, kind, s in each_statement(templates)
            if kind == "key" and s.get("Effect") == "Allow" and "AWS" in (s.get("Principal") or {})
            and not s.get("Condition")
            and any(matches(as_list(s.get("Action", [])), a) for a in KEY_USE_ACTIONS)]
