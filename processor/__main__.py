"""`python -m processor [--scratch DIR]`: process the video the container's environment names.

Exit codes (docs/processor.md): 0 done (or already done); 3 invalid media, the user's error, one line on stderr
that the state machine's InvalidMedia notice carries; 1 anything else, retried. Every failure is one line.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from processor import contract, media, pipeline, records, settings

PROGRESS_EVERY_SECONDS = 10


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processor", description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")),
                        help="writable directory for the source and the outputs (default: $TMPDIR or /tmp)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, media.stop_children)
    report: Callable[..., None] | None = None  # writes the attempt's record, once the job is known
    try:
        job = pipeline.job_from_environment(os.environ)
        config = settings.from_environment(os.environ)
        tools = pipeline.find_tools()
        import boto3  # after the checks above: a misconfigured task says so without waiting for boto3

        from processor import progress as progress_in_redis  # redis-py, like boto3, once the job is known

        report = functools.partial(record_attempt, records_opener(boto3), job, datetime.now(timezone.utc))
        report(records.PROCESSING)
        shown = progress_in_redis.writer(os.environ, job.video_id, job.attempt)
        last = [0.0]

        def progress(fraction: float):
            if time.monotonic() - last[0] >= PROGRESS_EVERY_SECONDS:
                last[0] = time.monotonic()
                print(f"processor: {job.video_id} attempt {job.attempt}: encoded {fraction:.0%}", flush=True)
                if shown is not None:
                    shown.write(progress_in_redis.percent_encoded(fraction))

        result = pipeline.process(job, config, boto3.client("s3"), tools, args.scratch, progress)
    except media.InvalidMedia as e:
        print(f"processor: invalid media: {e}", file=sys.stderr, flush=True)
        finish(report, records.INVALID_MEDIA, str(e))
        return contract.EXIT_INVALID_MEDIA
    except media.Interrupted as e:
        print(f"processor: interrupted: {e}", file=sys.stderr, flush=True)
        finish(report, records.INTERRUPTED, str(e))
        return contract.EXIT_FAILED
    except Exception as e:  # one line, not a traceback: the log and the error notice carry it
        print(f"processor: failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        finish(report, records.FAILED, f"{type(e).__name__}: {e}")
        return contract.EXIT_FAILED
    report(records.DONE, finished_at=datetime.now(timezone.utc), manifest=result.manifest,
           manifest_key=job.outputs_prefix + contract.MANIFEST_NAME)
    if shown is not None:
        shown.write(progress_in_redis.DONE)
        shown.close()
    if result.already_done:
        print(f"processor: {job.video_id} attempt {job.attempt} was already done: nothing uploaded", flush=True)
    else:
        print(f"processor: {job.video_id} attempt {job.attempt} done: {len(result.uploaded)} objects uploaded "
              f"under {job.outputs_prefix}", flush=True)
    return contract.EXIT_DONE


def records_opener(boto3):
    """How to open the record's connection, or None (no database named, or its settings unusable: logged)."""
    try:
        database = records.database_from_environment(os.environ)
    except records.RecordsError as e:
        print(f"processor: no record is written: {e}", file=sys.stderr, flush=True)
        return None
    if database is None:
        return None
    return records.opener(database, boto3.client("rds") if database.auth == "iam" else None)


def record_attempt(open_connection, job: pipeline.Job, started: datetime, status: str, **fields) -> None:
    records.record(open_connection, records.row(job, status, started, **fields))


def finish(report: Callable[..., None] | None, status: str, error: str) -> None:
    """The failed attempt's record, when the attempt got far enough to start one."""
    if report is not None:
        report(status, finished_at=datetime.now(timezone.utc), error=error)


if __name__ == "__main__":
    sys.exit(main())
