"""How an Estimate is shown: text (the command), JSON, and the generated markdown cost section for the docs.

    cost_section() -> str      the docs' cost block: each environment's monthly figure and cost per video,
                               computed from the committed templates and the snapshot, with the snapshot's date
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from generator import encode_speed
from generator.cost.model import Estimate, Line, Usage, usage_assumptions
from generator.cost.prices import Snapshot

SHOWN_PER_VIDEO = 0.00005  # per-video charges below this are summed into one line (JSON lists each)


def money(usd: float, places: int = 2) -> str:
    return f"${usd:,.{places}f}"


def per_video_money(usd: float) -> str:
    return money(usd, 4)


def number(x: float) -> str:
    return f"{x:,.0f}" if x == int(x) else f"{x:,.4g}"


def snapshot_note(snapshot: Snapshot) -> str:
    statuses = {p.status.split(",")[0] for p in snapshot.prices.values()}
    verified = "unverified: transcribed from AWS's pricing pages" if statuses == {"transcribed"} else \
        "read from the AWS Price List" if statuses == {"read"} else "partly read from the AWS Price List, partly " \
        "transcribed (unverified)"
    return f"prices of {snapshot.date} ({verified})"


def usage_line(usage: Usage) -> str:
    task_time = (f"{number(usage.minutes_per_video)} minutes of task time" if usage.minutes_per_video is not None
                 else f"{number(encode_speed.TYPICAL_SOURCE_MINUTES)} minutes of source at the measured encode speed")
    return f"{number(usage.videos_per_month)} videos a month, {task_time} and {number(usage.gb_per_video)} GB of " \
        "outputs each"


def unit_price(usd: float, unit: str) -> str:
    """A price per unit as a reader takes it in: per million units when one costs under a tenth of a cent."""
    return f"${usd * 1e6:.4g} per million {unit}s" if usd < 0.001 else f"${usd:.6g} per {unit}"


def _line_text(line: Line, money_of=money) -> str:
    return (f"{line.resource} {line.item}: {number(line.quantity)} x {unit_price(line.unit_usd, line.unit)}"
            f" = {money_of(line.usd)}")


def text(estimates: Sequence[Estimate], snapshot: Snapshot) -> str:
    out = []
    for e in estimates:
        out.append(f"{e.env} ({e.region}), {snapshot_note(snapshot)}")
        out.append(f"  fixed: {money(e.fixed_usd)} a month")
        for tier, usd in e.by_tier().items():
            out.append(f"    {tier:<14}{money(usd):>12}")
            out += [f"      {_line_text(line)}" for line in e.fixed if line.tier == tier and line.usd >= 0.005]
        small = [line for line in e.fixed if line.usd < 0.005]
        if small:
            out.append(f"    ({len(small)} charge(s) under half a cent not shown; --format json lists all)")
        out.append(f"  per video: {per_video_money(e.per_video_usd)} (a video that succeeds)")
        shown = sorted(((usd, r) for r, usd in e.by_resource(e.per_video).items()), key=lambda x: (-x[0], x[1]))
        for usd, resource in (x for x in shown if x[0] >= SHOWN_PER_VIDEO):
            lines = [line for line in e.per_video if f"{line.tier}/{line.resource}" == resource]
            out.append(f"    {resource:<36}{per_video_money(usd):>12}")
            out += [f"      {_line_text(line, per_video_money)}" for line in lines if line.usd >= SHOWN_PER_VIDEO]
        rest = [x for x in shown if x[0] < SHOWN_PER_VIDEO]
        if rest:
            out.append(f"    {len(rest)} more under {per_video_money(SHOWN_PER_VIDEO)} each, together "
                       f"{per_video_money(sum(usd for usd, _ in rest))} (requests, KMS, traces: --format json)")
        if e.success:
            out.append(f"    state transitions: {e.success.transitions} on the success path"
                       + (f", {e.failure.transitions} on the failure path" if e.failure else "")
                       + " (counted from the state machine's definition)")
        if e.failure:
            out.append(f"  a failed video: {per_video_money(e.per_failed_video_usd)} (the task fails "
                       f"{e.failure.task_runs} times, the notification path runs)")
        out.append(f"  at {usage_line(e.usage)}: {money(e.monthly_usd)} a month")
        out.append("")
    out.append("Assumptions (what neither the templates nor the recorded job calls hold):")
    usage = estimates[0].usage if estimates else Usage()
    out += [f"  {a.name}: {number(a.value)} {a.unit} - {a.why}" for a in usage_assumptions(usage)]
    out.append("  requests per job: generator/cost/job_calls.json, recorded from job control's calls in "
               "tests/test_cost_calls.py")
    out.append("  free tiers, taxes, Savings Plans and reserved instances are not counted; a month is "
               f"{number(snapshot.hours_per_month)} hours")
    out.append(f"  {snapshot_note(snapshot)}: generator/cost/prices.json names each price's page; refresh with "
               "`python -m generator cost --refresh-prices`")
    return "\n".join(out) + "\n"


def _line_json(line: Line) -> dict:
    return {"tier": line.tier, "resource": line.resource, "type": line.type, "item": line.item,
            "quantity": round(line.quantity, 9), "unit": line.unit, "price": line.price_key,
            "unit_usd": line.unit_usd, "usd": round(line.usd, 9)}


def estimate_json(e: Estimate) -> dict:
    return {
        "env": e.env, "region": e.region,
        "fixed_monthly_usd": round(e.fixed_usd, 6),
        "per_video_usd": round(e.per_video_usd, 6),
        "per_failed_video_usd": round(e.per_failed_video_usd, 6),
        "monthly_usd_at_usage": round(e.monthly_usd, 6),
        "fixed_by_tier": {k: round(v, 6) for k, v in e.by_tier().items()},
        "fixed_by_resource": {k: round(v, 6) for k, v in e.by_resource(e.fixed).items()},
        "per_video_by_resource": {k: round(v, 9) for k, v in e.by_resource(e.per_video).items()},
        "state_transitions": {"success": e.success.transitions if e.success else 0,
                              "failure": e.failure.transitions if e.failure else 0},
        "fixed": [_line_json(line) for line in e.fixed],
        "per_video": [_line_json(line) for line in e.per_video],
        "per_failed_video": [_line_json(line) for line in e.per_failed_video],
    }


def to_json(estimates: Sequence[Estimate], snapshot: Snapshot, usage: Usage) -> str:
    body = {
        "snapshot": {"date": snapshot.date, "note": snapshot_note(snapshot)},
        "usage": {"videos_per_month": usage.videos_per_month, "minutes_per_video": usage.minutes_per_video,
                  "gb_per_video": usage.gb_per_video},
        "assumptions": [{"name": a.name, "value": a.value, "unit": a.unit, "why": a.why}
                        for a in usage_assumptions(usage)],
        "environments": [estimate_json(e) for e in estimates],
    }
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


def markdown(estimates: Sequence[Estimate], snapshot: Snapshot) -> str:
    """The cost section's block: one row per environment, the snapshot's date, the usage it assumes."""
    usage = estimates[0].usage if estimates else Usage()
    out = [f"Cost on paper, {snapshot_note(snapshot)}; at {usage_line(usage)} "
           "(`python -m generator cost` prints every charge and assumption):", "",
           "| environment | fixed a month | per video | a failed video | a month at that usage |",
           "|---|---:|---:|---:|---:|"]
    out += [f"| {e.env} | {money(e.fixed_usd)} | {per_video_money(e.per_video_usd)} | "
            f"{per_video_money(e.per_failed_video_usd)} | {money(e.monthly_usd)} |" for e in estimates]
    return "\n".join(out) + "\n"


def cost_section() -> str:
    """The generated cost block for the docs, from the committed templates and price snapshot (default usage)."""
    from generator.cost import cli

    return cli.run_estimates(cli.parse_args(["--format", "markdown"]))
