"""The template graph of one environment: what feeds each value, through the parent's wiring.

Reads `{template name: template}` for one environment: the parent ("main") and its children, each named as
the parent's TemplateURL names its file, without ".json". Knows nothing of the project's config, so the diff,
the rules and the tests read the wiring alike.

The parent passes a child's Parameters in its nested stack's `Parameters`: `Fn::GetAtt [ChildStack,
Outputs.X]` is another child's Output X, a `Ref` one of the parent's own (deploy-time) Parameters.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-cloudformation-stack.html
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from generator.aws_facts import NESTED_STACK_TYPE

PARENT = "main"
IMPORT = "Fn::ImportValue"  # the attribute `references` gives an imported export name

# ${Name} or ${Name.Attribute} in an Fn::Sub string (${!Literal} is not a reference).
SUB_REFERENCE = re.compile(r"\$\{([^!}][^}]*)\}")

Stacks = Mapping[str, dict]  # template name -> template, for one environment
Source = tuple[str, str, str]  # (template name, logical id or parameter name, attribute; "" for a Ref)


def template_name(url: object) -> str | None:
    """The template a TemplateURL names: its file name without ".json" (None for an intrinsic)."""
    return url.rsplit("/", 1)[-1].removesuffix(".json") if isinstance(url, str) else None


def nested_stacks(template: dict) -> dict[str, str]:
    """Logical id of each nested stack of a template -> the name of its child template."""
    found = {}
    for logical_id, r in (template.get("Resources") or {}).items():
        if r.get("Type") == NESTED_STACK_TYPE:
            child = template_name((r.get("Properties") or {}).get("TemplateURL"))
            if child is not None:
                found[logical_id] = child
    return found


def references(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str, str]]:
    """(path, name, attribute or "") for every Ref, Fn::GetAtt and Fn::Sub reference inside a value, and
    (path, export name, IMPORT) for every Fn::ImportValue. A variable an Fn::Sub defines is not a reference;
    the references inside its value are."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from references(item, (*path, i))
    elif isinstance(value, dict):
        if len(value) == 1:
            (k, arg), = value.items()
            if k == "Ref" and isinstance(arg, str):
                yield path, arg, ""
                return
            if k == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                if len(parts) == 2 and isinstance(parts[0], str):
                    yield path, parts[0], parts[1] if isinstance(parts[1], str) else ""
                    return
            if k == IMPORT:  # resolved through the exports of every template (see diff.blast)
                yield path, export_key(arg), IMPORT
                return
            if k == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1]) if (
                    isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict)) else ("", {})
                for name in SUB_REFERENCE.findall(text if isinstance(text, str) else ""):
                    target, _, attribute = name.partition(".")
                    if target not in variables:
                        yield path, target, attribute
                yield from references(variables, path)
                return
        for k, v in value.items():
            yield from references(v, (*path, k))


def export_key(name: Any) -> str:
    """An export name as a key on which an Output's Export and an Fn::ImportValue meet: a literal or an Fn::Sub
    text as written, any other intrinsic as its sorted JSON (they meet when they are written alike)."""
    if isinstance(name, dict) and len(name) == 1 and isinstance(name.get("Fn::Sub"), str):
        return name["Fn::Sub"]
    return name if isinstance(name, str) else json.dumps(name, sort_keys=True, separators=(",", ":"))


def wiring(stacks: Stacks, tier: str, parameter: str) -> Any:
    """The value the parent passes to a child template's Parameter (None when it passes none)."""
    if tier == PARENT or PARENT not in stacks:
        return None
    for logical_id, child in nested_stacks(stacks[PARENT]).items():
        if child == tier:
            return ((stacks[PARENT]["Resources"][logical_id].get("Properties") or {}).get("Parameters") or {}).get(
                parameter)
    return None


def feeder(stacks: Stacks, tier: str, parameter: str) -> tuple[str, str] | None:
    """(producing template, Output name) of the Output that feeds a child's Parameter; None for a Parameter the
    parent fills otherwise (one of its own deploy-time Parameters, a literal)."""
    reference = _one_reference(wiring(stacks, tier, parameter))
    if reference is None:
        return None
    stack, attribute = reference
    child = nested_stacks(stacks[PARENT]).get(stack)
    return (child, attribute.removeprefix("Outputs.")) if child and attribute.startswith("Outputs.") else None


def output_value(stacks: Stacks, tier: str, output: str) -> Any:
    """The Value of a template's Output (None when it has no such Output)."""
    return ((stacks.get(tier, {}).get("Outputs") or {}).get(output) or {}).get("Value")


def _one_reference(value: Any) -> tuple[str, str] | None:
    """(name, attribute) of a value that is exactly one Ref or Fn::GetAtt."""
    if isinstance(value, dict) and len(value) == 1 and ("Ref" in value or "Fn::GetAtt" in value):
        named = list(references(value))
        if len(named) == 1:
            return named[0][1], named[0][2]
    return None


def _hop(stacks: Stacks, tier: str, name: str, attribute: str, wired: bool) -> tuple[str, Any, bool] | None:
    """The next (template, value, wired) along the wiring from a reference in `tier`: a child's Parameter to the
    value the parent passes it (wired), and from there a nested stack's Output to that Output's value in its
    template; None where the wiring ends. A value of the parent's own (its Outputs) names its nested stacks as
    resources of the parent."""
    body = stacks[tier]
    if wired:
        child = nested_stacks(body).get(name)
        if child is not None and attribute.startswith("Outputs."):
            return child, output_value(stacks, child, attribute.removeprefix("Outputs.")), False
    if tier != PARENT and name in (body.get("Parameters") or {}):
        return PARENT, wiring(stacks, tier, name), True
    return None


def trace(stacks: Stacks, tier: str, value: Any) -> set[Source]:
    """Every (template, logical id, attribute) a value of `tier` is built from, through the parent's wiring.

    Follows Ref, Fn::GetAtt and the variables of Fn::Sub anywhere in the value (see _hop). A deploy-time
    Parameter of the parent is (PARENT, its name, ""); pseudo parameters (AWS::...) and imports are not followed.
    """
    found: set[Source] = set()
    seen: set[tuple[str, str, str, bool]] = set()

    def walk(in_tier: str, v: Any, wired: bool) -> None:
        body = stacks[in_tier]
        for _path, name, attribute in references(v):
            if attribute == IMPORT or name.startswith("AWS::") or (in_tier, name, attribute, wired) in seen:
                continue
            seen.add((in_tier, name, attribute, wired))
            step = _hop(stacks, in_tier, name, attribute, wired)
            if step is not None:
                walk(*step)
            elif name in (body.get("Resources") or {}):
                found.add((in_tier, name, attribute))
            elif name in (body.get("Parameters") or {}):
                found.add((PARENT, name, ""))

    walk(tier, value, False)
    return found


def sources(stacks: Stacks, tier: str, value: Any) -> set[tuple[str, str]]:
    """Every (template, logical id) a value is built from (see trace); a deploy-time parameter is (PARENT, name)."""
    return {(t, name) for t, name, _ in trace(stacks, tier, value)}


def resolve(stacks: Stacks, tier: str, value: Any, wired: bool = False) -> tuple[str, str] | None:
    """(template, logical id) of the one resource a Ref or Fn::GetAtt names, through the parent's wiring; None
    for any other value, a deploy-time parameter or a name the templates do not hold."""
    reference = _one_reference(value)
    if reference is None:
        return None
    step = _hop(stacks, tier, *reference, wired)
    if step is not None:
        return resolve(stacks, *step)
    return (tier, reference[0]) if reference[0] in (stacks[tier].get("Resources") or {}) else None


def literal(stacks: Stacks, tier: str, value: Any, wired: bool = False) -> str | None:
    """The literal string a value is, through the parent's wiring (a Parameter fed by an Output), else None."""
    if isinstance(value, str):
        return value
    reference = _one_reference(value)
    step = _hop(stacks, tier, *reference, wired) if reference else None
    return literal(stacks, *step) if step else None


def resource(stacks: Stacks, ref: tuple[str, str]) -> dict:
    """The resource a (template, logical id) names."""
    return stacks[ref[0]]["Resources"][ref[1]]


def each_resource(stacks: Stacks, *types: str) -> Iterator[tuple[str, str, dict]]:
    """(template, logical id, resource) for every resource, optionally of the given types, in name order."""
    for tier, body in sorted(stacks.items()):
        for logical_id, r in sorted((body.get("Resources") or {}).items()):
            if not types or r.get("Type") in types:
                yield tier, logical_id, r
