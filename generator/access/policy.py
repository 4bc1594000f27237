"""IAM policy evaluation, as much of it as the templates use: one request against rendered policy documents.

How AWS decides, within one account
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
  * an explicit Deny in any policy that applies wins;
  * a VPC endpoint policy on the request's route must allow it (it grants nothing by itself)
    (https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html);
  * a KMS key policy must allow it, naming the principal, or naming the account (then an identity policy must
    allow it too) (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html);
  * otherwise an identity policy allows it, or a resource policy allows it naming the principal (or "*"): a
    resource policy that names the account delegates to the identity policies;
  * a service principal has no identity policy: only a resource (or key) policy can allow it.

Statement matching: Action and Resource with `*` and `?` wildcards (actions case-insensitive), Principal (AWS,
Service, "*"), and the Condition operators below; an operator this module does not know is an error, never a match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

IDENTITY, RESOURCE, KEY, GATEWAY, INTERFACE = "identity", "resource", "key", "gateway endpoint", "interface endpoint"
ROOT = re.compile(r"^(?:arn:aws[\w-]*:iam::)?(\d{12})(?::root)?$")


class UnknownCondition(ValueError):
    """A Condition operator the evaluator does not implement: the proof cannot vouch for that statement."""


@dataclass(frozen=True)
class Policy:
    kind: str  # IDENTITY, RESOURCE, KEY, GATEWAY or INTERFACE
    where: str  # "<env>/<template>.json <logical id> <property>"
    statements: tuple[dict, ...]  # rendered: strings, lists of strings


@dataclass(frozen=True)
class Principal:
    kind: str  # "role", "service" (a service principal) or "aws" (a principal of AWS's own, e.g. a pre-signed URL)
    name: str  # the role's ARN, the service principal's name, or what signs for AWS
    where: str = ""  # the role's "<env>/<template>.json <logical id>"
    account: str | None = None  # the principal's account; None for a service principal
    policies: tuple[Policy, ...] = ()  # identity policies


@dataclass(frozen=True)
class Request:
    principal: Principal
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)  # condition key (any case) -> value or list of values


def _glob(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return _compiled(pattern, flags)


@cache
def _compiled(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z",
                      flags | re.DOTALL)


def like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return bool(_glob(pattern, re.IGNORECASE if ignore_case else 0).match(value))


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]


def action_matches(statement: dict, action: str) -> bool:
    if "NotAction" in statement:
        return not any(like(a, action, True) for a in as_list(statement["NotAction"]))
    return any(like(a, action, True) for a in as_list(statement.get("Action")))


def resource_matches(statement: dict, resource: str) -> bool:
    if "NotResource" in statement:
        return not any(like(r, resource) for r in as_list(statement["NotResource"]))
    if "Resource" not in statement:  # a trust or endpoint policy may leave it out: every resource
        return True
    return any(like(r, resource) for r in as_list(statement["Resource"]))


def principal_match(statement: dict, principal: Principal, kind: str) -> str | None:
    """How a statement's Principal names the request's: "self" (the principal, or "*"), "account" (its account:
    the identity policies decide too), or None. Identity policies have no Principal: "self"."""
    if kind == IDENTITY:
        return "self"
    if "NotPrincipal" in statement:
        return None if principal_match({"Principal": statement["NotPrincipal"]}, principal, kind) else "self"
    named = statement.get("Principal")
    if named == "*":
        return "self"
    if not isinstance(named, dict):
        return None
    if principal.kind == "service":
        return "self" if principal.name in as_list(named.get("Service")) else None
    for entry in as_list(named.get("AWS")):
        if entry == "*" or entry == principal.name:
            return "self"
        root = ROOT.match(entry)
        # In a gateway endpoint's policy an account principal is that account's root user alone
        # (https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html#vpc-endpoint-policies-gateway):
        # no role matches it. Elsewhere it means every principal of the account whose own policies allow
        # (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-accounts).
        if root and principal.account == root.group(1) and principal.kind == "role" and kind != GATEWAY:
            return "account"
    return None


# --- conditions ----------------------------------------------------------------------------------------------

def _string(p: str, v: str) -> bool:
    return p == v


def _string_ignore_case(p: str, v: str) -> bool:
    return p.lower() == v.lower()


def _bool(p: str, v: str) -> bool:
    return p.lower() == v.lower()


# operator (without IfExists, without Not) -> how one policy value matches one request value
OPERATORS = {
    "StringEquals": _string, "StringEqualsIgnoreCase": _string_ignore_case, "StringLike": lambda p, v: like(p, v),
    "ArnEquals": lambda p, v: like(p, v), "ArnLike": lambda p, v: like(p, v), "Bool": _bool,
}
NEGATED = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
           "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}


def condition_holds(condition: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """Every operator and every key of a Condition block holds (any of a key's values matches; for a negated
    operator none does). A key missing from the request fails a positive operator and passes a negated one;
    `...IfExists` passes when it is missing (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html)."""
    lowered = {k.lower(): v for k, v in context.items()}
    for operator, keys in condition.items():
        for key, wanted in keys.items():
            if not _one_condition(operator, lowered.get(key.lower()), [str(w) for w in as_list(wanted)]):
                return False
    return True


def _one_condition(operator: str, present: Any, wanted: list[str]) -> bool:
    qualifier, _, name = operator.rpartition(":")  # ForAnyValue:StringLike
    if_exists = name.endswith("IfExists")
    name = name.removesuffix("IfExists")
    if name == "Null":
        return (present is None) == (wanted[0].lower() == "true")
    match = OPERATORS.get(NEGATED.get(name, name))
    if match is None or qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise UnknownCondition(operator)
    if present is None:
        return if_exists or name in NEGATED
    values = [str(v) for v in as_list(present)]
    negated = name in NEGATED
    hits = [any(match(w, v) for w in wanted) for v in values]
    if qualifier == "ForAllValues":
        return all(not h for h in hits) if negated else all(hits)
    return not any(hits) if negated else any(hits)


# --- a decision ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    effect: str  # "Deny", "Allow" or "" (no statement applies)
    statement: str = ""  # the deciding statement's Sid or index
    via_account: bool = False  # the Allow names the principal's account, not the principal


def decide(policy: Policy, request: Request) -> Decision:
    """One policy's word on a request: an explicit Deny, else the first Allow (preferring one that names the
    principal itself over one that names its account), else nothing."""
    allow: Decision | None = None
    for i, s in enumerate(policy.statements):
        named = principal_match(s, request.principal, policy.kind)
        if named is None or not action_matches(s, request.action) or not resource_matches(s, request.resource):
            continue
        if not condition_holds(s.get("Condition") or {}, request.context):
            continue
        sid = str(s.get("Sid", i))
        if s.get("Effect") == "Deny":
            return Decision("Deny", sid)
        if allow is None or (allow.via_account and named == "self"):
            allow = Decision("Allow", sid, named == "account")
    return allow or Decision("")


def evaluate(request: Request, resource_policies: Iterable[Policy] = (), endpoint: Policy | None = None) -> str | None:
    """None when AWS would allow the request; else why not, naming the policy that refuses it."""
    identity = [decide(p, request) for p in request.principal.policies]
    others = [(p, decide(p, request)) for p in resource_policies]
    checked = [*zip(request.principal.policies, identity, strict=True), *others]
    if endpoint is not None:
        checked.append((endpoint, decide(endpoint, request)))
    for policy, d in checked:
        if d.effect == "Deny":
            return f"denied by statement {d.statement} of the {policy.kind} policy {policy.where}"
    if endpoint is not None and checked[-1][1].effect != "Allow":
        why = (" (an account principal in a gateway endpoint's policy is the root user alone)"
               if endpoint.kind == GATEWAY and _names_account_only(endpoint, request) else "")
        return f"no statement of the {endpoint.kind} policy {endpoint.where} allows it{why}"
    identity_allows = any(d.effect == "Allow" for d in identity)
    keys = [(p, d) for p, d in others if p.kind == KEY]
    for policy, d in keys:
        if d.effect != "Allow":
            return f"no statement of the key policy {policy.where} allows it"
        if d.via_account and not identity_allows:
            return (f"the key policy {policy.where} leaves it to the identity policies, and none of "
                    f"{_role(request)} allows it")
    if keys:
        return None
    if identity_allows or any(d.effect == "Allow" and not d.via_account for _, d in others):
        return None
    if request.principal.kind == "service":
        where = ", ".join(p.where for p, _ in others) or "no resource policy"
        return f"no statement of the resource policy ({where}) allows the service principal"
    if request.principal.kind == "aws":
        return None  # AWS's own principal on AWS's own resource: only the endpoint policy was ours to check
    return f"no statement of the identity policies of {_role(request)} allows it"


def _role(request: Request) -> str:
    return request.principal.where or request.principal.name


def _names_account_only(endpoint: Policy, request: Request) -> bool:
    """Whether some Allow of the endpoint policy would match but names the account root as its principal."""
    return request.principal.kind == "role" and any(
               s.get("Effect") == "Allow" and action_matches(s, request.action)
               and resource_matches(s, request.resource) and condition_holds(s.get("Condition") or {}, request.context)
               and any(ROOT.match(str(e)) for e in as_list((s.get("Principal") or {}).get("AWS")
                                                             if isinstance(s.get("Principal"), dict) else None))
               for s in endpoint.statements)
