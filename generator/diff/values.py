"""Generic value diff: the differing leaves of two JSON values, each with a readable JSON path."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# List elements are matched by the first of these keys that names every element uniquely (Tags by Key ...).
IDENTITY_KEYS = ("Key", "Name", "Sid", "PolicyName", "ContainerName", "Id")


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Change:
    """One changed value: `path` is a JSON path from the compared object (e.g. Properties.Tags[Key=Env].Value)."""
    path: str
    old: Any = MISSING
    new: Any = MISSING
    replacement: str | None = None  # REPLACED or MAY_BE_REPLACED when the schema says so


def is_intrinsic(v: Any) -> bool:
    """A one-key {"Ref": ...}, {"Condition": ...} or {"Fn::...": ...}: not an ordinary object."""
    if not (isinstance(v, dict) and len(v) == 1):
        return False
    key = next(iter(v))
    return key in ("Ref", "Condition") or key.startswith("Fn::")


def _identity_key(old: list, new: list) -> str | None:
    items = old + new
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in IDENTITY_KEYS:
        if all(isinstance(i.get(key), str) for i in items) and all(
                len({i[key] for i in side}) == len(side) for side in (old, new)):
            return key
    return None


def diff_values(old: Any, new: Any, path: tuple = ()) -> list[tuple[tuple, Any, Any]]:
    """(path segments, old, new) for every differing leaf; a segment is a key, an index or (key, value)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict) and not (
            (is_intrinsic(old) or is_intrinsic(new)) and old.keys() != new.keys()):
        out = []
        for k in sorted(old.keys() | new.keys()):
            out += diff_values(old.get(k, MISSING), new.get(k, MISSING), (*path, k))
        return out
    if isinstance(old, list) and isinstance(new, list):
        key = _identity_key(old, new)
        if key:
            olds, news = {i[key]: i for i in old}, {i[key]: i for i in new}
            out = []
            for name in [i[key] for i in old] + [i[key] for i in new if i[key] not in olds]:
                out += diff_values(olds.get(name, MISSING), news.get(name, MISSING), (*path, (key, name)))
            return out
        if len(old) == len(new):
            out = []
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                out += diff_values(a, b, (*path, i))
            return out
    return [(path, old, new)]


def path_text(path: tuple) -> str:
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif isinstance(seg, tuple):
            out += f"[{seg[0]}={seg[1]}]"
        else:
            out += f".{seg}" if out else str(seg)
    return out or "(root)"


def compact(v: Any) -> str:
    if v is MISSING:
        return "(absent)"
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def ref_name(v: Any) -> str:
    """A short, readable name for a value that may be an intrinsic (Ref X -> X, GetAtt X.Y -> X.Y)."""
    if isinstance(v, dict) and len(v) == 1:
        (k, arg), = v.items()
        if k == "Ref":
            return str(arg)
        if k == "Fn::GetAtt":
            return ".".join(arg) if isinstance(arg, list) else str(arg)
        if k == "Fn::Sub" and isinstance(arg, str):
            return arg
        if k == "Fn::Sub" and isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict):
            text = arg[0]  # inline the variables so the value stays readable and complete
            for name, value in sorted(arg[1].items()):
                text = text.replace(f"${{{name}}}", ref_name(value))
            return text
        if k == "Fn::ImportValue":
            return f"import:{ref_name(arg)}"
    return compact(v)


def as_list(v: Any) -> list:
    """A value IAM and EC2 accept as one item or a list, as a list."""
    return v if isinstance(v, list) else [] if v is None or v is MISSING else [v]

