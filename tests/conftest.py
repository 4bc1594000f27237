"""Shared fixtures: every environment's templates, generated once per test session, as parsed JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator import config
from generator.render import render_environment

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"


@pytest.fixture(scope="session")
def rendered() -> dict[str, dict[str, str]]:
    """env -> file name -> JSON text, exactly as `python -m generator` would write it."""
    return {name: render_environment(cfg) for name, cfg in config.ENVIRONMENTS.items()}


@pytest.fixture(scope="session")
def templates(rendered) -> dict[str, dict[str, dict]]:
    """env -> tier ("network", ..., "main") -> parsed template."""
    return {env: {name.removesuffix(".json"): json.loads(text) for name, text in files.items()}
            for env, files in rendered.items()}


def resources_of_type(template: dict, type_: str) -> dict[str, dict]:
    return {k: v for k, v in template.get("Resources", {}).items() if v["Type"] == type_}


def one_resource(template: dict, type_: str) -> dict:
    found = resources_of_type(template, type_)
    assert len(found) == 1, f"expected exactly one {type_}, found {sorted(found)}"
    return next(iter(found.values()))


def statements(policy_document: dict) -> list[dict]:
    return policy_document["Statement"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def each_resource(templates: dict, *types: str):
    """(label, env, tier, logical id, resource) for every resource, optionally of the given types."""
    for env, tiers in sorted(templates.items()):
        for tier, body in sorted(tiers.items()):
            for logical_id, resource in sorted(body.get("Resources", {}).items()):
                if not types or resource["Type"] in types:
                    yield f"{env}/{tier}.json {logical_id}", env, tier, logical_id, resource


def resolve(templates: dict, env: str, tier: str, value) -> tuple[str, str] | None:
    """(tier, logical id) of the resource a Ref/GetAtt names, through the parent for a Parameter."""
    if not isinstance(value, dict):
        return None
    if "Ref" in value:
        name = value["Ref"]
    elif "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        name = target[0] if isinstance(target, list) else target.split(".")[0]
    else:
        return None
    body = templates[env][tier]
    if name in body.get("Resources", {}):
        return tier, name
    if name not in body.get("Parameters", {}) or tier == "main":
        return None
    stacks = {r["Properties"]["TemplateURL"]: r for r in templates[env]["main"]["Resources"].values()
              if r["Type"] == "AWS::CloudFormation::Stack"}
    wiring = stacks[f"{tier}.json"]["Properties"]["Parameters"].get(name)
    if not isinstance(wiring, dict) or "Fn::GetAtt" not in wiring:
        return None  # a deploy-time parameter of the parent
    producer_stack, output = wiring["Fn::GetAtt"]
    producer = templates[env]["main"]["Resources"][producer_stack]["Properties"]["TemplateURL"].removesuffix(".json")
    return resolve(templates, env, producer, templates[env][producer]["Outputs"][output.removeprefix("Outputs.")]["Value"])
