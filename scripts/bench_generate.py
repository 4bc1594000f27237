"""How close generation is to its floor: `python -m generator` for every environment, against merely
importing troposphere and awacs (which generation cannot avoid). Goal: a ratio of at most 2.5.

    python scripts/bench_generate.py [--runs N]

Each run starts fresh interpreters (as a user or CI does), the two commands interleaved so that a busy
machine slows both alike; prints median and min of each and the ratio of the medians. The project's modules
are byte-compiled first, as troposphere's and awacs' were when pip installed them: with PYTHONDONTWRITEBYTECODE
set (some sandboxes set it) every run would otherwise compile the generator from source, which a user's
second run never does.
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 2.5


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args()
    commands = {
        "generate (all environments)": lambda out: [sys.executable, "-m", "generator", "--out", out],
        "import troposphere, awacs": lambda out: [sys.executable, "-c", "import troposphere, awacs"],
    }
    compileall.compile_dir(ROOT / "generator", quiet=1)  # what the first run would have written
    times: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.runs):
            for name, command in commands.items():
                times[name].append(seconds(command(out)))
    for name, values in times.items():
        print(f"{name:30} median {statistics.median(values):.3f} s  min {min(values):.3f} s")
    generate, floor = (statistics.median(v) for v in times.values())
    best_generate, best_floor = (min(v) for v in times.values())
    print(f"ratio (median generate / median import) {generate / floor:.2f} (target <= {TARGET_RATIO}), "
          f"{args.runs} runs; of the fastest runs {best_generate / best_floor:.2f}")


if __name__ == "__main__":
    main()
