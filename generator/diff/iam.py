"""IAM statement changes (identity, trust and resource policies) and whether they widen access."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Any

from generator.diff.values import as_list, compact, is_intrinsic, ref_name

# Where policy documents live: type -> ((property, kind), ...); kind is identity, trust or resource.
POLICY_PROPERTIES: dict[str, tuple[tuple[str, str], ...]] = {
    "AWS::IAM::Role": (("AssumeRolePolicyDocument", "trust"),),
    "AWS::IAM::Policy": (("PolicyDocument", "identity"),),
    "AWS::IAM::ManagedPolicy": (("PolicyDocument", "identity"),),
    "AWS::KMS::Key": (("KeyPolicy", "resource"),),
    "AWS::SNS::TopicPolicy": (("PolicyDocument", "resource"),),
    "AWS::SQS::QueuePolicy": (("PolicyDocument", "resource"),),
    "AWS::SNS::TopicInlinePolicy": (("PolicyDocument", "resource"),),
    "AWS::SQS::QueueInlinePolicy": (("PolicyDocument", "resource"),),
    "AWS::S3::BucketPolicy": (("PolicyDocument", "resource"),),
    "AWS::EFS::FileSystem": (("FileSystemPolicy", "resource"),),
    "AWS::SecretsManager::ResourcePolicy": (("ResourcePolicy", "resource"),),
    "AWS::Logs::ResourcePolicy": (("PolicyDocument", "resource"),),
    "AWS::ECR::Repository": (("RepositoryPolicyText", "resource"),),
    "AWS::ApiGateway::RestApi": (("Policy", "resource"),),
}
# Inline policies: type -> property holding a list of {PolicyName, PolicyDocument}.
INLINE_POLICY_LISTS = {"AWS::IAM::Role": "Policies", "AWS::IAM::User": "Policies", "AWS::IAM::Group": "Policies"}


def _principal_text(p: Any) -> str:
    if p is None:
        return ""
    if isinstance(p, dict) and not is_intrinsic(p):
        return " ".join(f"{k}:{ref_name(x)}" for k, v in sorted(p.items()) for x in as_list(v))
    return ref_name(p)


@dataclass(frozen=True)
class _Atom:
    """One action on one resource granted or denied by one statement (the unit compared)."""
    stack: str
    policy: str
    effect: str
    principal: str
    condition: str
    action: str
    resource: str


def _statements(doc: Any) -> list[dict]:
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            return []
    if not isinstance(doc, dict):
        return []
    return [s for s in as_list(doc.get("Statement")) if isinstance(s, dict)]


def _policies(lid: str, res: dict) -> list[tuple[str, Any]]:
    """(label, policy document) for every policy a resource carries."""
    rtype, props = str(res.get("Type", "")), res.get("Properties") or {}
    out = [(f"{lid} ({kind} {prop})", props[prop])
           for prop, kind in POLICY_PROPERTIES.get(rtype, ()) if prop in props]
    for item in as_list(props.get(INLINE_POLICY_LISTS.get(rtype, ""))):
        if isinstance(item, dict):
            out.append((f"{lid} (identity {ref_name(item.get('PolicyName'))})", item.get("PolicyDocument")))
    if rtype in SYNTHETIC_POLICIES:
        label, statements = SYNTHETIC_POLICIES[rtype]
        out.append((f"{lid} ({label})", statements(props)))
    if rtype == "AWS::IAM::Role" and props.get("ManagedPolicyArns"):
        # An attached managed policy is shown as one pseudo-statement per policy ARN.
        out.append((f"{lid} (identity managed)", {"Statement": [
            {"Effect": "Allow", "Action": f"managed-policy:{ref_name(a)}", "Resource": "*"}
            for a in as_list(props["ManagedPolicyArns"])]}))
    return out


# Lambda permission properties that act as a condition on the caller, and the condition key each one sets.
LAMBDA_CONDITIONS = {"SourceArn": ("ArnLike", "AWS:SourceArn"), "SourceAccount": ("StringEquals", "AWS:SourceAccount"),
                     "PrincipalOrgID": ("StringEquals", "aws:PrincipalOrgID"),
                     "FunctionUrlAuthType": ("StringEquals", "lambda:FunctionUrlAuthType")}


def _lambda_permission(props: dict) -> dict:
    """A Lambda permission as the statement it adds to the function's resource policy."""
    principal = props.get("Principal")
    condition: dict = {}
    for prop, (operator, key) in LAMBDA_CONDITIONS.items():
        if prop in props:
            condition.setdefault(operator, {})[key] = ref_name(props[prop])
    statement = {"Effect": "Allow", "Action": props.get("Action"), "Resource": props.get("FunctionName"),
                 "Principal": principal if principal == "*" else
                 {"Service" if str(principal).endswith(".amazonaws.com") else "AWS": principal}}
    return {"Statement": [{**statement, "Condition": condition} if condition else statement]}


def _method_authorization(props: dict) -> dict:
    """An API Gateway method's authorisation as a statement: who may invoke it (NONE: anyone, "*")."""
    kind = str(props.get("AuthorizationType", "NONE"))
    who = "*" if kind == "NONE" else f"{kind}{' ' + ref_name(props['AuthorizerId']) if 'AuthorizerId' in props else ''}"
    condition = {"Bool": {"apigateway:ApiKeyRequired": "true"}} if props.get("ApiKeyRequired") else None
    statement = {"Effect": "Allow", "Principal": who, "Action": "execute-api:Invoke",
                 "Resource": f"{props.get('HttpMethod', '?')} {ref_name(props.get('ResourceId', '/'))}"}
    return {"Statement": [{**statement, "Condition": condition} if condition else statement]}


# Resources that grant access without a policy document: type -> (label, the statements they amount to).
SYNTHETIC_POLICIES = {"AWS::Lambda::Permission": ("resource permission", _lambda_permission),
                      "AWS::ApiGateway::Method": ("authorization", _method_authorization)}


def _atoms(stack: str, template: dict) -> set[_Atom]:
    out = set()
    for lid, res in (template.get("Resources") or {}).items():
        for label, doc in _policies(lid, res):
            for s in _statements(doc):
                actions = [a if k == "Action" else f"NOT {a}" for k in ("Action", "NotAction")
                           for a in map(ref_name, as_list(s.get(k)))]
                res_list = [r if k == "Resource" else f"NOT {r}" for k in ("Resource", "NotResource")
                            for r in map(ref_name, as_list(s.get(k)))] or [""]
                principal = _principal_text(s.get("Principal")) + (
                    f" NOT {_principal_text(s['NotPrincipal'])}" if "NotPrincipal" in s else "")
                cond = compact(s["Condition"]) if s.get("Condition") else ""
                for a in actions or [""]:
                    for r in res_list:
                        out.add(_Atom(stack, label, str(s.get("Effect", "Allow")), principal, cond, a, r))
    return out


@dataclass
class IamChange:
    sign: str  # + or -
    stack: str
    policy: str
    effect: str
    actions: list[str]
    resources: list[str]
    principal: str
    condition: str
    widens: bool


def _covers(pattern: str, value: str) -> bool:
    return pattern == value or ("*" in pattern and not pattern.startswith("NOT ")
                                and fnmatch.fnmatchcase(value.lower(), pattern.lower()))


def _widens(atom: _Atom, sign: str, before: set[_Atom]) -> bool:
    if sign == "-":
        return atom.effect == "Deny"
    if atom.effect != "Allow":
        return False
    # An old Allow covers the new one when it names the same policy, a principal that matches (AWS:* covers
    # AWS:arn:...), no condition or the same one, and matching action and resource.
    return not any(o.effect == "Allow" and (o.stack, o.policy) == (atom.stack, atom.policy)
                   and _covers(o.principal, atom.principal) and o.condition in ("", atom.condition)
                   and _covers(o.action, atom.action) and _covers(o.resource, atom.resource) for o in before)


def _group_atoms(sign: str, atoms: set[_Atom], before: set[_Atom]) -> list[IamChange]:
    # Regroup atoms into statements: actions sharing a resource, then resources sharing an action set.
    by_resource: dict[tuple, set[str]] = {}
    for a in atoms:
        wid = _widens(a, sign, before)
        by_resource.setdefault((a.stack, a.policy, a.effect, a.principal, a.condition, a.resource, wid),
                               set()).add(a.action)
    by_actions: dict[tuple, list[str]] = {}
    for (stack, policy, effect, principal, cond, resource, wid), actions in by_resource.items():
        by_actions.setdefault((stack, policy, effect, principal, cond, tuple(sorted(actions)), wid),
                              []).append(resource)
    return [IamChange(sign, stack, policy, effect, list(actions), sorted(res), principal, cond, wid)
            for (stack, policy, effect, principal, cond, actions, wid), res in by_actions.items()]


def iam_changes(old: dict[str, dict], new: dict[str, dict]) -> list[IamChange]:
    out = []
    for key in sorted(old.keys() | new.keys()):
        before, after = _atoms(key, old.get(key) or {}), _atoms(key, new.get(key) or {})
        out += _group_atoms("-", before - after, after) + _group_atoms("+", after - before, before)
    # Every field in the key: statements differing only in principal or condition must not come out in set order.
    return sorted(out, key=lambda c: (c.stack, c.policy, c.sign == "+", c.effect, c.actions, c.resources,
                                      c.principal, c.condition, c.widens))

