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
