"""The manifest: what an attempt produced, written last under the outputs prefix (its presence means done).

Its shape is processor/manifest.schema.json (schemaVersion 1); every key in it is relative to the outputs prefix.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

from processor.contract import MANIFEST_SCHEMA_VERSION

SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")


@cache
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def validation_errors(document) -> list[str]:
    """Why `document` is not a schemaVersion 1 manifest (empty when it is): each error with its JSON path."""
    # The image installs it (processor/requirements.txt); imported here to keep the processor's startup light.
    import jsonschema  # type: ignore[import-untyped]

    validator = jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(document)'}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))]


def build(*, video_id, attempt, source, duration, rungs, files, tools, created_at=None) -> dict:
    """The manifest document. `rungs`: RungOutput rows; `files`: LocalFile rows of everything uploaded (the
    manifest itself excluded); `source`: bucket, key, versionId, sha256."""
    from processor import media

    by_key = {f.key: f for f in files}
    renditions = []
    for r in rungs:
        directory = media.rung_dir(r.planned) + "/"
        own = [f for f in files if f.key.startswith(directory)]
        playlist = by_key[directory + "index.m3u8"]
        renditions.append({
            "name": r.planned.rung.name, "width": r.planned.width, "height": r.planned.height,
            "bitrate": r.average_bandwidth, "peakBitrate": r.peak_bandwidth, "codecs": r.codecs,
            "playlist": playlist.key, "bytes": sum(f.bytes for f in own), "sha256": playlist.sha256,
        })
    download = by_key[media.DOWNLOAD]
    return {
        "schemaVersion": MANIFEST_SCHEMA_VERSION,
        "videoId": video_id,
        "attempt": attempt,
        "source": source,
        "durationSeconds": round(duration, 3),
        "renditions": renditions,
        "download": {"key": download.key, "bytes": download.bytes, "sha256": download.sha256},
        "poster": {"key": media.POSTER},
        "thumbnails": [{"key": f.key} for f in files if f.key.startswith(media.THUMBNAILS_DIR + "/")],
        "hls": {"master": media.MASTER_PLAYLIST},
        "files": [{"key": f.key, "bytes": f.bytes, "sha256": f.sha256} for f in files],
        "tools": tools,
        "createdAt": (created_at or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
