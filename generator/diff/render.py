"""Render a diff Report as text (optionally coloured), Markdown (a pull-request comment) or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from generator.cost import review as cost_review
from generator.diff.iam import IamChange
from generator.diff.network import SgChange
from generator.diff.report import Report, ResourceChange, StackDiff
from generator.diff.values import MISSING, Change, compact

JSON_FORMAT_VERSION = 2  # 2: consequences, exports, drift, data_loss[].chain (docs/diff.md)
MAX_VALUE = 100  # characters of a value shown in text and Markdown (JSON carries it whole)

SIGNS = {"added": "+", "removed": "-", "changed": "~", "renamed": "±"}
COLOURS = {"+": "32", "-": "31", "~": "33", "±": "35", "!": "1;31", "h": "1"}


def short(v: Any, limit: int = MAX_VALUE) -> str:
    text = compact(v)
    return text if len(text) <= limit else text[:limit - 1] + "…"


# ---------------------------------------------------------------- JSON

def _change_json(c: Change) -> dict:
    out: dict[str, Any] = {"path": c.path}
    if c.old is not MISSING:
        out["old"] = c.old
    if c.new is not MISSING:
        out["new"] = c.new
    if c.replacement:
        out["replacement"] = c.replacement
    return out


def _resource_json(rc: ResourceChange) -> dict:
    out: dict[str, Any] = {"logical_id": rc.logical_id, "type": rc.type, "action": rc.action,
                           "replacement": rc.replacement, "reason": rc.reason,
                           "changes": [_change_json(c) for c in rc.changes]}
    if rc.old_logical_id:
        out["old_logical_id"] = rc.old_logical_id
    if rc.workflow:
        wf = rc.workflow
        out["states"] = {
            "added": [{"name": n, "type": t} for n, t in wf.added],
            "removed": [{"name": n, "type": t} for n, t in wf.removed],
            "changed": [{"name": s.name, "fields": s.fields, "changes": [_change_json(c) for c in s.changes]}
                        for s in wf.changed],
            "definition": [_change_json(c) for c in wf.top],
        }
    return out


def to_json(report: Report) -> str:
    counts = {a: sum(rc.action == a for sd in report.stacks for rc in sd.resources)
              for a in ("added", "removed", "changed", "renamed")}
    body = {
        "version": JSON_FORMAT_VERSION,
        "base": report.base,
        "target": report.target,
        "summary": {
            "has_changes": report.has_changes,
            "stacks_changed": sum(sd.status != "unchanged" for sd in report.stacks),
            "resources": counts,
            "replaced": sum(rc.replacement == "replaced" for _, rc in report.replacements),
            "may_be_replaced": sum(rc.replacement == "may be replaced" for _, rc in report.replacements),
            "data_loss_risks": len(report.data_loss),
            "exports_broken": len(report.exports),
            "consequential_replacements": len(report.consequential_replacements),
            "consequential_updates": len(report.consequences) - len(report.consequential_replacements),
            "permissions_widen": report.permissions_widen,
            "network_widens": report.network_widens,
            "verdict": report.verdict,
        },
        "data_loss": [vars(r) for r in report.data_loss],
        "consequences": [{**vars(c), "chain": c.chain} for c in report.consequences],
        "exports": [vars(e) for e in report.exports],
        "drift": None if report.drift is None else [vars(d) for d in report.drift],
        "stacks": [{
            "env": sd.env, "stack": sd.file, "status": sd.status,
            "resources": [_resource_json(rc) for rc in sd.resources],
            "parameters": [{"name": e.name, "action": e.action, "changes": [_change_json(c) for c in e.changes]}
                           for e in sd.parameters],
            "outputs": [{"name": e.name, "action": e.action, "changes": [_change_json(c) for c in e.changes]}
                        for e in sd.outputs],
            "template": [_change_json(c) for c in sd.template],
        } for sd in report.stacks],
        "security": {
            "verdict": report.verdict,
            "iam": [vars(c) for c in report.iam],
            "security_groups": [{"sign": c.sign, **vars(c.rule), "widens": c.widens} for c in report.network],
        },
    }
    if report.cost is not None:  # computed by the CLI (generator/cost/review.py)
        body["cost"] = cost_review.to_json(report.cost)
    return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- shared by text and Markdown

def _headline(report: Report) -> str:
    changed = [sd for sd in report.stacks if sd.status != "unchanged"]
    resources = [rc for sd in report.stacks for rc in sd.resources]
    replaced = sum(rc.replacement == "replaced" for rc in resources)
    maybe = sum(rc.replacement == "may be replaced" for rc in resources)
    if not changed:
        return f"no changes in {len(report.stacks)} stack(s)"
    return (f"{len(changed)} of {len(report.stacks)} stack(s) changed; {len(resources)} resource change(s): "
            f"{replaced} replaced, {maybe} may be replaced")


def _resource_line(rc: ResourceChange) -> str:
    name = f"{rc.old_logical_id} -> {rc.logical_id}" if rc.old_logical_id else rc.logical_id
    label = rc.replacement.upper() if rc.replacement else rc.action
    return f"{name} ({rc.type}) {label}" + (f": {rc.reason}" if rc.reason else "")


def _change_line(c: Change) -> str:
    tail = f"  [{c.replacement}]" if c.replacement else ""
    return f"{c.path}: {short(c.old)} -> {short(c.new)}{tail}"


def _iam_rows(rows: list[IamChange]) -> list[list[str]]:
    return [[c.sign, c.stack, c.policy, c.effect, ", ".join(c.actions), ", ".join(c.resources) or "-",
             c.principal or "-", short(c.condition) if c.condition else "-", "yes" if c.widens else ""]
            for c in rows]


def _sg_rows(rows: list[SgChange]) -> list[list[str]]:
    return [[c.sign, c.rule.stack, c.rule.group, c.rule.direction,
             c.rule.protocol if c.rule.ports == "all" and c.rule.protocol == "all" else
             f"{c.rule.protocol} {c.rule.ports}", c.rule.peer, "yes" if c.widens else ""] for c in rows]


IAM_HEAD = ["+/-", "stack", "policy", "effect", "actions", "resources", "principal", "condition", "widens"]
SG_HEAD = ["+/-", "stack", "group", "direction", "protocol/ports", "peer", "widens"]


def _stack_lines(sd: StackDiff) -> list[tuple[int, str, str]]:
    """(indent, sign, text) lines describing one changed stack; rendered by both text and Markdown."""
    lines: list[tuple[int, str, str]] = []
    for rc in sd.resources:
        lines.append((0, "!" if rc.replacement else SIGNS[rc.action], _resource_line(rc)))
        lines += [(1, "", _change_line(c)) for c in rc.changes]
        if rc.workflow:
            wf = rc.workflow
            lines.append((1, "", "state machine definition, state by state:"))
            lines += [(2, "", _change_line(c)) for c in wf.top]
            lines += [(2, "+", f"state {n} ({t}) added") for n, t in wf.added]
            lines += [(2, "-", f"state {n} ({t}) removed") for n, t in wf.removed]
            for s in wf.changed:
                lines.append((2, "~", f"state {s.name} changed: {', '.join(s.fields)}"))
                lines += [(3, "", _change_line(c)) for c in s.changes]
    for what, entries in (("parameter", sd.parameters), ("output", sd.outputs)):
        for e in entries:
            lines.append((0, SIGNS[e.action], f"{what} {e.name} {e.action}"))
            if e.action == "changed":
                lines += [(1, "", _change_line(c)) for c in e.changes]
    lines += [(0, "~", f"template {_change_line(c)}") for c in sd.template]
    return lines


# ---------------------------------------------------------------- text

def _table(head: list[str], rows: list[list[str]], paint: Callable[[str, str], str]) -> list[str]:
    rows = [[short(cell, 70) for cell in r] for r in rows]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    out = ["  " + "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    for r in rows:
        out.append(paint(r[0], "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()))
    return out


def _export_lines(report: Report) -> list[str]:
    return [f"{e.stack} output {e.output}: export {e.export} "
            + (f"renamed to {e.new_export}" if e.action == "renamed" else "removed")
            + " (a stack that imports it breaks; CloudFormation refuses the update while one does)"
            for e in report.exports]


def _drift_lines(report: Report) -> list[str]:
    if report.drift is None:
        return []
    if not report.drift:
        return ["Drift: none (every deployed resource matches its template)"]
    reverted = sum(d.reverted for d in report.drift)
    out = [f"Drift: {len(report.drift)} drifted propert(ies), {reverted} reverted by this deploy"]
    for d in report.drift:
        what = f"{d.property}: expected {short(d.expected, 60)}, actual {short(d.actual, 60)}" if d.property \
            else d.status.lower()
        fate = "this deploy REVERTS it" if d.reverted else "kept until the resource is next updated"
        out.append(f"{d.stack} {d.logical_id} ({d.type}) {what} - {fate}")
    return out


def _consequence_lines(report: Report) -> list[tuple[str, str]]:
    """(sign, line) for the blast radius: consequential replacements first, then updates."""
    if not report.consequences:
        return []
    n = len(report.consequential_replacements)
    out = [("h", f"Blast radius: {n} resource(s) replaced and {len(report.consequences) - n} updated "
                 "as a consequence (new physical ids flow through Ref, GetAtt, outputs and parameters)")]
    out += [("!" if c.effect != "updated" else "~", f"{c.stack}: {c.chain_text}") for c in report.consequences]
    return out


def to_text(report: Report, colour: bool = False) -> str:
    def paint(sign: str, text: str) -> str:
        return f"\033[{COLOURS[sign]}m{text}\033[0m" if colour and sign in COLOURS else text

    out = [paint("h", f"Review diff: {report.base} -> {report.target}"), _headline(report)]
    if report.data_loss:
        out.append(paint("!", f"DATA-LOSS RISK: {len(report.data_loss)} stateful resource(s) replaced, removed "
                              "or interrupted"))
        for r in report.data_loss:
            kept = f" (old copy kept: {r.retained})" if r.retained else ""
            out.append(paint("!", f"  !! {r.stack} {r.logical_id} ({r.type}) {r.risk}: {r.reason}{kept}"))
    if report.exports:
        out.append(paint("!", f"EXPORTS BROKEN: {len(report.exports)}"))
        out += [paint("!", f"  !! {line}") for line in _export_lines(report)]
    drift = _drift_lines(report)
    out += drift[:1] + [f"  {'!!' if 'REVERTS' in line else '  '} {line}" for line in drift[1:]]
    out.append(f"Security: {report.verdict}")
    if report.cost is not None:
        out += [cost_review.heading(report.cost)] + [f"  {c.env}: {cost_review.line(c)}" for c in report.cost]
    for i, (sign, line) in enumerate(_consequence_lines(report)):
        out += ([""] if i == 0 else []) + [paint(sign, line if sign == "h" else f"  {sign} {line}")]
    env = None
    for sd in report.stacks:
        if sd.env != env:
            env = sd.env
            out += ["", paint("h", f"== {env} ==")]
        if sd.status == "unchanged":
            out.append(f"{sd.file}: unchanged")
            continue
        out.append(paint("h", f"{sd.file}: {sd.status}"))
        for indent, sign, text in _stack_lines(sd):
            out.append(paint(sign, "  " * (indent + 1) + (f"{sign} " if sign else "") + text))
    if report.iam:
        out += ["", paint("h", f"IAM statement changes ({len(report.iam)})")]
        out += _table(IAM_HEAD, _iam_rows(report.iam), paint)
    if report.network:
        out += ["", paint("h", f"Security-group rule changes ({len(report.network)})")]
        out += _table(SG_HEAD, _sg_rows(report.network), paint)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- Markdown

def _md_cell(text: str) -> str:
    return short(text).replace("|", "\\|").replace("\n", " ") or " "


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_md_cell(c) if i else f"`{c}`" for i, c in enumerate(r)) + " |" for r in rows]
    return out


def to_markdown(report: Report) -> str:
    out = [f"### Review diff: `{report.base}` → `{report.target}`", "", _headline(report), ""]
    if report.data_loss:
        out.append(f"> [!CAUTION]\n> **Data-loss risk**: {len(report.data_loss)} stateful resource(s) "
                   "replaced or removed")
        for r in report.data_loss:
            kept = f" (old copy kept: {r.retained})" if r.retained else ""
            out.append(f"> - `{r.stack}` **{r.logical_id}** (`{r.type}`) {r.risk}: {r.reason}{kept}")
        out.append("")
    if report.exports:
        out.append(f"> [!WARNING]\n> **Exports broken**: {len(report.exports)}")
        out += [f"> - {line}" for line in _export_lines(report)] + [""]
    drift = _drift_lines(report)
    if drift:
        out += [f"**{drift[0]}**", ""] + [f"- {line}" for line in drift[1:]] + ([""] if drift[1:] else [])
    out += [f"**Security:** {report.verdict}", ""]
    if report.cost is not None:
        out += [f"**{cost_review.heading(report.cost)}**", ""]
        out += [f"- `{c.env}` {cost_review.line(c, code='`')}" for c in report.cost] + [""]
    blast = _consequence_lines(report)
    if blast:
        out += [f"#### {blast[0][1]}", "", "```diff"]
        out += [f"{'!' if sign == '!' else ' '} {line}" for sign, line in blast[1:]] + ["```", ""]
    unchanged = [sd.key for sd in report.stacks if sd.status == "unchanged"]
    for sd in report.stacks:
        if sd.status == "unchanged":
            continue
        out += [f"#### `{sd.key}` ({sd.status})", "", "```diff"]
        for indent, sign, text in _stack_lines(sd):
            # diff fences colour lines by their first character: keep + and - there, others indented.
            mark = sign if sign in ("+", "-", "!") else " "
            out.append(f"{mark}{'  ' * indent} {text}")
        out += ["```", ""]
    if unchanged:
        out += [f"Unchanged: {', '.join(f'`{k}`' for k in unchanged)}", ""]
    if report.iam:
        out += [f"#### IAM statement changes ({len(report.iam)})", "", *_md_table(IAM_HEAD, _iam_rows(report.iam))]
        out.append("")
    if report.network:
        out += [f"#### Security-group rule changes ({len(report.network)})", ""]
        out += [*_md_table(SG_HEAD, _sg_rows(report.network)), ""]
    return "\n".join(out)


def render(report: Report, fmt: str, colour: bool = False) -> str:
    if fmt == "json":
        return to_json(report)
    if fmt == "markdown":
        return to_markdown(report)
    return to_text(report, colour)
