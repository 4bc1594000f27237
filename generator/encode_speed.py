"""How long the processor takes, from its measured encode speed: the one place the figure lives.

The execution timeout (workflow tier), the capacity plan's minutes per video (`python -m generator capacity`) and
the cost model's default task time all derive from it, so a new measurement changes them together.
"""

from __future__ import annotations

import math
from typing import cast

from generator.state_machine import PROCESS_RETRY

# scripts/bench_processor.py, 2026-12-04 (docs/processor-image.md, "Tests and measurement"): the prod ladder (1080p,
# 720p, 480p, 360p, x264 veryfast) from a 1920x1080 30 fps source in one ffmpeg process ran at 0.49x realtime on
# 2 shared CPUs: 0.24x realtime per vCPU. A floor, from a loaded machine; measure again on a Fargate task.
REALTIME_PER_VCPU = 0.24
MEASURED_ON = "2026-12-04"
MEASURED = f"scripts/bench_processor.py, {MEASURED_ON}: prod ladder from 1080p30, 0.49x realtime on 2 CPUs"
# Assumed: the encode scales with the task's vCPU (four x264 encoders in one process keep 2-4 vCPU busy; above that
# unmeasured). The dev ladder (two rungs) is faster than the figure: its timeouts have room to spare.
# Per run beyond the encode: the task's start (image pull, Spot placement), the source's download, the upload.
FIXED_MINUTES_PER_RUN = 5.0
# Room over the measured speed: the figure is from a 10 s clip; sources with more motion encode slower.
HEADROOM = 1.5
# The execution timeout covers the first run and one retry (a Spot interruption's, say) and the wait between them;
# later retries may be cut short (the execution ends TIMED_OUT, which the scheduler reports).
RUNS_COVERED = 2
# A typical source, for the capacity plan's and the cost model's default minutes per video.
TYPICAL_SOURCE_MINUTES = 5.0


def encode_minutes(source_minutes: float, task_vcpu: float) -> float:
    """The encode alone, at the measured speed."""
    return source_minutes / (REALTIME_PER_VCPU * task_vcpu)


def minutes_per_video(source_minutes: float, task_vcpu: float) -> float:
    """One run, start to stop, at the measured speed (no headroom: what a video costs and occupies on average)."""
    return round(encode_minutes(source_minutes, task_vcpu) + FIXED_MINUTES_PER_RUN, 1)


def execution_timeout_seconds(max_source_minutes: float, task_vcpu: float) -> int:
    """The longest source accepted, encoded at the measured speed with HEADROOM, RUNS_COVERED times, plus the
    retry's wait; whole minutes."""
    per_run = encode_minutes(max_source_minutes, task_vcpu) * HEADROOM + FIXED_MINUTES_PER_RUN
    retry_wait = cast(int, PROCESS_RETRY["IntervalSeconds"]) / 60
    return math.ceil(per_run * RUNS_COVERED + retry_wait) * 60
