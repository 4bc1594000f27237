"""recorded_calls.json from the calls the tests record (generator.cost.calls.Recorder, a botocore event hook).

A recorded value is turned into the symbol of the contract it came from (see generator.access): the value of an
environment variable becomes `${NAME}`, an execution of the state machine a variable names `${execution of NAME}`,
a custom resource property `${ResourceProperties.Name}`. A value no symbol explains stays literal, and
tests/test_access_proof.py refuses it: the proof can only resolve what the templates hand the function.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from generator.access import RECORD_COMMAND
from generator.access.semantics import execution_arn


def symbol(value: str, symbols: Mapping[str, str]) -> str:
    for name, concrete in sorted(symbols.items()):
        if value == concrete:
            return f"${{{name}}}"
    for name, concrete in sorted(symbols.items()):
        if ":stateMachine:" in concrete and value.startswith(execution_arn(concrete, "")):
            return f"${{execution of {name}}}"
    for name, concrete in sorted(symbols.items()):  # a transaction item: "<Kind> <table>"
        kind, _, rest = value.partition(" ")
        if rest == concrete:
            return f"{kind} ${{{name}}}"
    return value


def entry(package: str, handler: str, service: str, operation: str, parameters: Iterable[tuple[str, Any]],
          symbols: Mapping[str, str], presigned: bool = False) -> dict:
    """One recorded call: the function's package (generator/functions/<package>) and handler, the operation, its
    resource parameters as symbols; `presigned` when the function only signed a URL for its client to call."""
    out: dict[str, Any] = {}
    for name, value in parameters:
        out[name] = [symbol(v, symbols) for v in value] if isinstance(value, tuple | list) else symbol(value, symbols)
    found = {"package": package, "handler": handler, "operation": f"{service}.{operation}",
             "parameters": dict(sorted(out.items()))}
    return {**found, "presigned": True} if presigned else found


def render(entries: Iterable[dict]) -> str:
    unique = {json.dumps(e, sort_keys=True): e for e in entries}
    return json.dumps({
        "comment": "The AWS calls of the functions as tests/test_access_proof.py records them (botocore's "
                   "provide-client-params event); read by the access proof (generator/access, rule VP701). Do not "
                   f"edit: {RECORD_COMMAND} rewrites it.",
        "calls": [unique[k] for k in sorted(unique)]}, indent=2, sort_keys=True) + "\n"


def values(entry_: dict) -> list[str]:
    """Every recorded value of an entry's parameters."""
    return [x for v in entry_["parameters"].values() for x in (v if isinstance(v, list) else [v])]
