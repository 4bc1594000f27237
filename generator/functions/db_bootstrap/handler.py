"""Database bootstrap: a CloudFormation custom resource that applies versioned SQL migrations as the master user.

Runs in the VPC (the storage tier's database is reachable only from its security group). On Create and Update
it reads the RDS-managed master secret, connects over verified TLS (the packaged RDS certificate authorities, the
endpoint's host name) and applies, in order, every `migrations/NNNN_*.sql`
not yet recorded in `db_bootstrap.applied_migrations` (each in its own transaction with its record, under an
advisory lock: idempotent and safe to re-run). An applied migration whose text changed fails the run: migrations
are append-only. On Delete it changes nothing (the data stays) and reports success. Every outcome is sent to
CloudFormation by a PUT to the request's pre-signed ResponseURL (the cfn-response protocol).

Packaged by deploy.sh (deploytools/package_function.py) with the pinned requirements.txt; pg8000 is pure Python.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import urllib.request
from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The RDS certificate authorities, packaged with the function (provenance: rds-ca-bundle.json; refreshed by
# python -m deploytools.rds_ca_bundle).
RDS_CA_BUNDLE = Path(__file__).resolve().parent / "rds-ca-bundle.pem"
MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# The placeholders a migration may use; their values are checked identifiers from the resource's properties.
PLACEHOLDERS = ("app_role", "app_schema", "database")
LOCK_ID = 0x76_69_64_65_6F  # pg_advisory_xact_lock key: one bootstrap at a time per database
# "The total size of the response body can't exceed 4096 bytes": Custom resource response objects,
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html
RESPONSE_LIMIT = 4096
REASON_CUT = " [cut: the function's log has it whole]"


class BootstrapError(Exception):
    """A problem the stack's events should show (its message goes into the FAILED reason)."""


def migrations(directory: Path = MIGRATIONS) -> list[tuple[int, str, str]]:
    """(version, file name, SQL text) of every migration, ordered by version; versions unique."""
    found = []
    for path in sorted(directory.iterdir()):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise BootstrapError(f"{path.name}: migration files are named NNNN_lowercase_words.sql")
        found.append((int(match.group(1)), path.name, path.read_text(encoding="utf-8")))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise BootstrapError("two migrations share a version number")
    return found


def render(sql: str, values: dict[str, str]) -> str:
    for name in PLACEHOLDERS:
        value = values[name]
        if not IDENTIFIER.match(value):
            raise BootstrapError(f"{name} {value!r} is not a lowercase SQL identifier")
        sql = sql.replace("{" + name + "}", value)
    return sql


def checksum(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def apply_migrations(connection, values: dict[str, str], directory: Path = MIGRATIONS) -> list[str]:
    """Apply what is missing, in order; return the file names applied now (empty: nothing to do).

    `connection` is a pg8000.native.Connection (or anything with its `run(sql, **params)`) as the master user.
    """
    pending = migrations(directory)
    connection.run("CREATE SCHEMA IF NOT EXISTS db_bootstrap")
    connection.run("REVOKE ALL ON SCHEMA db_bootstrap FROM PUBLIC")
    connection.run("CREATE TABLE IF NOT EXISTS db_bootstrap.applied_migrations (version integer PRIMARY KEY, "
                   "name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
    applied_now = []
    for version, name, text in pending:
        sql = render(text, values)
        connection.run("BEGIN")
        try:
            connection.run("SELECT pg_advisory_xact_lock(:lock)", lock=LOCK_ID)
            rows = connection.run("SELECT checksum FROM db_bootstrap.applied_migrations WHERE version = :v",
                                  v=version)
            if rows:
                if rows[0][0] != checksum(sql):
                    raise BootstrapError(f"{name} changed after it was applied; add a new migration instead")
                connection.run("ROLLBACK")
                continue
            connection.run(sql)
            connection.run("INSERT INTO db_bootstrap.applied_migrations (version, name, checksum) "
                           "VALUES (:v, :n, :c)", v=version, n=name, c=checksum(sql))
            connection.run("COMMIT")
        except BaseException:
            connection.run("ROLLBACK")
            raise
        applied_now.append(name)
    return applied_now


def master_credentials(secret_arn: str) -> tuple[str, str]:
    import boto3  # in the Lambda runtime; imported here so that the migration logic needs only pg8000

    value = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"])
    return value["username"], value["password"]


def tls_context(cafile: Path = RDS_CA_BUNDLE) -> ssl.SSLContext:
    """TLS that verifies the server's certificate against the RDS certificate authorities only (not the runtime's
    public ones) and its host name against the endpoint: libpq's sslmode=verify-full. The RDS CAs are in no public
    trust store: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.SSL.html"""
    context = ssl.create_default_context(cafile=str(cafile))  # CERT_REQUIRED, check_hostname, only this bundle
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def open_connection(host: str, port: int, database: str, user: str, password: str, cafile: Path = RDS_CA_BUNDLE):
    """A pg8000 connection over verified TLS (pg8000 sends PostgreSQL's SSLRequest, then checks the certificate
    and that it names `host`)."""
    import pg8000.native

    return pg8000.native.Connection(user, password=password, host=host, port=port, database=database,
                                    ssl_context=tls_context(cafile), timeout=60)


def connect(props: dict):
    user, password = master_credentials(props["MasterSecretArn"])
    return open_connection(props["DatabaseHost"], int(props["DatabasePort"]), props["DatabaseName"], user, password)


def values_of(props: dict) -> dict[str, str]:
    return {"app_role": props["AppRole"], "app_schema": props["AppSchema"], "database": props["DatabaseName"]}


def physical_id(props: dict) -> str:
    """Stable across updates of the same database and role: an update never replaces (and so never deletes)."""
    return f"{props['DatabaseName']}/{props['AppRole']}"


def response_body(event: dict, status: str, reason: str, physical: str, data: dict | None = None) -> bytes:
    """The response as sent, at most RESPONSE_LIMIT bytes: the reason is cut (and says so) until the body fits.
    Measured encoded, as json.dumps escapes each non-ASCII character to 6 or 12 bytes."""
    fields = {
        "Status": status, "Reason": reason, "PhysicalResourceId": physical,
        "StackId": event["StackId"], "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"], "Data": data or {},
    }

    def encoded(kept: int) -> bytes:
        cut = reason if kept >= len(reason) else reason[:kept] + REASON_CUT
        return json.dumps({**fields, "Reason": cut}).encode("utf-8")

    if len(encoded(len(reason))) <= RESPONSE_LIMIT:
        return encoded(len(reason))
    low, high = 0, len(reason) - 1  # the longest prefix whose body fits
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if len(encoded(middle)) <= RESPONSE_LIMIT else (low, middle - 1)
    return encoded(low)


def respond(event: dict, status: str, reason: str, physical: str, data: dict | None = None) -> None:
    body = response_body(event, status, reason, physical, data)
    # The pre-signed URL is signed for an empty content type.
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT",
                                     headers={"Content-Type": "", "Content-Length": str(len(body))})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def handle(event: dict, connect_to=connect) -> tuple[str, dict]:
    """(reason, data) of a successful request; raises on failure."""
    props = event["ResourceProperties"]
    if event["RequestType"] == "Delete":
        return "nothing removed: the role, schema and data stay with the database", {}
    connection = connect_to(props)
    try:
        applied = apply_migrations(connection, values_of(props))
    finally:
        connection.close()
    reason = f"applied {', '.join(applied)}" if applied else "up to date"
    # Named like the properties they echo (the local emulator answers GetAtt with the property of that name).
    return reason, {"AppRole": props["AppRole"], "AppSchema": props["AppSchema"]}


def handler(event: dict, context, connect_to=connect) -> None:
    props = event.get("ResourceProperties", {})
    physical = event.get("PhysicalResourceId") or physical_id(props)
    try:
        reason, data = handle(event, connect_to)
        status = "SUCCESS"
        if event["RequestType"] != "Delete":
            physical = physical_id(props)
    except Exception as error:  # every failure must reach CloudFormation, or the stack waits for an hour
        status, data = "FAILED", {}
        where = f" (log stream {context.log_stream_name})" if getattr(context, "log_stream_name", None) else ""
        reason = f"{type(error).__name__}: {error}{where}"
    print(json.dumps({"RequestType": event.get("RequestType"), "Status": status, "Reason": reason}))
    respond(event, status, reason, physical, data)
