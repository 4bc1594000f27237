"""How the job-control load run's wall time grows with the number of videos (issue 12's benchmark).

    python scripts/bench_load.py [--videos 100 300 1000] [--cap 3] [--task-seconds 0.05]

Runs tests/jobs_harness.py's load run (the API and scheduler handlers against moto, the generated state machine in
moto's interpreter) once per size and prints one line each: the load line of tests/test_job_load.py plus seconds
per video. A measurement, not a test: this machine is shared and noisy. The figures are the emulator's cost (moto's
interpreter is CPU-bound, about a third of a second of CPU per execution here), not AWS's: on AWS the wall time is
set by the cap and the processing time.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from jobs_harness import run_load  # noqa: E402


def templates() -> dict:
    return {"dev": {p.stem: json.loads(p.read_text()) for p in (ROOT / "templates" / "dev").glob("*.json")}}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, nargs="+", default=[100, 300, 1000])
    p.add_argument("--cap", type=int, default=3)
    p.add_argument("--task-seconds", type=float, default=0.05)
    a = p.parse_args(argv)
    logging.disable(logging.WARNING)  # moto logs every failed state at ERROR
    for n in a.videos:
        with pytest.MonkeyPatch.context() as monkeypatch:
            result = run_load(templates(), n, a.cap, monkeypatch, a.task_seconds)
        print(f"{result.line()}; {result.seconds / n * 1000:.0f} ms per video", flush=True)
        if result.lost or result.failed or result.scheduler_errors:
            print(f"  not clean: {result.failed} failed, {result.lost} lost, {len(result.scheduler_errors)} "
                  "scheduler errors", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
