"""State machine definitions compared state by state (nested Parallel branches and Map processors too)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from generator.diff.values import Change, diff_values, path_text

STATE_MACHINE_TYPE = "AWS::StepFunctions::StateMachine"


@dataclass
class StateChange:
    name: str
    fields: list[str]  # top-level fields that changed: Retry, Catch, Next, Parameters ...
    changes: list[Change]


@dataclass
class WorkflowDiff:
    added: list[tuple[str, str]] = field(default_factory=list)  # (state, Type)
    removed: list[tuple[str, str]] = field(default_factory=list)
    changed: list[StateChange] = field(default_factory=list)
    top: list[Change] = field(default_factory=list)  # StartAt, TimeoutSeconds, Comment ...

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.top)


def _placeholder(v: Any) -> str:
    """A quote-free stand-in for an intrinsic inside a joined definition string (keeps it valid JSON)."""
    if isinstance(v, dict) and "Ref" in v:
        return f"${{{v['Ref']}}}"
    if isinstance(v, dict) and "Fn::GetAtt" in v:
        att = v["Fn::GetAtt"]
        return f"${{{'.'.join(att) if isinstance(att, list) else att}}}"
    return "${intrinsic}"


def definition_of(props: dict) -> dict | None:
    """The state machine definition as an object: Definition, or DefinitionString (plain, Fn::Sub, Fn::Join)."""
    if isinstance(props.get("Definition"), dict):
        return props["Definition"]
    text = props.get("DefinitionString")
    if isinstance(text, dict) and "Fn::Sub" in text:
        sub = text["Fn::Sub"]
        text = sub[0] if isinstance(sub, list) else sub
    elif isinstance(text, dict) and "Fn::Join" in text:
        sep, parts = text["Fn::Join"]
        text = sep.join(p if isinstance(p, str) else _placeholder(p) for p in parts) if isinstance(parts, list) \
            else None
    if not isinstance(text, str):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def flatten_states(defn: dict, prefix: str = "") -> dict[str, dict]:
    """Every state by name, nested Parallel branches and Map processors as `Outer/Branches[0]/Inner`."""
    out: dict[str, dict] = {}
    for name, state in (defn.get("States") or {}).items():
        if not isinstance(state, dict):
            out[prefix + name] = {"(value)": state}
            continue
        own = dict(state)
        if isinstance(state.get("Branches"), list):
            own["Branches"] = [{k: v for k, v in b.items() if k != "States"} for b in state["Branches"]]
            for i, branch in enumerate(state["Branches"]):
                out.update(flatten_states(branch, f"{prefix}{name}/Branches[{i}]/"))
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                own[key] = {k: v for k, v in state[key].items() if k != "States"}
                out.update(flatten_states(state[key], f"{prefix}{name}/{key}/"))
        out[prefix + name] = own
    return out


def diff_definitions(old: dict, new: dict) -> WorkflowDiff:
    wd = WorkflowDiff()
    wd.top = [Change(path_text(p), a, b) for p, a, b in diff_values(
        {k: v for k, v in old.items() if k != "States"}, {k: v for k, v in new.items() if k != "States"})]
    olds, news = flatten_states(old), flatten_states(new)
    wd.removed = [(n, str(olds[n].get("Type", "?"))) for n in sorted(olds.keys() - news.keys())]
    wd.added = [(n, str(news[n].get("Type", "?"))) for n in sorted(news.keys() - olds.keys())]
    for name in sorted(olds.keys() & news.keys()):
        diffs = diff_values(olds[name], news[name])
        if diffs:
            wd.changed.append(StateChange(
                name, sorted({str(p[0]) for p, _, _ in diffs if p}),
                [Change(path_text(p), a, b) for p, a, b in diffs]))
    return wd


def without_definition(props: dict) -> dict:
    """Properties without the definition itself (compared state by state), keeping its Fn::Sub variables."""
    out = {k: v for k, v in props.items() if k not in ("Definition", "DefinitionString")}
    sub = props.get("DefinitionString")
    if isinstance(sub, dict) and isinstance(sub.get("Fn::Sub"), list) and len(sub["Fn::Sub"]) > 1:
        out["DefinitionString"] = {"Fn::Sub": [None, sub["Fn::Sub"][1]]}  # keep the variables
    return out

