"""Does each segment of an HLS rendition start on a keyframe, at the time it should? One check for the processor's
media tests (tests/test_processor_media.py) and the local smoke (deploytools/smoke.py).

The rendition's init segment and its media segments (fMP4: ffprobe reads them joined; it is MPEG-TS it cannot) are
joined into one file; ffprobe lists the video packets in decode order with their byte positions, so the first packet
of each segment is the first whose position lies at or after the segment's first byte. A segment is right when that
packet is a keyframe at segment number x interval seconds (relative to the first frame: B-frames delay every rung
alike), and no other packet is a keyframe.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

PROBE_TIMEOUT_S = 60


def segment_uris(playlist: str) -> list[str]:
    """The URIs of a media playlist's segments, in order (RFC 8216 4.1: the lines that are not tags or blank)."""
    return [line.strip() for line in playlist.splitlines() if line.strip() and not line.startswith("#")]


def video_packets(ffprobe: str, path: Path) -> list[dict]:
    """The first video stream's packets, in decode order: pts_time, flags (K: keyframe) and pos (byte offset)."""
    out = subprocess.run([ffprobe, "-v", "error", "-of", "json", "-select_streams", "v:0",
                          "-show_entries", "packet=pts_time,flags,pos", str(path)],
                         check=True, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S).stdout
    return list(json.loads(out).get("packets", []))


def keyframe_times(ffprobe: str, path: Path) -> list[float]:
    """Keyframes' times relative to the first frame's presentation time, to the millisecond."""
    packets = video_packets(ffprobe, path)
    start = min(float(p["pts_time"]) for p in packets)
    return [round(float(p["pts_time"]) - start, 3) for p in packets if "K" in p["flags"]]


def expected_starts(duration: float, interval: int) -> list[float]:
    """Segment start times of a `duration`-second rendition cut every `interval` seconds (the last may be short)."""
    return [float(t) for t in range(0, int(duration + 0.999), interval)]


def segments_wrong(ffprobe: str, init: bytes, segments: list[tuple[str, bytes]], duration: float, interval: int,
                   scratch: Path, where: str, tolerance: float = 0.001) -> list[str]:
    """What is wrong with a rendition's segments (URI, bytes) after its init segment: their number for `duration`
    seconds, a segment that does not start on a keyframe or not at its expected time, a keyframe inside a segment.
    Each line starts with `where` (the rendition)."""
    expected = expected_starts(duration, interval)
    wrong = []
    if len(segments) != len(expected):
        wrong.append(f"{where}: {len(segments)} segments, expected {len(expected)} for {duration:g} s cut every "
                     f"{interval} s")
    joined = scratch / (where.replace("/", "_") + ".joined.mp4")
    joined.write_bytes(init + b"".join(data for _, data in segments))
    packets = [p for p in video_packets(ffprobe, joined) if p.get("pos") not in (None, "N/A")]
    if not packets:
        return [*wrong, f"{where}: ffprobe finds no video packet in its segments"]
    start = min(float(p["pts_time"]) for p in packets)
    offset, first_packets = len(init), []
    for number, (uri, data) in enumerate(segments):
        inside = [p for p in packets if offset <= int(p["pos"]) < offset + len(data)]
        offset += len(data)
        if not inside:
            wrong.append(f"{where}: segment {uri} holds no video packet")
            continue
        first = inside[0]
        first_packets.append(id(first))
        at = round(float(first["pts_time"]) - start, 3)
        if "K" not in first["flags"]:
            wrong.append(f"{where}: segment {uri} does not start on a keyframe (its first frame at {at:g} s)")
        if number < len(expected) and abs(at - expected[number]) > tolerance:
            wrong.append(f"{where}: segment {uri} starts at {at:g} s, expected {expected[number]:g} s")
    between = [round(float(p["pts_time"]) - start, 3) for p in packets
               if "K" in p["flags"] and id(p) not in first_packets]
    if between:
        wrong.append(f"{where}: keyframes inside segments at {', '.join(f'{t:g}' for t in between)} s (only a "
                     "segment's first frame may be one)")
    return wrong
