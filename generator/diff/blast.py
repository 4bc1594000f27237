"""Blast radius: what a replacement changes beyond the replaced resource.

A replaced resource gets a new physical id, so every `Ref`/`Fn::GetAtt` of it takes a new value. The value
flows through references inside a template, through Outputs to the parent (`Fn::GetAtt [Stack, Outputs.X]`),
through the parent's nested-stack Parameters into the child's Parameters, and through exports to
`Fn::ImportValue`. A reference in a create-only property replaces its resource (the same cfn-lint schema
facts as the direct analysis), which goes on flowing; any other reference updates it in place. Followed to a
fixed point; every consequence keeps the chain that leads to it.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from generator.aws_facts import NESTED_STACK_TYPE
from generator.diff.replacement import MAY_BE_REPLACED, REPLACED, replacement_for
from generator.diff.values import path_text
from generator.graph import IMPORT, export_key, nested_stacks, references

# A node whose value changes: ("resource", key, logical id), ("parameter", key, name), ("output", key, name).
Node = tuple[str, str, str]


@dataclass
class Consequence:
    """A resource replaced or updated because a value it references changes."""
    stack: str  # <env>/<file>
    logical_id: str
    type: str
    effect: str  # replaced, may be replaced, updated
    property: str  # the referencing property, from Properties
    chain: list[str] = field(default_factory=list)  # this resource first, back to the direct change

    @builtins.property  # `property` is a field of this class
    def chain_text(self) -> str:
        return " <- ".join(self.chain)


def _label(node: Node, effect: str = "") -> str:
    kind, key, name = node
    tier = key.split("/", 1)[-1].removesuffix(".json")
    if kind == "resource":
        return f"{tier}/{name} {effect}".rstrip()
    return f"{tier} {kind} {name}"


def _exports(templates: dict[str, dict]) -> dict[str, Node]:
    """Export name (graph.export_key) -> the output that exports it."""
    return {export_key(o["Export"]["Name"]): ("output", key, name)
            for key, t in templates.items() for name, o in (t.get("Outputs") or {}).items()
            if isinstance(o, dict) and isinstance(o.get("Export"), dict) and "Name" in o["Export"]}


def _edges(templates: dict[str, dict]) -> dict[Node, list[tuple[Node, tuple, str]]]:
    """For each node, the (dependent node, property path, dependent type) that take their value from it."""
    out: dict[Node, list[tuple[Node, tuple, str]]] = {}
    exports = _exports(templates)
    for key, t in templates.items():
        for source, target, path, rtype in _template_edges(key, t, exports):
            out.setdefault(source, []).append((target, path, rtype))
    return out


def _template_edges(key: str, t: dict, exports: dict[str, Node]) -> Iterator[tuple[Node, Node, tuple, str]]:
    env = key.split("/", 1)[0]
    resources, params = t.get("Resources") or {}, t.get("Parameters") or {}
    # The parent's wiring (graph): Fn::GetAtt [Stack, Outputs.X] is its child's output X, and the stack's
    # Parameters feed the child's Parameters of the same name.
    children = {lid: f"{env}/{child}.json" for lid, child in nested_stacks(t).items()}

    def source(name: str, attr: str) -> Node | None:
        if attr == IMPORT:
            return exports.get(name)
        if name in children:  # Fn::GetAtt [Stack, Outputs.X] is the child's output X
            return ("output", children[name], attr.removeprefix("Outputs.")) if attr.startswith("Outputs.") else None
        if name in resources:
            return "resource", key, name
        return ("parameter", key, name) if name in params and not attr else None

    def linked(value: Any, target: Node, rtype: str) -> Iterator[tuple[Node, Node, tuple, str]]:
        for path, name, attr in references(value):
            src = source(name, attr)
            if src:
                yield src, target, path, rtype

    for lid, r in resources.items():
        props = r.get("Properties") or {}
        if lid in children:  # a nested stack's Parameters feed the child's Parameters of the same name
            for pname, v in (props.get("Parameters") or {}).items():
                yield from linked(v, ("parameter", children[lid], pname), NESTED_STACK_TYPE)
        else:
            yield from linked(props, ("resource", key, lid), r.get("Type", "?"))
    for oname, o in (t.get("Outputs") or {}).items():
        if isinstance(o, dict):
            yield from linked(o.get("Value"), ("output", key, oname), "")


def _weaker(a: str, b: str) -> str:
    return REPLACED if a == REPLACED and b == REPLACED else MAY_BE_REPLACED


def blast_radius(new: dict[str, dict], seeds: dict[Node, tuple[str, str]],
                 types: dict[Node, str] | None = None) -> list[Consequence]:
    """Consequences of the direct replacements `seeds` (node -> (level, what changed)) in the new templates.

    A consequence at "may be replaced" follows from a conditional create-only property or a seed that only
    may be replaced. Directly replaced resources are not repeated; a resource reached twice keeps the
    stronger effect and the first chain that gave it."""
    if not seeds:
        return []
    edges = _edges(new)
    level: dict[Node, str] = {n: lv for n, (lv, _) in seeds.items()}
    chain: dict[Node, list[str]] = {n: [_label(n, lv), why] for n, (lv, why) in seeds.items()}
    found: dict[Node, Consequence] = {}
    work = list(seeds)
    while work:
        node = work.pop(0)
        for target, path, rtype in edges.get(node, ()):
            kind, key, name = target
            if kind == "resource":
                direct = replacement_for(rtype, path)
                effect = _weaker(level[node], direct) if direct else "updated"
            else:
                effect = level[node]  # a parameter or output just takes the new value on
            if target in seeds or not _stronger(effect, level.get(target)):
                if kind == "resource" and target not in seeds and target not in found and effect == "updated":
                    found[target] = Consequence(key, name, rtype, effect, _property(path),
                                                [_label(target, effect), _property(path)] + chain[node])
                continue
            level[target] = effect
            via = [_property(path)] if kind == "resource" else []
            chain[target] = [_label(target, effect if kind == "resource" else "")] + via + chain[node]
            if kind == "resource":
                found[target] = Consequence(key, name, rtype, effect, _property(path), chain[target])
            work.append(target)
    order = {k: i for i, k in enumerate(new)}
    return sorted(found.values(), key=lambda c: (order.get(c.stack, 0), c.effect == "updated", c.logical_id))


def _property(path: tuple) -> str:
    """The property a reference sits in, without the intrinsic functions around it (SubnetId, not
    SubnetId.Fn::Select[1])."""
    cut = next((i for i, seg in enumerate(path) if isinstance(seg, str) and seg.startswith("Fn::")), len(path))
    return path_text(path[:cut])


def _stronger(effect: str, than: str | None) -> bool:
    """Whether `effect` makes a node change more than it already does ("updated" never propagates)."""
    if effect == "updated":
        return False
    return than is None or than == "updated" or (effect == REPLACED and than == MAY_BE_REPLACED)
