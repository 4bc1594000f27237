"""The tiers, in the order the parent creates them: every tier comes after the tiers it consumes.

An explicit registry rather than discovery: adding a tier is one line here, and the order is visible.
Each tier module declares CONSUMES and PRODUCES (contracts) and `build(cfg) -> Template`; its entry here
adds the logical ID of its nested stack in main.json (stable: renaming it replaces the stack).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from troposphere import Template

from generator import contracts
from generator.config import EnvConfig
from generator.errors import WiringError
from generator.tiers import (
    api,
    cache,
    compute,
    jobs,
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


def tier(name: str, title: str, module: ModuleType) -> Tier:
    return Tier(name, title, module.build, module.CONSUMES, module.PRODUCES)


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


TIERS = check_tiers((
    tier("network", "NetworkStack", network),
    tier("storage", "StorageStack", storage),
    tier("schema", "SchemaStack", schema),
    tier("cache", "CacheStack", cache),
    tier("compute", "ComputeStack", compute),
    tier("notification", "NotificationStack", notification),
    tier("workflow", "WorkflowStack", workflow),
    tier("jobs", "JobsStack", jobs),
    tier("api", "ApiStack", api),
    tier("operations", "OperationsStack", operations),
))


def title(name: str) -> str:
    """The nested stack's logical ID of the tier called `name`."""
    for t in TIERS:
        if t.name == name:
            return t.title
    raise WiringError(f"no tier {name!r} in generator/tiers/__init__.py; known: {', '.join(t.name for t in TIERS)}")
