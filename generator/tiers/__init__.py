"""The tiers, in the order the parent creates them: every tier comes after the tiers it consumes.

An explicit registry rather than discovery: adding a tier is one line here, and the order is visible.
Each tier module declares CONSUMES and PRODUCES (contracts), optionally ALARMS (its failure modes, see
generator/alarms.py), and `build(cfg) -> Template`; its entry here adds the logical ID of its nested stack in
main.json (stable: renaming it replaces the stack). The operations tier comes last: it is built from the
alarms of every tier before it (`ALARMS`, collected here in registry order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from troposphere import Template

from generator import alarms, contracts
from generator.alarms import AlarmSpec
from generator.config import EnvConfig
from generator.errors import WiringError
from generator.tiers import (
    api,
    cache,
    compute,
    jobs,
    media,
    network,
    notification,
    operations,
    schema,
    storage,
    workflow,
)


@dataclass(frozen=True)
class Tier:
    name: str  # the child template is <name>.json
    title: str  # logical ID of its AWS::CloudFormation::Stack in main.json
    build: Callable[[EnvConfig], Template]
    consumes: tuple[contracts.Contract, ...]
    produces: tuple[contracts.Contract, ...]
    alarms: tuple[AlarmSpec, ...] = ()  # its failure modes: the operations tier builds them


def tier(name: str, title: str, module: ModuleType) -> Tier:
    return Tier(name, title, module.build, module.CONSUMES, module.PRODUCES, getattr(module, "ALARMS", ()))


def collect_alarms(watched: tuple[Tier, ...]) -> tuple[AlarmSpec, ...]:
    """Every alarm the tiers declare, in registry order, each marked with its tier."""
    return alarms.collect((t.name, t.alarms) for t in watched)


def operations_tier(name: str, title: str, watched: tuple[Tier, ...]) -> Tier:
    """The operations tier, built with the alarms of the tiers before it; it consumes what they watch. The
    declarations are checked when it is built, so a wrong one is a one-line error of `python -m generator`."""
    specs = collect_alarms(watched)
    produced = {t.name: t.produces for t in watched}

    def build(cfg: EnvConfig) -> Template:
        alarms.check(specs, produced)
        return operations.build(cfg, specs)

    return Tier(name, title, build, operations.consumes(specs), operations.PRODUCES)


def check_tiers(tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
    """Names and titles unique, titles usable as logical IDs (letters and digits only)."""
    for attribute in ("name", "title"):
        values = [getattr(t, attribute) for t in tiers]
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise WiringError(f"tier {attribute} {', '.join(duplicates)} registered twice in "
                              "generator/tiers/__init__.py")
    for t in tiers:
        if not (t.title.isascii() and t.title.isalnum()):
            raise WiringError(f"tier {t.name}: title {t.title!r} is not a logical ID; accepted: letters and digits "
                              "such as VideoUploadsStack")
    return tiers


WATCHED = (
    tier("network", "NetworkStack", network),
    tier("media", "MediaStack", media),
    tier("storage", "StorageStack", storage),
    tier("schema", "SchemaStack", schema),
    tier("cache", "CacheStack", cache),
    tier("compute", "ComputeStack", compute),
    tier("notification", "NotificationStack", notification),
    tier("workflow", "WorkflowStack", workflow),
    tier("jobs", "JobsStack", jobs),
    tier("api", "ApiStack", api),
)
TIERS = check_tiers((*WATCHED, operations_tier("operations", "OperationsStack", WATCHED)))
ALARMS = collect_alarms(WATCHED)  # what the operations tier builds and the runbook shows


def title(name: str) -> str:
    """The nested stack's logical ID of the tier called `name`."""
    for t in TIERS:
        if t.name == name:
            return t.title
    raise WiringError(f"no tier {name!r} in generator/tiers/__init__.py; known: {', '.join(t.name for t in TIERS)}")
