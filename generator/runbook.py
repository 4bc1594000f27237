"""The runbook table (docs/operations.md): one row per alarm the tiers declare, in registry order.

Rendered from the same AlarmSpecs the operations tier builds, so a row cannot drift from its alarm; every
alarm's description names its row (`alarms.runbook_key`). docs/operations.md holds the output between
`<!-- runbook:begin -->` and `<!-- runbook:end -->`, checked by tests/test_operations.py.
"""

from __future__ import annotations

from collections.abc import Iterable

from generator import tiers
from generator.alarms import COMPARISONS, GIB, MIB, MISSING, AlarmSpec, runbook_key

HEADER = ("| alarm (`<project>-<env>-…`) | metric | fires when | missing data | what it means | first check "
          "| recover |\n|---|---|---|---|---|---|---|\n")


def threshold_text(spec: AlarmSpec) -> str:
    op = COMPARISONS[spec.comparison]
    if isinstance(spec.threshold, str):
        unit = {GIB: " GiB", MIB: " MiB"}.get(spec.scale, "")
        return f"{op} `{spec.threshold}`{unit}"
    return f"{op} {spec.threshold:g}" + (" ms" if spec.metric == "Latency" else "")


def row(spec: AlarmSpec) -> str:
    span = "a" if spec.periods == 1 else f"{spec.periods} consecutive"
    length = f"{spec.period // 60}-minute" if spec.period < 86400 else f"{spec.period // 86400}-day"
    fires = (f"{spec.statistic} {threshold_text(spec)} in {span} {length} period"
             + ("s" if spec.periods > 1 else ""))
    return (f"| `{runbook_key(spec)}` ({spec.tier}) | {spec.namespace} {spec.metric} | {fires} | "
            f"`{spec.missing}`: {MISSING[spec.missing]} | {spec.means} | {spec.check} | {spec.recover} |")


def markdown(specs: Iterable[AlarmSpec] = tiers.ALARMS) -> str:
    """The table: a header and one row per alarm (by default every tier's, as the registry collects them)."""
    return HEADER + "".join(f"{row(spec)}\n" for spec in specs)
