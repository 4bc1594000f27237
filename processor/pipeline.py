"""One attempt, end to end: fetch, probe, validate, encode, upload, manifest. `process` is what `python -m
processor` runs; tests call it with moto's S3 and a scratch directory."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from botocore.exceptions import ClientError

from processor import contract, manifest, media, storage
from processor.settings import Settings


class ContractError(Exception):
    """The container's environment does not hold what the contract promises: the pipeline's fault (exit 1)."""


class Job(NamedTuple):
    video_id: str
    attempt: int
    source_bucket: str
    source_key: str
    source_version_id: str
    source_sha256: str
    outputs_bucket: str
    outputs_prefix: str


class Tools(NamedTuple):
    ffmpeg: str
    ffprobe: str


class Result(NamedTuple):
    uploaded: list[str]  # keys relative to the outputs prefix, the manifest last
    manifest: dict
    already_done: bool  # the attempt's manifest was there and whole: nothing encoded or uploaded


def job_from_environment(environ: Mapping[str, str]) -> Job:
    names = (contract.ENV_VIDEO_ID, contract.ENV_ATTEMPT, contract.ENV_SOURCE_BUCKET, contract.ENV_SOURCE_KEY,
             contract.ENV_OUTPUTS_BUCKET, contract.ENV_OUTPUTS_PREFIX)
    # Empty for a video submitted without an upload (POST /videos): the current version, and the checksum its
    # metadata carries, if any (docs/processor.md).
    optional = (contract.ENV_SOURCE_VERSION_ID, contract.ENV_SOURCE_SHA256)
    missing = [n for n in names if not environ.get(n)]
    if missing:
        raise ContractError(f"the container contract's {', '.join(missing)} not set: the state machine passes them "
                            "per execution (docs/processor.md)")
    values = {n: environ.get(n, "") for n in (*names, *optional)}
    try:
        attempt = int(values[contract.ENV_ATTEMPT])
    except ValueError:
        raise ContractError(f"ATTEMPT must be a whole number, not {values[contract.ENV_ATTEMPT]!r}") from None
    job = Job(values[contract.ENV_VIDEO_ID], attempt, values[contract.ENV_SOURCE_BUCKET],
              values[contract.ENV_SOURCE_KEY], values[contract.ENV_SOURCE_VERSION_ID],
              values[contract.ENV_SOURCE_SHA256].lower(), values[contract.ENV_OUTPUTS_BUCKET],
              values[contract.ENV_OUTPUTS_PREFIX])
    if job.outputs_prefix != contract.outputs_prefix(job.video_id, job.attempt):
        raise ContractError(f"OUTPUTS_PREFIX is {job.outputs_prefix!r}, not "
                            f"{contract.outputs_prefix(job.video_id, job.attempt)!r} for this video and attempt")
    return job


def find_tools() -> Tools:
    found = {name: shutil.which(name) for name in ("ffmpeg", "ffprobe")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not found on PATH: the image installs Debian's ffmpeg")
    return Tools(str(found["ffmpeg"]), str(found["ffprobe"]))


def source_record(job: Job) -> dict:
    return {"bucket": job.source_bucket, "key": job.source_key, "versionId": job.source_version_id,
            "sha256": job.source_sha256}


def same_source(recorded: dict, job: Job) -> bool:
    """The manifest was made from this job's source. A job that names no version or checksum (POST /videos, an
    execution started by hand) accepts the version and checksum the attempt read."""
    wanted = source_record(job)
    return all(recorded.get(k) == v for k, v in wanted.items() if v or k in ("bucket", "key"))


def finished_manifest(s3, job: Job) -> dict | None:
    """The attempt's manifest when it is there, valid, for this source, and every object it lists is in S3 at its
    size: the attempt finished before (a re-run after the task's exit was lost), so nothing is to be done."""
    try:
        body = s3.get_object(Bucket=job.outputs_bucket, Key=job.outputs_prefix + contract.MANIFEST_NAME)["Body"]
        document = json.loads(body.read())
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    except ValueError:
        return None
    if manifest.validation_errors(document) or not same_source(document["source"], job):
        return None
    sizes = storage.existing_sizes(s3, job.outputs_bucket, job.outputs_prefix)
    if any(sizes.get(f["key"]) != f["bytes"] for f in document["files"]):
        return None
    return document


def process(job: Job, settings: Settings, s3, tools: Tools, scratch: Path,
            on_progress: Callable[[float], None] | None = None) -> Result:
    done = finished_manifest(s3, job)
    if done is not None:
        return Result([], done, True)
    work = Path(tempfile.mkdtemp(prefix=f"{job.video_id}-{job.attempt}-", dir=scratch))
    try:
        source = work / "source"
        fetched = storage.fetch_source(s3, job.source_bucket, job.source_key, job.source_version_id,
                                       job.source_sha256, source)
        # The manifest names the version and bytes actually read, also where the job named none.
        job = job._replace(source_version_id=fetched.version_id, source_sha256=fetched.sha256)
        info = media.validate(media.probe(source, tools.ffprobe), settings.limits)
        # Demuxing reads the file once at disk speed; a minute per gigabyte is far beyond it.
        data_end = media.last_video_time(source, tools.ffprobe, 60 + source.stat().st_size / 2 ** 30 * 60)
        media.check_complete(info, data_end)

        out = work / "out"
        rungs = media.plan_rungs(settings.ladder, info.width, info.height)
        media.encode(media.encode_command(tools.ffmpeg, source, out, info, rungs, settings), info.duration,
                     on_progress)
        source.unlink()  # scratch holds the source or the outputs at their largest, not both
        media.remux_download(tools.ffmpeg, out, rungs[0], work)
        measured = [media.measure_rung(out, planned, info.has_audio) for planned in rungs]
        (out / media.MASTER_PLAYLIST).write_text(media.master_playlist(measured, info.frame_rate))

        files = storage.local_files(out)
        uploaded = storage.upload_missing(s3, job.outputs_bucket, job.outputs_prefix, files)
        document = manifest.build(video_id=job.video_id, attempt=job.attempt, source=source_record(job),
                                  duration=info.duration, rungs=measured, files=files,
                                  tools={"ffmpeg": media.tool_version(tools.ffmpeg)})
        errors = manifest.validation_errors(document)
        if errors:  # never publish a manifest the API would refuse
            raise RuntimeError(f"the manifest is not valid: {errors[0]}")
        manifest_path = work / contract.MANIFEST_NAME
        manifest_path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        storage.upload_file(s3, job.outputs_bucket, job.outputs_prefix,
                            storage.LocalFile(contract.MANIFEST_NAME, manifest_path, manifest_path.stat().st_size,
                                              storage.sha256_of(manifest_path)))
        return Result([*uploaded, contract.MANIFEST_NAME], document, False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
