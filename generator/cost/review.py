"""The cost of a template change, for `python -m generator diff`: one line per environment,
`cost: +$X/month fixed, +$Y per video`, with the resources that move it.

Both sides are priced with today's snapshot and the default usage (generator/cost/model.py), so the difference
is the change's alone. A side that cannot be priced (a resource type or instance class without a price) gives
the environment an `error` instead of figures: the review still prints, and says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator import config
from generator.cost import calls, model, prices
from generator.errors import PipelineError

MOVERS_SHOWN = 5
MONTHLY_CENT = 0.005  # a resource moving the month by less is not named
PER_VIDEO_SHOWN = 0.00005


@dataclass(frozen=True)
class Mover:
    resource: str  # tier/LogicalId
    fixed_usd: float  # change a month
    per_video_usd: float


@dataclass(frozen=True)
class CostChange:
    env: str
    fixed_usd: float = 0.0  # change of the fixed monthly cost
    per_video_usd: float = 0.0
    old_fixed_usd: float = 0.0
    new_fixed_usd: float = 0.0
    movers: tuple[Mover, ...] = ()
    error: str = ""
    snapshot_date: str = ""


def _by_env(files: dict[str, dict]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for key, template in files.items():
        env, _, file = key.partition("/")
        out.setdefault(env, {})[file.removesuffix(".json")] = template
    return out


def _delta(old: dict[str, float], new: dict[str, float]) -> dict[str, float]:
    return {k: new.get(k, 0.0) - old.get(k, 0.0) for k in old.keys() | new.keys()}


def cost_changes(old: dict[str, dict], new: dict[str, dict]) -> list[CostChange]:
    """Per environment on either side (`<env>/<file>` -> template), in registry order: what the change costs."""
    old_envs, new_envs = _by_env(old), _by_env(new)
    envs = [e for e in config.ENVIRONMENTS if e in old_envs or e in new_envs]
    try:
        snapshot, job_calls = prices.load(), calls.load()
    except PipelineError as e:
        return [CostChange(env, error=str(e)) for env in envs]
    usage = model.Usage()

    def priced(env: str, tiers: dict[str, dict] | None) -> model.Estimate | None:
        if not tiers:
            return None
        return model.estimate(env, config.get(env).region, tiers, usage, snapshot, job_calls)

    out = []
    for env in envs:
        try:
            before, after = priced(env, old_envs.get(env)), priced(env, new_envs.get(env))
        except PipelineError as e:
            out.append(CostChange(env, error=str(e), snapshot_date=snapshot.date))
            continue
        fixed = _delta(before.by_resource(before.fixed) if before else {},
                       after.by_resource(after.fixed) if after else {})
        video = _delta(before.by_resource(before.per_video) if before else {},
                       after.by_resource(after.per_video) if after else {})
        movers = [Mover(r, fixed.get(r, 0.0), video.get(r, 0.0)) for r in sorted(fixed.keys() | video.keys())]
        movers = [m for m in movers if abs(m.fixed_usd) >= MONTHLY_CENT or abs(m.per_video_usd) >= PER_VIDEO_SHOWN]
        movers.sort(key=lambda m: (-abs(m.fixed_usd), -abs(m.per_video_usd), m.resource))
        old_fixed, new_fixed = (before.fixed_usd if before else 0.0), (after.fixed_usd if after else 0.0)
        out.append(CostChange(env, new_fixed - old_fixed,
                              (after.per_video_usd if after else 0.0) - (before.per_video_usd if before else 0.0),
                              old_fixed, new_fixed, tuple(movers), snapshot_date=snapshot.date))
    return out


def signed(usd: float, places: int) -> str:
    rounded = round(usd, places)
    return f"{'-' if rounded < 0 else '+'}${abs(rounded):,.{places}f}"


def _mover_text(m: Mover) -> str:
    parts = ([f"{signed(m.fixed_usd, 2)}/month"] if abs(m.fixed_usd) >= MONTHLY_CENT else []) + \
        ([f"{signed(m.per_video_usd, 4)} per video"] if abs(m.per_video_usd) >= PER_VIDEO_SHOWN else [])
    return f"{m.resource} {', '.join(parts)}"


def line(change: CostChange, code: str = "") -> str:
    """`cost: +$X/month fixed, +$Y per video` and what moves it; `code` wraps resource names (Markdown: "`")."""
    if change.error:
        return f"cost: not priced ({change.error})"
    text = f"cost: {signed(change.fixed_usd, 2)}/month fixed, {signed(change.per_video_usd, 4)} per video"
    if change.movers:
        shown = [f"{code}{_mover_text(m).replace(' ', code + ' ', 1)}" if code else _mover_text(m)
                 for m in change.movers[:MOVERS_SHOWN]]
        more = len(change.movers) - MOVERS_SHOWN
        text += " (" + "; ".join(shown) + (f"; {more} more" if more > 0 else "") + ")"
    return text


def heading(changes: list[CostChange]) -> str:
    dates = sorted({c.snapshot_date for c in changes if c.snapshot_date})
    when = f"prices of {dates[0]}" if dates else "no prices"
    return f"Cost ({when}, default usage; `python -m generator cost` shows the figures and assumptions)"


def to_json(changes: list[CostChange]) -> list[dict]:
    return [{"env": c.env, "fixed_monthly_usd_change": round(c.fixed_usd, 6),
             "per_video_usd_change": round(c.per_video_usd, 6), "old_fixed_monthly_usd": round(c.old_fixed_usd, 6),
             "new_fixed_monthly_usd": round(c.new_fixed_usd, 6), "snapshot_date": c.snapshot_date,
             "error": c.error or None, "line": line(c),
             "resources": [{"resource": m.resource, "fixed_monthly_usd_change": round(m.fixed_usd, 6),
                            "per_video_usd_change": round(m.per_video_usd, 6)} for m in c.movers]}
            for c in changes]


def above(changes: list[CostChange], threshold_usd: float) -> list[str]:
    """The environments whose fixed monthly cost rises by more than `threshold_usd` (for --fail-on cost>USD);
    one that could not be priced fails the gate too (its cost is unknown)."""
    return [f"{c.env} {signed(c.fixed_usd, 2)}/month" if not c.error else f"{c.env} not priced"
            for c in changes if c.error or c.fixed_usd > threshold_usd]
