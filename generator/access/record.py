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
    for name, concrete in sorted(symbols.items()):  # a key under a prefix the contract names ("outputs/v/1/")
        if concrete.endswith("/") and value.startswith(concrete):
            return f"${{{name}}}{value[len(concrete):]}"
    for name, concrete in sorted(symbols.items()):
        if ":stateMachine:" in concrete and value.startswith(execution_arn(concrete, "")):
            return f"${{execution of {name}}}"
    for name, concrete in sorted(symbols.items()):  # a transaction item: "<Kind> <table>"
        kind, _, rest = value.partition(" ")
        if rest == concrete:
            return f"{kind} ${{{name}}}"
    return value


def of_call(package: str, call: Any, symbols: Mapping[str, str]) -> dict:
    """The entry of a generator.cost.calls.Call."""
    return entry(package, call.invocation, call.service, call.operation, call.parameters, symbols, call.presigned,
                 call.missing)


def entry(package: str, handler: str, service: str, operation: str, parameters: Iterable[tuple[str, Any]],
          symbols: Mapping[str, str], presigned: bool = False, missing: bool = False) -> dict:
    """One recorded call: the function's package (generator/functions/<package>, or `processor`) and handler, the
    operation, its resource parameters as symbols; `presigned` when the function only signed a URL for its client to
    call; `missing` when S3 answered that the key is not there."""
    out: dict[str, Any] = {}
    for name, value in parameters:
        out[name] = [symbol(v, symbols) for v in value] if isinstance(value, tuple | list) else symbol(value, symbols)
    found = {"package": package, "handler": handler, "operation": f"{service}.{operation}",
             "parameters": dict(sorted(out.items()))}
    return {**found, **({"presigned": True} if presigned else {}), **({"missing": True} if missing else {})}


def only_when(entry_: dict, condition: Mapping[str, str]) -> dict:
    """The entry, made only where each symbol renders to its value (a call the handler makes for some resources
    only: `{"DeletionPolicy": "Delete"}`, `{"ResourceProperties.DeletionProtectionEnabled": "true"}`)."""
    return {**entry_, "only": dict(sorted(condition.items()))}


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
