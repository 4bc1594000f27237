"""How long `python -m generator diff` takes for all environments (goal: well under 2 seconds).

    python scripts/bench_diff.py [--repeat N] [--base REV]

Prints each phase (generate, read git, compare, render) and the whole, best and median of N runs.
A second line compares against nothing at all (every resource added): the largest report possible; a third
moves every environment's VPC to another range (seven direct replacements per environment followed through
every stack: the blast radius at its widest).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator import config
from generator.diff import cli as diff_cli
from generator.diff import diff_templates, render
from generator.render import render_environment


def moved_vpcs() -> dict[str, dict]:
    """Every environment's templates with its VPC in the 10.<n+1>.0.0/16 range next to its own."""
    out = {}
    for name, cfg in config.ENVIRONMENTS.items():
        a, b, *_ = cfg.vpc_cidr.split(".")
        moved = dataclasses.replace(cfg, vpc_cidr=f"{a}.{int(b) + 1}.0.0/16")
        out.update({f"{name}/{f}": json.loads(t) for f, t in render_environment(moved).items()})
    return out


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def one_run(base: str, moved: dict[str, dict]) -> dict[str, float]:
    envs = list(config.ENVIRONMENTS)
    new, t_gen = timed(diff_cli.generate, envs)
    old, t_git = timed(diff_cli.load_git, base, envs)
    report, t_diff = timed(diff_templates, old, new, base, "generated now")
    _, t_render = timed(lambda: [render(report, f) for f in ("text", "markdown", "json")])
    _, t_empty = timed(lambda: [render(diff_templates({}, new), f) for f in ("text", "markdown", "json")])
    _, t_moved = timed(lambda: [render(diff_templates(new, moved), f) for f in ("text", "markdown", "json")])
    return {"generate": t_gen, "read git": t_git, "compare": t_diff, "render x3": t_render,
            "total": t_gen + t_git + t_diff + t_render, "from empty (compare+render x3)": t_empty,
            "VPCs moved (compare+render x3)": t_moved}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--base", default="HEAD")
    args = p.parse_args()
    moved = moved_vpcs()
    runs = [one_run(args.base, moved) for _ in range(args.repeat)]
    print(f"diff of all environments ({', '.join(config.ENVIRONMENTS)}) against {args.base}, {args.repeat} runs")
    for phase in runs[0]:
        values = [r[phase] for r in runs]
        print(f"  {phase:32} best {min(values) * 1000:7.1f} ms   median {statistics.median(values) * 1000:7.1f} ms")
    print(f"  first run (cold caches)          {runs[0]['total'] * 1000:7.1f} ms")
    # What a user waits for: a fresh interpreter running the command (imports included).
    cmd = [sys.executable, "-m", "generator", "diff", "--base", args.base, "--format", "json"]
    _, t_cli = timed(subprocess.run, cmd, capture_output=True, cwd=Path(__file__).resolve().parent.parent)
    print(f"  {' '.join(['python', *cmd[1:]])}: {t_cli * 1000:.1f} ms")


if __name__ == "__main__":
    main()
