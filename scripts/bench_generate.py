"""How close generation is to its floor: `python -m generator` for every environment, against merely
importing troposphere and awacs (which generation cannot avoid). Goal: a ratio of at most 3.5, with templates built
and serialised through troposphere's public API only (Template.to_dict). It prints the figures; it asserts nothing.

    python scripts/bench_generate.py [--runs N]

Each run starts fresh interpreters (as a user or CI does), the two commands interleaved (in turn first) so that a
busy machine slows both alike; prints median, spread (min-max) and CPU time (user+sys, which waiting for a core
does not inflate) of each, and the ratio of the medians. Both commands run with the same interpreter, environment and
working directory. Bytecode: the project's modules are byte-compiled first, as troposphere's and awacs' were when
pip installed them, so that both commands read every module from its .pyc (checked before timing, with -v) and
neither writes one whatever PYTHONDONTWRITEBYTECODE says (some sandboxes set it: every run would otherwise compile
the generator from source, which a user's second run never does).
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 3.5
# `python -v` says where each module's code object comes from: a quoted .pyc path, or an unquoted source path
# when the module was compiled from source.
FROM_SOURCE = re.compile(r"^# code object from (?!')(\S+)$", re.MULTILINE)


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compiled_from_source(command: list[str]) -> list[str]:
    """Modules the command compiled from source (with -v), instead of reading their .pyc."""
    verbose = subprocess.run([command[0], "-v", *command[1:]], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    return FROM_SOURCE.findall(verbose.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args()
    commands = {
        "generate (all environments)": lambda out: [sys.executable, "-m", "generator", "--out", out],
        "import troposphere, awacs": lambda out: [sys.executable, "-c", "import troposphere, awacs"],
    }
    compileall.compile_dir(ROOT / "generator", quiet=1)  # what the first run would have written
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as out:
        sources = {name: compiled_from_source(command(out)) for name, command in commands.items()}
        for run in range(args.runs):
            for name, command in sorted(commands.items(), reverse=run % 2 == 1):
                seconds, cpu_seconds = timed(command(out))
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
    for name in commands:
        print(f"{name:30} median {statistics.median(wall[name]):.3f} s  (min {min(wall[name]):.3f}, "
              f"max {max(wall[name]):.3f})  cpu median {statistics.median(cpu[name]):.3f} s")
    generate, floor = (statistics.median(v) for v in wall.values())
    best_generate, best_floor = (min(v) for v in wall.values())
    cpu_generate, cpu_floor = (statistics.median(v) for v in cpu.values())
    print(f"ratio (median generate / median import) {generate / floor:.2f} (target <= {TARGET_RATIO}), "
          f"{args.runs} runs; of the fastest runs {best_generate / best_floor:.2f}; of the cpu medians "
          f"{cpu_generate / cpu_floor:.2f}")
    dont_write = "set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "unset"
    if any(sources.values()):
        print("bytecode: NOT comparable, compiled from source: " + "; ".join(
            f"{name}: {', '.join(paths)}" for name, paths in sources.items() if paths))
    else:
        print(f"bytecode: both commands read every module from its .pyc (PYTHONDONTWRITEBYTECODE {dont_write})")


if __name__ == "__main__":
    main()
