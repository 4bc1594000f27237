"""The processor's record of an attempt: one row of `processing_runs` (migration 0003), keyed by video and attempt,
written when the attempt starts and again when it ends.

The job table (DynamoDB) is the authority for a video's status; this row is the processor's report (source, duration,
renditions, manifest, times, error). So a database that cannot be reached must not fail the encode: each write is
tried a few times within seconds, then one line is logged and the attempt goes on. Failing the task instead would
throw away a finished encode and retry it for a record nobody acts on. Both writes carry the whole row (update, else
insert), so an end written after a lost start still makes the row whole.

Sign-in as the contract says (docs/processor.md): `DATABASE_AUTH=iam`, a fresh IAM token (boto3's
generate_db_auth_token, 15 minutes) per connection, over TLS verified like libpq's sslmode=verify-full against the
RDS certificate authorities the image carries (`rds-ca-bundle.pem`, a copy of
generator/functions/db_bootstrap/rds-ca-bundle.pem; tests keep them equal). One connection at a time, held only for
one statement: none is open during the encode. `DATABASE_AUTH=password` with `DATABASE_PASSWORD` is for local runs
only (the embedded PostgreSQL has no IAM); `DATABASE_CA_FILE` replaces the bundle there (a test CA).
"""

from __future__ import annotations

import json
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

RDS_CA_BUNDLE = Path(__file__).with_name("rds-ca-bundle.pem")
TABLE = "processing_runs"
CONNECT_TIMEOUT_SECONDS = 5
# Three tries about 7 s apart at most: an outage longer than that is not waited out (SIGTERM leaves two minutes,
# and the row is a report, not the authority).
RETRY_DELAYS_SECONDS = (1.0, 3.0)

# The row's status values (the migration's CHECK).
PROCESSING = "processing"
DONE = "done"
INVALID_MEDIA = "invalid_media"
INTERRUPTED = "interrupted"
FAILED = "failed"
MAX_ERROR_CHARS = 2000


class Database(NamedTuple):
    host: str
    port: int
    name: str
    user: str
    auth: str  # "iam" or, locally, "password"
    password: str
    cafile: Path


class RecordsError(Exception):
    """The DATABASE_* settings cannot be used (the operator's error: logged, the attempt goes on)."""


def database_from_environment(environ: Mapping[str, str]) -> Database | None:
    """The database the contract names, or None when DATABASE_HOST is unset (a run with no database: the local
    pipeline without one, the media tests): then nothing is recorded."""
    if not environ.get("DATABASE_HOST"):
        return None
    missing = [n for n in ("DATABASE_PORT", "DATABASE_NAME", "DATABASE_USERNAME", "DATABASE_AUTH")
               if not environ.get(n)]
    if missing:
        raise RecordsError(f"{', '.join(missing)} not set beside DATABASE_HOST")
    auth = environ["DATABASE_AUTH"]
    if auth not in ("iam", "password"):
        raise RecordsError(f"DATABASE_AUTH must be iam (or password, locally), not {auth!r}")
    if auth == "password" and not environ.get("DATABASE_PASSWORD"):
        raise RecordsError("DATABASE_AUTH is password but DATABASE_PASSWORD is not set")
    try:
        port = int(environ["DATABASE_PORT"])
    except ValueError:
        raise RecordsError(f"DATABASE_PORT must be a number, not {environ['DATABASE_PORT']!r}") from None
    return Database(environ["DATABASE_HOST"], port, environ["DATABASE_NAME"], environ["DATABASE_USERNAME"], auth,
                    environ.get("DATABASE_PASSWORD", ""), Path(environ.get("DATABASE_CA_FILE") or RDS_CA_BUNDLE))


def tls_context(cafile: Path = RDS_CA_BUNDLE) -> ssl.SSLContext:
    """The server's certificate must chain to `cafile` only (not the system's public CAs) and name the host:
    sslmode=verify-full. An IAM token sent to an impostor could be replayed for its 15 minutes.
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.SSL.html"""
    context = ssl.create_default_context(cafile=str(cafile))  # CERT_REQUIRED and check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def iam_token(database: Database, rds_client) -> str:
    """The password for one new connection: a presigned `connect` request for the user, valid 15 minutes.
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDSandDBInstances.IAMDBAuth.Connecting.html"""
    return rds_client.generate_db_auth_token(DBHostname=database.host, Port=database.port,
                                             DBUsername=database.user)


def opener(database: Database, rds_client=None) -> Callable[[], Any]:
    """A function that opens one verified connection as the processor's role."""
    import pg8000.native

    def open_connection():
        password = database.password if database.auth == "password" else iam_token(database, rds_client)
        return pg8000.native.Connection(database.user, password=password, host=database.host, port=database.port,
                                        database=database.name, ssl_context=tls_context(database.cafile),
                                        timeout=CONNECT_TIMEOUT_SECONDS)

    return open_connection


COLUMNS = ("video_id", "attempt", "status", "source_version_id", "source_sha256", "duration_seconds", "renditions",
           "manifest_key", "started_at", "finished_at", "error")
# Update, else insert: INSERT ... ON CONFLICT DO UPDATE would need SELECT on every column it sets, and the role may
# read only the key (migration 0003).
UPDATE = (f"UPDATE {TABLE} SET " + ", ".join(f"{c} = :{c}" for c in COLUMNS[2:] if c != "renditions")
          + ", renditions = CAST(:renditions AS jsonb) WHERE video_id = :video_id AND attempt = :attempt")
INSERT = (f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ("
          + ", ".join("CAST(:renditions AS jsonb)" if c == "renditions" else f":{c}" for c in COLUMNS) + ")")


def write_row(connection, values: dict) -> None:
    """One row per video and attempt, whole after either write."""
    connection.run(UPDATE, **values)
    if connection.row_count == 0:
        connection.run(INSERT, **values)


def row(job, status: str, started_at: datetime, finished_at: datetime | None = None,
        manifest: dict | None = None, manifest_key: str | None = None, error: str | None = None) -> dict:
    """The row's values; `job` a pipeline.Job, `manifest` the attempt's manifest document once there is one."""
    return {
        "video_id": job.video_id, "attempt": job.attempt, "status": status,
        "source_version_id": job.source_version_id, "source_sha256": job.source_sha256,
        "duration_seconds": manifest["durationSeconds"] if manifest else None,
        "renditions": json.dumps(manifest["renditions"], sort_keys=True) if manifest else None,
        "manifest_key": manifest_key, "started_at": started_at, "finished_at": finished_at,
        "error": error[:MAX_ERROR_CHARS] if error else None,
    }


def _transient(error: Exception) -> bool:
    """Worth another try: the server unreachable, a dropped connection, a timeout (a refused statement is not)."""
    import pg8000.native

    if isinstance(error, ssl.SSLCertVerificationError):
        return False  # the wrong server: trying again sends nothing better
    return isinstance(error, (OSError, pg8000.native.InterfaceError))


def record(open_connection: Callable[[], Any] | None, values: dict, *, sleep: Callable[[float], None] = time.sleep,
           log=None) -> bool:
    """Write `values` (see `row`), tried up to 1 + len(RETRY_DELAYS_SECONDS) times while the failure is transient.
    Never raises: False (and one line on stderr) when the row was not written."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if open_connection is None:
        return False
    delays = [*RETRY_DELAYS_SECONDS, None]
    for delay in delays:
        try:
            connection = open_connection()
            try:
                write_row(connection, values)
            finally:
                connection.close()
            return True
        except Exception as e:  # the record is a report: no failure of it may end the attempt
            if delay is None or not _transient(e):
                log(f"processor: {values['video_id']} attempt {values['attempt']}: the {values['status']} record "
                    f"was not written ({type(e).__name__}: {e}); the job table stays the video's status")
                return False
            sleep(delay)
    return False
