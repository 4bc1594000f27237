"""What every rule shares: the Rule record, and reading every environment's templates generically."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from generator import graph

# env -> template name ("main", "network", ...) -> template
Templates = Mapping[str, Mapping[str, dict]]


@dataclass(frozen=True)
class Rule:
    """A check over every environment's templates, in cfn-lint's manner: an id, one line, the AWS page it rests
    on, and a function returning one finding per problem, "<env>/<template>.json <resource>: <what is wrong>"."""
    id: str
    description: str
    source: str
    check: Callable[[Templates], list[str]]

    def __call__(self, templates: Templates) -> list[str]:
        return self.check(templates)


def rule(rule_id: str, description: str, source: str) -> Callable[[Callable[[Templates], list[str]]], Rule]:
    """Declare a rule beside its function."""
    def declare(check: Callable[[Templates], list[str]]) -> Rule:
        return Rule(rule_id, description, source, check)
    return declare


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def label(env: str, tier: str, logical_id: str) -> str:
    return f"{env}/{tier}.json {logical_id}"


def each_resource(templates: Templates, *types: str) -> Iterator[tuple[str, str, str, str, dict]]:
    """(label, env, tier, logical id, resource) for every resource, optionally of the given types."""
    for env, stacks in sorted(templates.items()):
        for tier, logical_id, resource in graph.each_resource(stacks, *types):
            yield label(env, tier, logical_id), env, tier, logical_id, resource


def trace(templates: Templates, env: str, tier: str, value: Any) -> set[tuple[str, str, str]]:
    """Every resource (tier, logical id, attribute) a value is built from, through the parent's wiring (the
    parent's deploy-time parameters left out: they name no resource)."""
    return {(t, i, a) for t, i, a in graph.trace(templates[env], tier, value)
            if i in (templates[env][t].get("Resources") or {})}


def resolve(templates: Templates, env: str, tier: str, value: Any) -> tuple[str, str] | None:
    return graph.resolve(templates[env], tier, value)


def resource_of(templates: Templates, env: str, ref: tuple[str, str]) -> dict:
    return graph.resource(templates[env], ref)


def policy_documents(value: Any, path: str = "") -> Iterator[tuple[str, dict]]:
    """(property path, document) for every IAM policy document anywhere under a resource's Properties."""
    if isinstance(value, dict):
        if "Statement" in value:
            yield path, value
            return
        for key, item in value.items():
            yield from policy_documents(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from policy_documents(item, f"{path}[{i}]")


IDENTITY_POLICY_TYPES = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::User",
                         "AWS::IAM::Group")


def each_statement(templates: Templates) -> Iterator[tuple[str, str, dict]]:
    """(where, kind, statement): kind is "key" (KMS key policy), "endpoint" (VPC endpoint policy), "trust",
    "identity" or "resource"."""
    for where, _env, _tier, _id, resource in each_resource(templates):
        for path, document in policy_documents(resource.get("Properties", {})):
            if resource["Type"] == "AWS::KMS::Key":
                kind = "key"
            elif resource["Type"] == "AWS::EC2::VPCEndpoint":
                kind = "endpoint"  # limits what passes the endpoint; grants nothing by itself
            elif path.startswith("AssumeRolePolicyDocument"):
                kind = "trust"
            elif resource["Type"] in IDENTITY_POLICY_TYPES:
                kind = "identity"
            else:
                kind = "resource"
            for i, statement in enumerate(as_list(document["Statement"])):
                yield f"{where} {path} statement {statement.get('Sid', i)}", kind, statement


def matches(actions: list, wanted: str) -> bool:
    """Whether any (possibly wildcarded) action grants `wanted` (IAM action names are case-insensitive)."""
    return any(fnmatch.fnmatchcase(wanted.lower(), a.lower()) for a in actions if isinstance(a, str))


def is_tls_deny(statement: dict, action: str) -> bool:
    """A Deny of `action` (or a wildcard covering it) to everyone whenever the request is not over TLS."""
    return (statement.get("Effect") == "Deny" and statement.get("Principal") in ("*", {"AWS": "*"}, {"AWS": ["*"]})
            and matches(as_list(statement.get("Action", [])), action)
            and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}})

