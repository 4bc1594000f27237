"""Alarms as data: a tier declares its failure modes, the operations tier builds them, the runbook renders them.

A tier lists its alarms as `ALARMS` beside CONSUMES and PRODUCES: one AlarmSpec per failure mode (metric,
threshold, missing-data handling, runbook text), on resources the tier produces. The registry
(generator/tiers/__init__.py) collects them in tier order with `collect`; the operations tier `check`s them,
builds one CloudWatch alarm per spec (one per cache node where the metric is a node's) and consumes the
contracts they watch; generator/runbook.py renders one runbook row per spec. This module imports no tier.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import NamedTuple

from troposphere import Ref, Sub

from generator.config import EnvConfig
from generator.contracts import Contract
from generator.errors import WiringError

PERIOD = 300  # seconds: every alarm reads 5-minute periods
GIB, MIB = 2 ** 30, 2 ** 20
GT, LT = "GreaterThanThreshold", "LessThanThreshold"
COMPARISONS = {GT: ">", LT: "<"}  # the runbook's symbol for each operator an alarm may use
# CloudWatch's statistics, or an extended (percentile) statistic:
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Statistics-definitions.html
STATISTIC = re.compile(r"^(SampleCount|Average|Sum|Minimum|Maximum|p\d{1,2}(\.\d+)?)$")

# What TreatMissingData means here, per value (the runbook says which alarm uses which, and why).
MISSING = {
    "notBreaching": "no data is no event: nothing ran, nothing failed",
    "breaching": "a source that stops reporting is treated as unhealthy (this alarm is its heartbeat)",
    "ignore": "keeps its state: silence is covered by the store's heartbeat alarm, no flapping",
}


@dataclass(frozen=True)
class AlarmSpec:
    title: str  # logical ID (a cache node's alarm gets the node in it: CacheNode001Memory...)
    name: str  # alarm name: <project>-<env>-<name>
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, Contract], ...]  # (dimension name, the contract its value is)
    statistic: str  # Sum, Average, Minimum, Maximum, or a percentile such as p99
    comparison: str  # GT or LT
    threshold: float | str  # a number, or the EnvConfig setting that gives it
    missing: str  # TreatMissingData: a key of MISSING
    means: str  # runbook: what it means
    check: str  # runbook: first check
    recover: str  # runbook: recover
    periods: int = 1  # evaluation periods, all of which must breach
    scale: int = 1  # multiplies a setting (GiB, MiB to bytes)
    per_cache_node: bool = False  # one alarm per member node of the replication group the dimension names
    fixed_dimensions: tuple[tuple[str, str], ...] = ()  # dimensions whose value is a constant (S3's StorageType)
    period: int = PERIOD  # seconds; S3 storage metrics are reported once a day (86400)
    tier: str = ""  # the tier that declares it: set by `collect`

    def threshold_for(self, cfg: EnvConfig) -> float:
        return getattr(cfg, self.threshold) * self.scale if isinstance(self.threshold, str) else self.threshold


def runbook_key(spec: AlarmSpec) -> str:
    """The alarm's runbook row: its name without the `<project>-<env>-` prefix (cache nodes as NNN)."""
    return spec.name.replace("cache", "cache-node-NNN", 1) if spec.per_cache_node else spec.name


def cache_node_ids(cfg: EnvConfig) -> list[str]:
    """The member clusters of a cluster-mode-disabled replication group: <group id>-001, -002, ..."""
    return [f"{n:03d}" for n in range(1, cfg.cache_node_count + 1)]


class Alarm(NamedTuple):
    title: str  # logical ID
    name: str  # alarm name suffix
    spec: AlarmSpec
    dimensions: dict  # dimension name -> value (a Ref or Sub of the consumed contract)


def expanded(cfg: EnvConfig, specs: Iterable[AlarmSpec]) -> list[Alarm]:
    """Every alarm of the environment: one per spec, or one per cache node for a node's metric."""
    found = []
    for spec in specs:
        if not spec.per_cache_node:
            found.append(Alarm(spec.title, spec.name, spec,
                               {**{name: Ref(contract.name) for name, contract in spec.dimensions},
                                **dict(spec.fixed_dimensions)}))
            continue
        for node in cache_node_ids(cfg):
            found.append(Alarm(spec.title.replace("Cache", f"CacheNode{node}", 1),
                               spec.name.replace("cache", f"cache-node-{node}", 1), spec,
                               {name: Sub(f"${{{contract.name}}}-{node}") for name, contract in spec.dimensions}))
    return found


def watched_contracts(specs: Iterable[AlarmSpec]) -> tuple[Contract, ...]:
    """The contracts the alarms' dimensions read, each once, in the order the alarms name them."""
    return tuple(dict.fromkeys(contract for spec in specs for _name, contract in spec.dimensions))


SETTINGS = frozenset(f.name for f in fields(EnvConfig))


def spec_problems(spec: AlarmSpec, produces: tuple[Contract, ...]) -> list[str]:
    """What is wrong with one collected alarm (produces: its tier's PRODUCES), each a sentence naming the fix."""
    where = f"tier {spec.tier}: alarm {spec.title}"
    problems = [f"{where} watches {contract.name}, which tier {spec.tier} does not produce (declare an alarm in the "
                "tier whose resource it watches)" for _name, contract in spec.dimensions if contract not in produces]
    if not spec.dimensions:
        problems.append(f"{where} has no dimensions: it would watch the whole account")
    if spec.missing not in MISSING:
        problems.append(f"{where}: missing data {spec.missing!r}; accepted: {', '.join(MISSING)}")
    if spec.comparison not in COMPARISONS:
        problems.append(f"{where}: comparison {spec.comparison!r}; accepted: {', '.join(COMPARISONS)}")
    if not STATISTIC.match(spec.statistic):
        problems.append(f"{where}: statistic {spec.statistic!r}; accepted: Sum, Average, Minimum, Maximum, "
                        "SampleCount or a percentile such as p99")
    if isinstance(spec.threshold, str) and spec.threshold not in SETTINGS:
        problems.append(f"{where}: threshold {spec.threshold!r} is no setting of EnvConfig (generator/config.py)")
    if spec.per_cache_node and not (spec.title.startswith("Cache") and spec.name.startswith("cache-")):
        problems.append(f"{where}: a per-node alarm's title starts with Cache and its name with cache- (the node "
                        "is inserted there)")
    if spec.period not in (10, 30) and spec.period % 60:
        problems.append(f"{where}: period {spec.period}; accepted: 10, 30 or a multiple of 60 seconds")
    if spec.periods < 1:
        problems.append(f"{where}: periods {spec.periods}; accepted: 1 or more")
    return problems


def collect(declared: Iterable[tuple[str, tuple[AlarmSpec, ...]]]) -> tuple[AlarmSpec, ...]:
    """Every tier's alarms, in the order given ((tier name, its ALARMS) per tier), each marked with its tier."""
    return tuple(replace(spec, tier=tier) for tier, specs in declared for spec in specs)


def check(specs: tuple[AlarmSpec, ...], produced: dict[str, tuple[Contract, ...]]) -> None:
    """A WiringError naming every collected alarm declared wrongly; produced: tier name -> its PRODUCES."""
    problems = [p for spec in specs for p in spec_problems(spec, produced.get(spec.tier, ()))]
    for attribute in ("title", "name"):
        declaring: dict[str, list[str]] = {}
        for spec in specs:
            declaring.setdefault(getattr(spec, attribute), []).append(spec.tier)
        problems += [f"alarm {attribute} {value} declared more than once (tiers {', '.join(tiers)})"
                     for value, tiers in sorted(declaring.items()) if len(tiers) > 1]
    if problems:
        raise WiringError("; ".join(problems))
