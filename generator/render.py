"""Turn an environment's settings into its template files (pure: no file access)."""

from __future__ import annotations

import json
import re

import orjson
from troposphere import Template

from generator import aws_facts, parent
from generator.config import EnvConfig
from generator.errors import LimitError, TemplateError  # raised here and by tiers; the CLI reports them
from generator.tiers import TIERS

PARENT_FILE = "main.json"

# CloudFormation's quotas for one template (aws_facts, with their page); module names so a test can lower one.
MAX_TEMPLATE_BYTES = aws_facts.CLOUDFORMATION_MAX_TEMPLATE_BYTES
MAX_RESOURCES = aws_facts.CLOUDFORMATION_MAX_RESOURCES
MAX_PARAMETERS = aws_facts.CLOUDFORMATION_MAX_PARAMETERS
MAX_OUTPUTS = aws_facts.CLOUDFORMATION_MAX_OUTPUTS


# orjson writes exactly what json.dumps(sort_keys=True, indent=2, ensure_ascii=False) writes (tests/test_golden.py
# proves it for every template), in C: the standard library falls back to pure Python once indent is set, which
# was a third of generation.
JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def to_json(template: Template | dict) -> str:
    body = template.to_dict() if isinstance(template, Template) else template
    return orjson.dumps(body, option=JSON_OPTIONS).decode("utf-8")


def to_json_standard(body: dict) -> str:
    """The reference format, by the standard library: what to_json must equal byte for byte."""
    return json.dumps(body, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def build_templates(cfg: EnvConfig) -> dict[str, Template]:
    """All templates of one environment, keyed by file name, children in registry order then the parent."""
    children = {tier.name: tier.build(cfg) for tier in TIERS}
    templates = {f"{name}.json": t for name, t in children.items()}
    templates[PARENT_FILE] = parent.build(cfg, children)
    return templates


def render_environment(cfg: EnvConfig) -> dict[str, str]:
    """File name -> JSON text for one environment; raises ConfigError, LimitError or TemplateError before anything
    is written."""
    # troposphere's to_dict() runs its validation (required properties, class validators) as it serialises.
    bodies = {name: t.to_dict() for name, t in build_templates(cfg).items()}
    files = {name: to_json(body) for name, body in bodies.items()}
    for name, text in files.items():
        check_no_null(f"{cfg.name}/{name}", bodies[name])
        check_limits(f"{cfg.name}/{name}", bodies[name], len(text.encode()))
    return files


PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # written .key in a JSON path; others ['key']


def null_paths(value: object, path: str = "$") -> list[str]:
    """JSON paths of every null in `value`, in document order."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [found for key, item in value.items()
                for found in null_paths(item, f"{path}.{key}" if PLAIN_KEY.fullmatch(key) else f"{path}[{key!r}]")]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in null_paths(item, f"{path}[{i}]")]
    return []


def check_no_null(label: str, body: dict) -> None:
    """No null anywhere in a template. CloudFormation refuses a null property value
    (https://github.com/aws-cloudformation/cloudformation-coverage-roadmap/issues/1378) and the emulator drops
    `"ResultPath": null` from a state machine's Definition, so a null means different things in different places:
    say it without one (a state's "discard the result" is a ResultSelector and a ResultPath of its own)."""
    found = null_paths(body)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise TemplateError(f"{label}: null at {found[0]}{more}; a template may contain no null (CloudFormation "
                            "refuses it in properties, the emulator drops it): express it without one")


def check_limits(label: str, body: dict, size: int) -> None:
    counts = (
        ("bytes", size, MAX_TEMPLATE_BYTES),
        ("resources", len(body.get("Resources", {})), MAX_RESOURCES),
        ("parameters", len(body.get("Parameters", {})), MAX_PARAMETERS),
        ("outputs", len(body.get("Outputs", {})), MAX_OUTPUTS),
    )
    for what, value, limit in counts:
        if value > limit:
            raise LimitError(f"{label}: {value} {what} exceeds the CloudFormation limit of {limit} {what}; "
                             "split the tier or trim it")
