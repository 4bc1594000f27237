"""Connecting to the pipeline's Redis as the container contract says (docs/processor.md): over TLS, verifying the
server's certificate chain and host name (TLS 1.2 at least), signed in as REDIS_USERNAME with a fresh IAM token for
every new connection (REDIS_AUTH=iam) or, in local runs only, with REDIS_PASSWORD.

Two byte-identical copies, one in each package that connects: processor/cache_connection.py (the processor's image)
and generator/functions/video_jobs/jobs/cache_connection.py (the API function's package). Neither package can import
the other; tests/test_progress.py keeps the copies equal.

TLS handed to redis-py as its settings (`ssl_cert_reqs="required"`, `ssl_check_hostname=True`, TLS 1.2 at least;
redis-py takes no context): the certificate must chain to the system's public certificate authorities (ElastiCache's
do: https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/in-transit-encryption.html, and the image's
`ca-certificates` package holds them) and name REDIS_HOST.
REDIS_CA_FILE (local runs: a test CA) is trusted besides them: redis-py has no setting that drops the system store.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlencode

import redis
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from redis.backoff import NoBackoff
from redis.retry import Retry

# The token: a SigV4-presigned GET of http://<replication group id>/?Action=connect&User=<user id>, service
# `elasticache`, valid 15 minutes, without its scheme (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/auth-iam.html,
# "Connecting"). It is checked when a connection signs in; ElastiCache ends an IAM-authenticated connection after
# 12 hours, and redis-py asks for a new token at every new connection.
TOKEN_SERVICE = "elasticache"
TOKEN_SECONDS = 900
SCHEME = "http://"
AUTH_MODES = ("iam", "password")


class Cache(NamedTuple):
    host: str
    port: int
    user: str  # the ElastiCache user: its id and name are equal (IAM authentication requires it)
    replication_group_id: str  # what an IAM token is made for (not the host name)
    auth: str  # "iam" or, locally, "password"
    password: str
    cafile: str | None  # trusted besides the system's certificate authorities (local runs)


class CacheSettingsError(Exception):
    """The REDIS_* settings cannot be used (the operator's error)."""


def from_environment(environ: Mapping[str, str]) -> Cache | None:
    """The cache the contract names, or None when REDIS_HOST is unset (nothing is read or written then)."""
    if not environ.get("REDIS_HOST"):
        return None
    missing = [n for n in ("REDIS_PORT", "REDIS_USERNAME", "REDIS_AUTH", "REDIS_TLS") if not environ.get(n)]
    if missing:
        raise CacheSettingsError(f"{', '.join(missing)} not set beside REDIS_HOST")
    if environ["REDIS_TLS"] != "true":
        raise CacheSettingsError(f"REDIS_TLS must be true (the cache accepts TLS only), not {environ['REDIS_TLS']!r}")
    auth = environ["REDIS_AUTH"]
    if auth not in AUTH_MODES:
        raise CacheSettingsError(f"REDIS_AUTH must be iam (or password, locally), not {auth!r}")
    if auth == "iam" and not environ.get("REDIS_REPLICATION_GROUP_ID"):
        raise CacheSettingsError("REDIS_AUTH is iam but REDIS_REPLICATION_GROUP_ID (what the token is for) is not set")
    if auth == "password" and not environ.get("REDIS_PASSWORD"):
        raise CacheSettingsError("REDIS_AUTH is password but REDIS_PASSWORD is not set")
    port = environ["REDIS_PORT"]
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise CacheSettingsError(f"REDIS_PORT must be a port number, not {port!r}")
    return Cache(environ["REDIS_HOST"], int(port), environ["REDIS_USERNAME"],
                 environ.get("REDIS_REPLICATION_GROUP_ID", ""), auth, environ.get("REDIS_PASSWORD", ""),
                 environ.get("REDIS_CA_FILE") or None)


def iam_token(replication_group_id: str, user: str, region: str, credentials: Any) -> str:
    """The password of one new connection as `user`: see TOKEN_SERVICE. `credentials` are botocore's (a session's
    get_credentials()); frozen once, so a refresh cannot mix two key pairs into one signature."""
    request = AWSRequest(method="GET", url=f"{SCHEME}{replication_group_id}/?"
                         + urlencode({"Action": "connect", "User": user}))
    SigV4QueryAuth(credentials.get_frozen_credentials(), TOKEN_SERVICE, region, expires=TOKEN_SECONDS).add_auth(
        request)
    return request.url.removeprefix(SCHEME)


class IamToken(redis.CredentialProvider):
    """redis-py asks its credential provider at every new connection: each gets a token of its own."""

    def __init__(self, cache: Cache, session: Any):
        self.cache, self.session = cache, session

    def get_credentials(self) -> tuple[str, str]:
        region = self.session.region_name
        if not region:
            raise CacheSettingsError("no AWS region to sign the Redis token for (AWS_REGION, AWS_DEFAULT_REGION)")
        credentials = self.session.get_credentials()
        if credentials is None:
            raise CacheSettingsError("no AWS credentials to sign the Redis token with")
        return self.cache.user, iam_token(self.cache.replication_group_id, self.cache.user, region, credentials)


def connect(cache: Cache, timeout_seconds: float, session: Any = None) -> redis.Redis:
    """A client that connects at its first command (and again after a failure, with a new token). One try per
    command: a caller that must not wait gives up instead. `session`: a boto3 Session (IAM mode; default a new one).
    No CLIENT SETINFO on connect (driver_info=None): the users may run only the commands they need."""
    if cache.auth == "iam":
        if session is None:
            import boto3  # only where a token is signed

            session = boto3.Session()
        sign_in: dict[str, Any] = {"credential_provider": IamToken(cache, session)}
    else:
        sign_in = {"username": cache.user, "password": cache.password}
    return redis.Redis(
        host=cache.host, port=cache.port, ssl=True, ssl_cert_reqs="required", ssl_check_hostname=True,
        ssl_ca_certs=cache.cafile, ssl_min_version=ssl.TLSVersion.TLSv1_2,
        socket_connect_timeout=timeout_seconds, socket_timeout=timeout_seconds, retry=Retry(NoBackoff(), 0),
        driver_info=None, decode_responses=True, **sign_in)
