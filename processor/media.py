"""Probe, validate and encode: the media half of the pipeline, as functions of their inputs.

Everything that decides (validate, plan_rungs, encode_command, master_playlist) is pure and tested without
ffmpeg; the functions that run a tool (probe, last_video_time, encode, remux_download) take the tool's path and a
timeout, so no step can hang the task.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

from processor.settings import Limits, Rung, Settings

SEGMENT_SECONDS = 2  # HLS segment length and the keyframe interval of every rung (aligned across rungs)
MAX_OUTPUT_FRAME_RATE = 60  # above it the frame rate is halved until it fits (120 -> 60, 100 -> 50)
PROBE_TIMEOUT_SECONDS = 120
# A generous ceiling for the encode: seconds of wall time per second of source, on top of a fixed minute. The
# execution's own timeout (the state machine) is the real bound; this one stops a wedged ffmpeg.
ENCODE_SECONDS_PER_SOURCE_SECOND = 20
HLS_DIR = "hls"
MASTER_PLAYLIST = "hls/master.m3u8"
DOWNLOAD = "download.mp4"
POSTER = "poster.jpg"
THUMBNAILS_DIR = "thumbnails"
AAC_LC = "mp4a.40.2"  # RFC 6381 codecs value of AAC-LC, which ffmpeg's aac encoder writes


class InvalidMedia(Exception):
    """The source is not media the pipeline accepts: the user's error, reported with a reason they can act on."""


class Interrupted(Exception):
    """The task was asked to stop (SIGTERM) while a tool ran."""


class SourceInfo(NamedTuple):
    """What the encode needs to know about a valid source; width and height as displayed (rotation applied)."""

    width: int
    height: int
    rotation: int  # degrees the player rotates the coded picture by (ffmpeg applies it while decoding)
    duration: float
    frame_rate: Fraction  # the average rate; a variable-rate source is encoded at it, constant
    codec: str
    pix_fmt: str
    has_audio: bool


class PlannedRung(NamedTuple):
    rung: Rung
    width: int
    height: int


# --- running tools ------------------------------------------------------------------------------------------------

# The ffmpeg/ffprobe processes running now, so that SIGTERM can stop them (stop_children).
_children: set[subprocess.Popen] = set()


def stop_children(signum=signal.SIGTERM, frame=None):
    """SIGTERM's handler: end the running tools (ffmpeg finishes no further output), then unwind the task."""
    for child in list(_children):
        child.terminate()
    raise Interrupted("stopped by SIGTERM (Fargate Spot reclaims the task, or StopTask): uploaded files are kept, "
                      "the next attempt uploads only what is missing")


def run_tool(argv: list[str], timeout: float, on_stdout_line: Callable[[str], None] | None = None) -> tuple[int, str]:
    """Run a tool to its end or `timeout` seconds; (exit code, stderr's last 4 KB). stdout goes line by line to
    `on_stdout_line` (ffmpeg's -progress, ffprobe's packets) so nothing large is held in memory."""
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, errors="replace")
    _children.add(process)
    try:
        stderr_tail: list[str] = []

        def read_stderr():
            assert process.stderr is not None
            for line in process.stderr:
                stderr_tail.append(line)
                del stderr_tail[:-40]

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        timed_out = threading.Event()

        def stop():
            timed_out.set()
            process.kill()

        timer = threading.Timer(timeout, stop)
        timer.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if on_stdout_line is not None:
                    on_stdout_line(line.rstrip("\n"))
            code = process.wait()
        finally:
            timer.cancel()
        reader.join(5)
        if timed_out.is_set():
            raise TimeoutError(f"{Path(argv[0]).name} ran longer than {timeout:.0f} s and was stopped")
        return code, "".join(stderr_tail)[-4096:]
    finally:
        _children.discard(process)
        if process.poll() is None:
            process.kill()
            process.wait()


def tool_version(tool: str) -> str:
    """`ffmpeg -version`'s version word, e.g. 6.0-static or 5.1.6-0+deb12u1."""
    out = subprocess.run([tool, "-version"], capture_output=True, text=True, timeout=30, check=True).stdout
    match = re.match(r"\S+ version (\S+)", out)
    return match.group(1) if match else "unknown"


# --- probe and validate -------------------------------------------------------------------------------------------


def last_line(text: str) -> str:
    """A tool's last word on stderr (ffmpeg ends with the error that stopped it)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def reason(stderr: str, path: Path) -> str:
    """ffprobe's complaint about the source, for the person who uploaded it: the task's scratch path means nothing
    to them (ffprobe prefixes its messages with the file's name)."""
    return last_line(stderr).replace(f"{path}: ", "").replace(str(path), "the file")


def probe(path: Path, ffprobe: str) -> dict:
    """ffprobe's JSON of the file's format and streams; InvalidMedia when ffprobe cannot read it as media."""
    lines: list[str] = []
    code, stderr = run_tool([ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                             str(path)], PROBE_TIMEOUT_SECONDS, lines.append)
    if code != 0:
        raise InvalidMedia(f"the file is not a video ffprobe can read ({reason(stderr, path)}): upload a video file "
                           "such as MP4 or MOV")
    return json.loads("\n".join(lines) or "{}")


def _rate(text: str | None) -> Fraction:
    try:
        num, _, den = (text or "0/0").partition("/")
        return Fraction(int(num), int(den or 1))
    except (ValueError, ZeroDivisionError):
        return Fraction(0)


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return round(float(side["rotation"])) % 360
    return int(stream.get("tags", {}).get("rotate", 0)) % 360


def validate(probed: dict, limits: Limits) -> SourceInfo:
    """The source's facts, or InvalidMedia naming the first limit it breaks and what to do."""
    streams = probed.get("streams", [])
    videos = [s for s in streams if s.get("codec_type") == "video"
              and not s.get("disposition", {}).get("attached_pic")]  # cover art is not the video
    if not videos:
        raise InvalidMedia("the file has no video stream (audio only, or an image): upload a video file")
    video = videos[0]
    codec = video.get("codec_name", "unknown")
    if codec not in limits.video_codecs:
        raise InvalidMedia(f"the video codec {codec} is not accepted: upload {', '.join(limits.video_codecs)}")
    coded_w, coded_h = int(video.get("width") or 0), int(video.get("height") or 0)
    rotation = _rotation(video)
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    if min(width, height) < limits.min_dimension:
        raise InvalidMedia(f"the video is {width}x{height} pixels: at least {limits.min_dimension} pixels on each "
                           "side are needed")
    if max(width, height) > limits.max_dimension:
        raise InvalidMedia(f"the video is {width}x{height} pixels: at most {limits.max_dimension} pixels on the "
                           "longer side are accepted; scale it down and upload again")
    rate = _rate(video.get("avg_frame_rate"))
    if rate <= 0:
        rate = _rate(video.get("r_frame_rate"))
    if rate <= 0:
        raise InvalidMedia("the video's frame rate cannot be determined: re-export it with a frame rate")
    if rate > limits.max_frame_rate:
        raise InvalidMedia(f"the video runs at {float(rate):.3g} frames per second: at most "
                           f"{limits.max_frame_rate:g} are accepted")
    duration = 0.0
    for text in (video.get("duration"), probed.get("format", {}).get("duration")):
        try:
            duration = float(text)
            break
        except (TypeError, ValueError):
            continue
    if not math.isfinite(duration) or duration < limits.min_duration_seconds:
        raise InvalidMedia(f"the video lasts {duration:g} s: at least {limits.min_duration_seconds:g} s are needed")
    if duration > limits.max_duration_seconds:
        raise InvalidMedia(f"the video lasts {duration:.0f} s: at most {limits.max_duration_seconds:.0f} s are "
                           "accepted; split it and upload the parts")
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    return SourceInfo(width, height, rotation, duration, rate, codec, video.get("pix_fmt", "unknown"), has_audio)


def last_video_time(path: Path, ffprobe: str, timeout: float) -> float:
    """Where the video's packets really end, in seconds: demuxes the whole file (no decoding), so a file cut short,
    or a header that claims more than the data holds, shows as an end well before the declared duration."""
    end = 0.0
    packets = 0

    def packet(line: str):
        nonlocal end, packets
        pts, _, duration = line.partition(",")
        try:
            end = max(end, float(pts) + (float(duration) if duration not in ("", "N/A") else 0.0))
            packets += 1
        except ValueError:
            pass

    code, stderr = run_tool([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                             "packet=pts_time,duration_time", "-of", "csv=p=0", str(path)], timeout, packet)
    if code != 0 or packets == 0:
        raise InvalidMedia(f"the video's frames cannot be read ({reason(stderr, path)}): the file is damaged or "
                           "incomplete; upload it again")
    return end


def check_complete(info: SourceInfo, data_end: float) -> None:
    """InvalidMedia when the data stops well before the duration the header declares (a truncated upload)."""
    if data_end < info.duration * 0.9 - 1.0:
        raise InvalidMedia(f"the file's video stops at {data_end:.1f} s of the {info.duration:.1f} s its header "
                           "declares: it is truncated or damaged; upload the complete file")


# --- plan and encode ----------------------------------------------------------------------------------------------


def _even(x: float, limit: int) -> int:
    """The even size nearest x (H.264 4:2:0 needs even sizes), at most `limit` rounded down to even: a rung is
    never larger than the source, even by the pixel an odd source would round up to."""
    return max(2, min(round(x / 2) * 2, limit // 2 * 2))


def plan_rungs(ladder: tuple[Rung, ...], width: int, height: int) -> list[PlannedRung]:
    """The rungs this source gets: those whose short side fits the source's (never upscaled), scaled with the
    source's aspect ratio to even sizes. A source smaller than every rung gets the smallest rung at its own size."""
    short = min(width, height)
    fitting = [r for r in ladder if r.height <= short] or [min(ladder, key=lambda r: r.height)]
    planned: list[PlannedRung] = []
    for rung in sorted(fitting, key=lambda r: -r.height):
        scale = min(1.0, rung.height / short)
        size = (_even(width * scale, width), _even(height * scale, height))
        if all(size != (p.width, p.height) for p in planned):
            planned.append(PlannedRung(rung, *size))
    return planned


def output_frame_rate(rate: Fraction) -> Fraction:
    while rate > MAX_OUTPUT_FRAME_RATE:
        rate /= 2
    return rate.limit_denominator(1001)


def rung_dir(planned: PlannedRung) -> str:
    return f"{HLS_DIR}/{planned.rung.name}"


def encode_command(ffmpeg: str, source: Path, out: Path, info: SourceInfo, rungs: list[PlannedRung],
                   settings: Settings) -> list[str]:
    """One ffmpeg process, one decode: the decoded video is made constant-rate 8-bit 4:2:0 once, then split into
    every rung's scaler, the thumbnails and the poster. Every rung forces a keyframe at each 2 s mark and nowhere
    else (no scene-cut keyframes, closed GOPs), so segments of all rungs start at the same times."""
    rate = output_frame_rate(info.frame_rate)
    branches = [f"[v{i}]" for i in range(len(rungs))]
    graph = [f"[0:v]fps={rate.numerator}/{rate.denominator},format=yuv420p,"
             f"split={len(rungs) + 2}{''.join(branches)}[vthumb][vposter]"]
    for i, planned in enumerate(rungs):
        graph.append(f"[v{i}]scale={planned.width}:{planned.height}:flags=bicubic,setsar=1[out{i}]")
    count = settings.thumbnail_count
    graph.append(f"[vthumb]fps={count}/{info.duration:.3f},scale={settings.thumbnail_width}:-2[thumbs]")
    poster_at = round(info.duration / 4, 3)  # a quarter in: past black openings and titles
    top = rungs[0]
    graph.append(f"[vposter]select='isnan(prev_selected_t)*gte(t\\,{poster_at})',"
                 f"scale={top.width}:{top.height}[poster]")
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-nostats", "-progress", "pipe:1", "-y",
            "-i", str(source), "-filter_complex", ";".join(graph)]
    gop = math.ceil(rate * SEGMENT_SECONDS) * 5  # x264's own limit far above the forced interval: it never fires
    for i, planned in enumerate(rungs):
        directory = out / rung_dir(planned)
        directory.mkdir(parents=True, exist_ok=True)
        rung = planned.rung
        argv += ["-map", f"[out{i}]"]
        if info.has_audio:
            argv += ["-map", "0:a:0", "-c:a", "aac", "-b:a", str(rung.audio_bitrate), "-ac", "2"]
        argv += ["-c:v", "libx264", "-preset", settings.preset, "-profile:v", "high", "-pix_fmt", "yuv420p",
                 "-b:v", str(rung.video_bitrate), "-maxrate", str(int(rung.video_bitrate * 1.07)),
                 "-bufsize", str(rung.video_bitrate * 2), "-g", str(gop),
                 "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})", "-sc_threshold", "0",
                 "-flags", "+cgop",
                 # Slice threads, not frame threads: with frame threads and VBV, x264's output varies from run to
                 # run, and a re-run of an interrupted attempt would re-upload segments that did not change.
                 "-x264-params", "sliced-threads=1",
                 "-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact",
                 "-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod",
                 "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
                 "-hls_segment_filename", str(directory / "seg_%05d.m4s"), str(directory / "index.m3u8")]
    (out / THUMBNAILS_DIR).mkdir(parents=True, exist_ok=True)
    argv += ["-map", "[thumbs]", "-frames:v", str(count), "-q:v", "4", "-fflags", "+bitexact",
             str(out / THUMBNAILS_DIR / "%04d.jpg"),
             "-map", "[poster]", "-frames:v", "1", "-update", "1", "-q:v", "3", "-fflags", "+bitexact",
             str(out / POSTER)]
    return argv


def encode(argv: list[str], duration: float, on_progress: Callable[[float], None] | None = None) -> None:
    """Run the encode; on_progress gets the fraction done (0-1) from ffmpeg's -progress output."""

    def progress(line: str):
        key, _, value = line.partition("=")
        if key == "out_time_us" and on_progress is not None and value.isdigit():
            on_progress(min(1.0, int(value) / 1e6 / duration))

    code, stderr = run_tool(argv, 60 + duration * ENCODE_SECONDS_PER_SOURCE_SECOND, progress)
    if code != 0:
        raise RuntimeError(f"ffmpeg failed with exit code {code}: {last_line(stderr)}")


def remux_download(ffmpeg: str, out: Path, top: PlannedRung, scratch: Path) -> None:
    """The progressive MP4: the top rung's fragments joined and remuxed (no second encode), moov first."""
    directory = out / rung_dir(top)
    joined = scratch / "top-rung-fragmented.mp4"
    with joined.open("wb") as sink:
        for part in [directory / "init.mp4", *sorted(directory.glob("seg_*.m4s"))]:
            sink.write(part.read_bytes())
    code, stderr = run_tool([ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", str(joined),
                             "-map", "0", "-c", "copy", "-movflags", "+faststart", "-map_metadata", "-1",
                             "-fflags", "+bitexact", str(out / DOWNLOAD)], 600)
    joined.unlink()
    if code != 0:
        raise RuntimeError(f"ffmpeg could not write the download MP4 (exit code {code}): {last_line(stderr)}")


# --- playlists ----------------------------------------------------------------------------------------------------


def avc_codec(init_segment: bytes) -> str:
    """RFC 6381's `avc1.PPCCLL` from the init segment's avcC box: profile, constraint flags and level as written."""
    at = init_segment.find(b"avcC")
    if at < 0:
        raise RuntimeError("the rung's init segment has no avcC box")
    profile, constraints, level = init_segment[at + 5:at + 8]
    return f"avc1.{profile:02x}{constraints:02x}{level:02x}"


def media_segments(playlist: str) -> list[tuple[float, str]]:
    """(duration, URI) of each segment of a media playlist."""
    segments, duration = [], None
    for line in playlist.splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:"):].split(",")[0])
        elif line and not line.startswith("#") and duration is not None:
            segments.append((duration, line))
            duration = None
    return segments


class RungOutput(NamedTuple):
    planned: PlannedRung
    codecs: str
    peak_bandwidth: int  # bits per second of the densest segment: HLS's BANDWIDTH
    average_bandwidth: int  # bits per second over the whole rung: HLS's AVERAGE-BANDWIDTH


def measure_rung(out: Path, planned: PlannedRung, has_audio: bool) -> RungOutput:
    directory = out / rung_dir(planned)
    segments = media_segments((directory / "index.m3u8").read_text())
    sizes = [(seconds, (directory / uri).stat().st_size) for seconds, uri in segments]
    peak = max(size * 8 / max(seconds, 0.001) for seconds, size in sizes)
    average = sum(size for _, size in sizes) * 8 / max(sum(seconds for seconds, _ in sizes), 0.001)
    codecs = avc_codec((directory / "init.mp4").read_bytes()) + (f",{AAC_LC}" if has_audio else "")
    return RungOutput(planned, codecs, math.ceil(peak), math.ceil(average))


def master_playlist(rungs: list[RungOutput], frame_rate: Fraction) -> str:
    """The multivariant playlist: every rung with BANDWIDTH, AVERAGE-BANDWIDTH, RESOLUTION, FRAME-RATE and CODECS
    (RFC 8216 4.3.4.2; Apple's authoring spec requires CODECS and RESOLUTION), highest first."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for r in rungs:
        lines.append(f"#EXT-X-STREAM-INF:BANDWIDTH={r.peak_bandwidth},AVERAGE-BANDWIDTH={r.average_bandwidth},"
                     f"RESOLUTION={r.planned.width}x{r.planned.height},"
                     f"FRAME-RATE={float(output_frame_rate(frame_rate)):.3f},CODECS=\"{r.codecs}\"")
        lines.append(f"{r.planned.rung.name}/index.m3u8")
    return "\n".join(lines) + "\n"
