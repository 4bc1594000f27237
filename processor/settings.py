"""The processor's per-environment settings: the ladder and the limits a source must meet.

Each has a default per environment (ENVIRONMENT: dev, staging, prod) and may be overridden by an environment
variable of the task definition (docs/processor-image.md, "Settings"). A bad override is the operator's error: it
fails the task (exit 1, retried) with a message that names the variable.
"""

from __future__ import annotations

import json
from typing import NamedTuple


class Rung(NamedTuple):
    """One rendition of the ladder. `height` is the short side: a portrait source's rung of 720 is 720 wide."""

    name: str
    height: int
    video_bitrate: int  # bits per second, the average the encoder aims at (capped VBR: maxrate 1.07x)
    audio_bitrate: int  # bits per second, AAC-LC


class Limits(NamedTuple):
    max_duration_seconds: float
    min_duration_seconds: float
    max_dimension: int  # the long side, in pixels, after rotation
    min_dimension: int  # the short side
    max_frame_rate: float
    video_codecs: tuple[str, ...]  # ffprobe's codec_name values accepted


class Settings(NamedTuple):
    ladder: tuple[Rung, ...]
    limits: Limits
    preset: str  # x264's speed/quality trade-off
    thumbnail_count: int
    thumbnail_width: int


class SettingsError(Exception):
    """A setting's environment variable holds a value the processor cannot use."""


# 1080p/720p/480p/360p at the bitrates common streaming ladders use for H.264 (Apple's HLS authoring spec,
# https://developer.apple.com/documentation/http-live-streaming/hls-authoring-specification-for-apple-devices,
# lists 6000-7800 kb/s for 1080p and 145 kb/s up; these sit between). dev encodes two rungs to stay cheap.
PROD_LADDER = (
    Rung("1080p", 1080, 5_000_000, 128_000),
    Rung("720p", 720, 2_800_000, 128_000),
    Rung("480p", 480, 1_400_000, 96_000),
    Rung("360p", 360, 800_000, 96_000),
)
DEV_LADDER = (
    Rung("720p", 720, 2_800_000, 128_000),
    Rung("360p", 360, 800_000, 96_000),
)
LADDERS = {"dev": DEV_LADDER, "staging": PROD_LADDER, "prod": PROD_LADDER}

# Codecs ffmpeg decodes in software that cameras, phones and editors write; still-image codecs are not video.
VIDEO_CODECS = ("h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video", "prores", "dnxhd")
DEFAULT_LIMITS = Limits(max_duration_seconds=3600, min_duration_seconds=0.5, max_dimension=4096, min_dimension=16,
                        max_frame_rate=120, video_codecs=VIDEO_CODECS)
# The task definition sets MAX_DURATION_SECONDS from generator/config.py's max_source_minutes; these defaults match.
LIMITS = {"dev": DEFAULT_LIMITS._replace(max_duration_seconds=600),
          "staging": DEFAULT_LIMITS._replace(max_duration_seconds=1800), "prod": DEFAULT_LIMITS}

ENV_LADDER = "LADDER"
ENV_MAX_DURATION = "MAX_DURATION_SECONDS"
ENV_MAX_DIMENSION = "MAX_DIMENSION"
ENV_MIN_DIMENSION = "MIN_DIMENSION"
ENV_MAX_FRAME_RATE = "MAX_FRAME_RATE"
ENV_VIDEO_CODECS = "VIDEO_CODECS"
ENV_PRESET = "X264_PRESET"
ENV_THUMBNAIL_COUNT = "THUMBNAIL_COUNT"
DEFAULT_PRESET = "veryfast"
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
MIN_RUNGS = 2
RUNG_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def parse_ladder(text: str) -> tuple[Rung, ...]:
    """LADDER's JSON: [{"name": "720p", "height": 720, "videoBitrate": 2800000, "audioBitrate": 128000}, ...]."""
    try:
        rows = json.loads(text)
    except ValueError as e:
        raise SettingsError(f"{ENV_LADDER} is not JSON: {e}") from None
    if not isinstance(rows, list) or len(rows) < MIN_RUNGS:
        raise SettingsError(f"{ENV_LADDER} must be a JSON list of at least {MIN_RUNGS} rungs")
    rungs = []
    for i, row in enumerate(rows):
        where = f"{ENV_LADDER}[{i}]"
        if not isinstance(row, dict) or set(row) != {"name", "height", "videoBitrate", "audioBitrate"}:
            raise SettingsError(f"{where} must be an object with exactly name, height, videoBitrate, audioBitrate")
        name, height, video, audio = row["name"], row["height"], row["videoBitrate"], row["audioBitrate"]
        if not isinstance(name, str) or not name or not set(name) <= RUNG_NAME_CHARS:
            raise SettingsError(f"{where}.name must be letters, digits, '_' or '-' (it names a directory)")
        for field, value, low in (("height", height, 16), ("videoBitrate", video, 50_000),
                                  ("audioBitrate", audio, 32_000)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise SettingsError(f"{where}.{field} must be an integer of at least {low}")
        rungs.append(Rung(name, height, video, audio))
    if len({r.name for r in rungs}) != len(rungs) or len({r.height for r in rungs}) != len(rungs):
        raise SettingsError(f"{ENV_LADDER}: rung names and heights must be unique")
    return tuple(sorted(rungs, key=lambda r: -r.height))


def _number(environ, name, default, kind=float, low=0):
    text = environ.get(name)
    if text is None or text == "":
        return default
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {text!r}") from None
    if value <= low:
        raise SettingsError(f"{name} must be more than {low}, not {text!r}")
    return value


def from_environment(environ) -> Settings:
    """The settings for environ's ENVIRONMENT (dev when unset), with every override applied."""
    env = environ.get("ENVIRONMENT") or "dev"
    if env not in LADDERS:
        raise SettingsError(f"ENVIRONMENT must be one of {', '.join(LADDERS)}, not {env!r}")
    ladder = parse_ladder(environ[ENV_LADDER]) if environ.get(ENV_LADDER) else LADDERS[env]
    base = LIMITS[env]
    codecs = tuple(c.strip() for c in environ.get(ENV_VIDEO_CODECS, "").split(",") if c.strip())
    limits = base._replace(
        max_duration_seconds=_number(environ, ENV_MAX_DURATION, base.max_duration_seconds),
        max_dimension=_number(environ, ENV_MAX_DIMENSION, base.max_dimension, int, 15),
        min_dimension=_number(environ, ENV_MIN_DIMENSION, base.min_dimension, int, 1),
        max_frame_rate=_number(environ, ENV_MAX_FRAME_RATE, base.max_frame_rate),
        video_codecs=codecs or base.video_codecs)
    preset = environ.get(ENV_PRESET) or DEFAULT_PRESET
    if preset not in X264_PRESETS:
        raise SettingsError(f"{ENV_PRESET} must be one of {', '.join(X264_PRESETS)}, not {preset!r}")
    return Settings(ladder=ladder, limits=limits, preset=preset,
                    thumbnail_count=_number(environ, ENV_THUMBNAIL_COUNT, 10, int, 0), thumbnail_width=320)
