"""Capacity on paper: what an environment's max_concurrent_videos asks of the account, and which limit binds first.

    capacity(cfg, minutes) -> Capacity      pure: the settings (config.py) against the facts (aws_facts.py)
    render([Capacity, ...]) -> str          the table `python -m generator capacity` prints, sources last

"Full load" is every slot busy and the queue never empty: each video takes `minutes`, so videos start (and end)
at max_concurrent_videos / (60 x minutes) per second. Each limit is shown with what full load needs of it and how
many videos at once it would allow (at the same minutes per video); the one allowing the fewest binds first,
unless all allow more than max_concurrent_videos, which then binds itself (admission control queues the rest).
Filling every slot together (a full queue after an idle spell) is a burst: a bucket smaller than the slots
only delays the last starts (throttled calls are retried), so bursts are reported, not binding.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from generator import aws_facts, encode_speed
from generator.config import EnvConfig, shown
from generator.errors import ConfigError, InputError

MIN_MINUTES = 0.01
MAX_MINUTES = aws_facts.STANDARD_EXECUTION_MAX_MINUTES.value
MINUTES_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?|\.[0-9]+")
ADMISSION = "max_concurrent_videos"  # what binds when every other limit has room


@dataclass(frozen=True)
class Limit:
    """One limit against full load: `needed` and `limit` in `unit`; `allows`: videos at once it sustains."""

    name: str
    needed: float
    limit: float
    unit: str
    allows: int
    detail: str  # the limit's value as shown: its source setting or fact, its bucket
    burst: int | None = None  # bucket (burst) of a rate limit, when filling every slot at once matters
    refill: float | None = None


@dataclass(frozen=True)
class Capacity:
    env: str
    region: str
    minutes_per_video: float
    max_concurrent_videos: int
    capacity_type: str  # "On-Demand" or "Spot": the Fargate quota the tasks count against
    task_vcpu: float
    task_memory_gib: float
    max_source_minutes: int
    execution_timeout_minutes: int  # the longest source at the measured speed (encode_speed.py)
    vcpu_needed: float
    vcpu_quota: int  # assumed (config fargate_vcpu_quota)
    vcpu_quota_new_account: int
    vcpu_quota_code: str
    memory_needed_gib: float
    videos_per_hour: float
    longest_source_minutes_per_video: float  # the longest source accepted, at the measured speed
    videos_per_hour_longest: float  # every slot busy with the longest sources
    starts_per_second: float  # executions started, RunTask calls, task launches at full load
    db_instance_class: str
    db_connections_needed: int
    db_max_connections: int
    db_connections_alarm: int  # config db_max_connections: the operations alarm's threshold
    limits: tuple[Limit, ...]
    binding: str  # a Limit's name, or ADMISSION

    @property
    def next_limit(self) -> Limit:
        """The limit allowing the fewest videos at once (the binding one, unless ADMISSION binds)."""
        return min(self.limits, key=lambda lim: lim.allows)


def parse_minutes(text: str) -> float:
    """--minutes: a number of minutes per video in [MIN_MINUTES, MAX_MINUTES]; anything else is an InputError."""
    accepted = (f"accepted: the minutes one video takes, a number from {MIN_MINUTES:g} to {MAX_MINUTES} (a year, "
                "the longest a Standard execution runs), such as 10 or 2.5")
    # ASCII digits and one point only: float() also takes '1_0', Arabic-Indic digits, '1e1' and ' 10 '.
    if not MINUTES_TEXT.fullmatch(text):
        raise InputError(f"invalid --minutes {shown(text)}; {accepted} (ASCII digits and a decimal point only)")
    minutes = float(text)
    if not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise InputError(f"invalid --minutes {shown(text)}; {accepted}")
    return minutes


def default_minutes(cfg: EnvConfig) -> float:
    """Minutes per video when none is given: a typical source at the measured encode speed on cfg's task."""
    return encode_speed.minutes_per_video(encode_speed.TYPICAL_SOURCE_MINUTES,
                                          cfg.task_cpu / aws_facts.FARGATE_CPU_UNITS_PER_VCPU)


def capacity(cfg: EnvConfig, minutes: float | None = None) -> Capacity:
    """What `cfg` at full load, `minutes` per video (default: measured, `default_minutes`), needs of each limit,
    and which binds first."""
    minutes = default_minutes(cfg) if minutes is None else minutes
    if not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise InputError(f"invalid minutes per video {minutes!r}; accepted: {MIN_MINUTES:g} to {MAX_MINUTES}")
    peak = cfg.max_concurrent_videos
    seconds = minutes * 60
    starts = peak / seconds

    def allows(rate: float, per_video: int) -> int:
        """Videos at once that `rate` per second sustains when each needs `per_video` every `minutes`."""
        return math.floor(rate * seconds / per_video)

    task_vcpu = cfg.task_cpu / aws_facts.FARGATE_CPU_UNITS_PER_VCPU
    spot = cfg.spot_default
    max_connections = aws_facts.default_max_connections(cfg.db_instance_class)
    if max_connections is None:
        raise ConfigError(f"{cfg.name}: no memory figure for db_instance_class {cfg.db_instance_class!r}, so no "
                          f"max_connections; known: {', '.join(sorted(aws_facts.DB_INSTANCE_MEMORY))} (add it to "
                          "aws_facts.DB_INSTANCE_MEMORY with its source)")
    per_task = aws_facts.DB_CONNECTIONS_PER_TASK.value
    executions = aws_facts.EXECUTIONS_PER_VIDEO.value
    run_tasks = aws_facts.RUN_TASK_CALLS_PER_VIDEO.value
    requests = aws_facts.API_REQUESTS_PER_VIDEO.value
    start_bucket, start_rate = (f.value for f in aws_facts.start_execution_limits(cfg.region))
    run_task_rate = aws_facts.RUN_TASK_RATE.value
    launch_bucket, launch_rate = aws_facts.FARGATE_LAUNCH_BURST.value, aws_facts.FARGATE_LAUNCH_RATE.value
    limits = (
        Limit(f"Fargate {'Spot' if spot else 'On-Demand'} vCPU", peak * task_vcpu, cfg.fargate_vcpu_quota, "vCPU",
              cfg.fargate_vcpu_quota * aws_facts.FARGATE_CPU_UNITS_PER_VCPU // cfg.task_cpu,
              f"{cfg.fargate_vcpu_quota} assumed (fargate_vcpu_quota)"),
        Limit("database connections", peak * per_task, max_connections, "connections", max_connections // per_task,
              f"~{max_connections} max_connections ({cfg.db_instance_class})"),
        Limit("API requests", starts * requests, cfg.api_rate_limit, "/s", allows(cfg.api_rate_limit, requests),
              f"{cfg.api_rate_limit}/s, burst {cfg.api_burst_limit} (stage throttling)"),
        Limit("StartExecution", starts * executions, start_rate, "/s", allows(start_rate, executions),
              f"{start_rate}/s, bucket {start_bucket}", start_bucket, start_rate),
        Limit("RunTask", starts * run_tasks, run_task_rate, "/s", allows(run_task_rate, run_tasks),
              f"{run_task_rate}/s, burst {run_task_rate}", run_task_rate, run_task_rate),
        Limit("Fargate task launches", starts * run_tasks, launch_rate, "/s", allows(launch_rate, run_tasks),
              f"{launch_rate}/s, bucket {launch_bucket}", launch_bucket, launch_rate),
    )
    tightest = min(limits, key=lambda lim: lim.allows)  # the first of equals, in the order above
    longest = encode_speed.minutes_per_video(cfg.max_source_minutes, task_vcpu)
    return Capacity(
        env=cfg.name, region=cfg.region, minutes_per_video=minutes, max_concurrent_videos=peak,
        capacity_type="Spot" if spot else "On-Demand", task_vcpu=task_vcpu, task_memory_gib=cfg.task_memory / 1024,
        max_source_minutes=cfg.max_source_minutes,
        execution_timeout_minutes=encode_speed.execution_timeout_seconds(cfg.max_source_minutes, task_vcpu) // 60,
        vcpu_needed=peak * task_vcpu, vcpu_quota=cfg.fargate_vcpu_quota,
        vcpu_quota_new_account=aws_facts.FARGATE_NEW_ACCOUNT_VCPU.value,
        vcpu_quota_code=aws_facts.FARGATE_SPOT_VCPU_QUOTA if spot else aws_facts.FARGATE_ON_DEMAND_VCPU_QUOTA,
        memory_needed_gib=peak * cfg.task_memory / 1024, videos_per_hour=peak * 60 / minutes,
        longest_source_minutes_per_video=longest,
        videos_per_hour_longest=peak * 60 / longest,
        starts_per_second=starts, db_instance_class=cfg.db_instance_class,
        db_connections_needed=peak * per_task, db_max_connections=max_connections,
        db_connections_alarm=cfg.db_max_connections, limits=limits,
        binding=tightest.name if tightest.allows <= peak else ADMISSION,
    )


def fill_seconds(slots: int, burst: int, refill: float) -> int:
    """Seconds until `slots` calls all pass a token bucket (`burst` now, `refill` per second after)."""
    return 1 if slots <= burst else 1 + math.ceil((slots - burst) / refill)


# ------------------------------------------------------------------------------------------------ rendering

def number(x: float) -> str:
    """A figure as shown: whole numbers with thousands separators, others to two significant digits below 1."""
    if x == int(x):
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}".rstrip("0").rstrip(".")
    digits = 1 - math.floor(math.log10(abs(x)))
    return f"{x:.{digits}f}".rstrip("0").rstrip(".")


def _needed(c: Capacity, lim: Limit) -> str:
    if lim.unit == "/s":
        return f"{number(lim.needed)}/s" + (f", {c.max_concurrent_videos} at once" if lim.burst else "")
    return f"{number(lim.needed)} {lim.unit}"


def _table(rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [(indent + "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True))).rstrip() for r in rows]


def render_one(c: Capacity) -> str:
    peak = c.max_concurrent_videos
    lines = [
        f"{c.env} ({c.region}), {number(c.minutes_per_video)} minutes per video",
        *_table([
            ("max_concurrent_videos", f"{peak} videos at once, one task each ({number(c.task_vcpu)} vCPU, "
                                      f"{number(c.task_memory_gib)} GiB); the rest wait QUEUED"),
            ("throughput", f"{number(c.videos_per_hour)} videos per hour ({peak} x 60 / "
                           f"{number(c.minutes_per_video)}): {number(c.starts_per_second)} started per second"),
            ("Fargate vCPU", f"{number(c.vcpu_needed)} needed of the {c.vcpu_quota} assumed ({c.capacity_type} "
                             f"quota {c.vcpu_quota_code}; a new account may have {c.vcpu_quota_new_account})"),
            ("Fargate memory", f"{number(c.memory_needed_gib)} GiB (Fargate's quotas count vCPU only)"),
            ("encode speed", f"{number(encode_speed.REALTIME_PER_VCPU * c.task_vcpu)}x realtime on "
                             f"{number(c.task_vcpu)} vCPU (measured {encode_speed.REALTIME_PER_VCPU:g}x per vCPU on "
                             f"{encode_speed.MEASURED_ON})"),
            ("longest source", f"{number(c.longest_source_minutes_per_video)} minutes per video for "
                               f"{c.max_source_minutes} minutes of source (max_source_minutes): "
                               f"{number(c.videos_per_hour_longest)} videos per hour"),
            ("execution timeout", f"{c.execution_timeout_minutes} minutes: {encode_speed.RUNS_COVERED} runs of the "
                                  f"longest source ({c.max_source_minutes} minutes, max_source_minutes) at "
                                  f"{encode_speed.HEADROOM:g}x the measured time"),
        ]),
        "",
        *_table([("limit", "needed at full load", "limit", "allows at once"),
                 *((lim.name, _needed(c, lim), lim.detail, f"{lim.allows:,}") for lim in c.limits)]),
        "",
    ]
    tightest = c.next_limit
    if c.binding == ADMISSION:
        lines.append(f"  binds first: max_concurrent_videos ({peak}); next: {tightest.name} "
                     f"({tightest.allows:,} at once)")
    else:
        lines.append(f"  binds first: {c.binding} ({tightest.allows:,} at once; max_concurrent_videos is {peak})")
    slow = [(lim, fill_seconds(peak, lim.burst, lim.refill)) for lim in c.limits
            if lim.burst is not None and lim.refill is not None and peak > lim.burst]
    if slow:
        lines.append(f"  filling all {peak} slots at once: " + "; ".join(
            f"{lim.name} {peak} > burst {lim.burst}, the rest throttled and retried (at least {s} s to start all)"
            for lim, s in slow))
    else:
        lines.append(f"  filling all {peak} slots at once: within every bucket")
    if c.vcpu_needed > c.vcpu_quota_new_account:
        lines.append(f"  before the first deploy: request {c.capacity_type} vCPU quota {c.vcpu_quota_code} of "
                     f"{c.vcpu_quota} (a new account may have {c.vcpu_quota_new_account}, {number(c.vcpu_needed)} "
                     "needed)")
    if c.db_connections_needed > c.db_connections_alarm:
        lines.append(f"  the database connections alarm (db_max_connections {c.db_connections_alarm}) fires at "
                     f"full load ({c.db_connections_needed} connections)")
    return "\n".join(lines) + "\n"


def render_sources() -> str:
    lines = ["Facts (generator/aws_facts.py), each from the AWS page named:"]
    for fact in aws_facts.CAPACITY_FACTS:
        lines += [f"  {fact.title}: {fact.value:,} {fact.unit}", f"    {fact.source}"]
    lines.append("Assumptions (ours, not AWS's):")
    for assumption in aws_facts.CAPACITY_ASSUMPTIONS:
        lines += [f"  {assumption.title}: {assumption.value}", f"    {assumption.basis}"]
    lines.append("max_connections is computed from nominal memory: the instance's own figure is somewhat lower.")
    lines += ["Encode speed (generator/encode_speed.py), measured, not an AWS fact:",
              f"  {encode_speed.REALTIME_PER_VCPU:g}x realtime per vCPU ({encode_speed.MEASURED})",
              f"  minutes per video by default: a {number(encode_speed.TYPICAL_SOURCE_MINUTES)}-minute source "
              f"at that speed, plus {number(encode_speed.FIXED_MINUTES_PER_RUN)} minutes to start, fetch and upload"]
    return "\n".join(lines) + "\n"


def render(capacities: list[Capacity]) -> str:
    """Every environment's table, then the facts and assumptions they rest on."""
    return "\n".join([*(render_one(c) for c in capacities), render_sources()])
