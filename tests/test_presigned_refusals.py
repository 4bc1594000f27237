"""The upload API's presigned URLs against a CHECKING STAND-IN for S3: a wrong byte and an expired URL are refused.

Stand-in, named: `checking_s3` below is this test's own HTTP server, not S3 and not an emulator. moto checks
neither presigned signatures nor their expiry nor x-amz-checksum-sha256; the npm package s3rver (3.7.1, checked
2026) checks SigV4 query signatures and expiry but not the x-amz-checksum-* headers, and would bring Node into the
test command. So the stand-in does, for a presigned PUT, what S3 documents:
- recompute the SigV4 query signature with botocore's signer (S3SigV4QueryAuth's public steps) for the same
  credentials, over the headers the URL signed: a mismatch is 403 SignatureDoesNotMatch;
- refuse a request after X-Amz-Date + X-Amz-Expires: 403 AccessDenied "Request has expired"
  (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html);
- refuse a body whose SHA-256 (base64) differs from the x-amz-checksum-sha256 sent: 400 BadDigest
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html).
What these tests prove is that the URLs and headers the API hands out carry what S3 needs to refuse (a signed
checksum, a lifetime); that S3 itself refuses is AWS's documented behaviour, not observed here.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import boto3
import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from jobs_harness import api, emulated_account, fresh_jobs, table_properties

REGION = "eu-west-1"
CREDENTIALS = Credentials("AKIDSTANDIN", "stand-in-secret")
SOURCE = b"a few bytes of a video" * 100
SHA = hashlib.sha256(SOURCE).hexdigest()


def sha256_base64(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def refusal(headers: dict, path: str, query: list[tuple[str, str]], body: bytes, now: float) -> tuple[int, str]:
    """(status, S3 error code) the stand-in answers a presigned PUT with; (200, "") when it accepts it."""
    params = dict(query)
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return 403, "AccessDenied"
    signed_at = calendar.timegm(time.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    if now > signed_at + int(params["X-Amz-Expires"]):
        return 403, "AccessDenied"  # S3's message: Request has expired
    lowered = {k.lower(): v for k, v in headers.items()}
    signed = params["X-Amz-SignedHeaders"].split(";")
    unsigned_url = urlunsplit(("http", lowered["host"], path,
                               urlencode([(k, v) for k, v in query if k != "X-Amz-Signature"]), ""))
    request = AWSRequest(method="PUT", url=unsigned_url, headers={h: lowered[h] for h in signed if h in lowered})
    request.context["timestamp"] = params["X-Amz-Date"]
    scope_region = params["X-Amz-Credential"].split("/")[2]
    signer = S3SigV4QueryAuth(CREDENTIALS, "s3", scope_region, expires=int(params["X-Amz-Expires"]))
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if any(h not in lowered for h in signed) or expected != params["X-Amz-Signature"]:
        return 403, "SignatureDoesNotMatch"
    sent = lowered.get("x-amz-checksum-sha256") or params.get("x-amz-checksum-sha256")
    if sent is not None and sent != sha256_base64(body):
        return 400, "BadDigest"
    return 200, ""


class CheckingS3(BaseHTTPRequestHandler):
    """The stand-in's HTTP side: a presigned PUT is checked by `refusal`; CreateMultipartUpload (the API's own
    header-signed call) is answered with an upload id, unchecked. Nothing is stored."""

    def do_PUT(self) -> None:
        split = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, code = refusal(dict(self.headers.items()), split.path, parse_qsl(split.query, keep_blank_values=True),
                               body, time.time())
        etag = f'"{hashlib.md5(body).hexdigest()}"'
        self.answer(status, f"<Error><Code>{code}</Code></Error>" if code else "", ETag=etag)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        bucket, key = urlsplit(self.path).path.lstrip("/").split("/", 1)
        self.answer(200, f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                         "<UploadId>stand-in-upload</UploadId></InitiateMultipartUploadResult>")

    def answer(self, status: int, xml: str, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(xml)))
        self.end_headers()
        self.wfile.write(xml.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def checking_s3():
    server = ThreadingHTTPServer(("127.0.0.1", 0), CheckingS3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def upload_api(templates, checking_s3, monkeypatch):
    """The upload API with its job table in moto and its S3 client pointed at the stand-in (same credentials)."""
    with emulated_account(REGION):
        fresh_jobs(monkeypatch, table_properties(templates), REGION, cap=1)
        for name, value in (("MEDIA_BUCKET", "media"), ("UPLOAD_MAX_BYTES", str(2 ** 30)),
                            ("UPLOAD_CONTENT_TYPES", "video/mp4"), ("UPLOAD_URL_SECONDS", "2"),
                            ("UPLOAD_SINGLE_PUT_MAX_BYTES", str(len(SOURCE)))):
            monkeypatch.setenv(name, value)
        api.CLIENTS["s3"] = boto3.client(
            "s3", region_name=REGION, endpoint_url=checking_s3, aws_access_key_id=CREDENTIALS.access_key,
            aws_secret_access_key=CREDENTIALS.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        yield


def ask(video_id: str, size: int) -> dict:
    event = {"httpMethod": "POST", "resource": "/videos/{videoId}/upload", "pathParameters": {"videoId": video_id},
             "body": f'{{"size": {size}, "contentType": "video/mp4", "sha256": "{SHA}"}}'}
    response = api.lambda_handler(event, None)
    assert response["statusCode"] == 201, response
    return json.loads(response["body"])


def put(url: str, body: bytes, headers: dict) -> tuple[int, str]:
    """A real HTTP PUT (urllib: nothing of moto's in the way), as a client pastes it."""
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, ""
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


@pytest.mark.slow  # waits out the URL's expiry (seconds)
def test_the_single_put_url_takes_the_right_bytes_and_the_stand_in_refuses_a_wrong_byte_or_a_late_put(upload_api):
    up = ask("clip-1", len(SOURCE))
    assert up["method"] == "PUT"
    assert put(up["url"], SOURCE, up["headers"]) == (200, "")
    wrong = SOURCE[:-1] + b"X"
    status, error = put(up["url"], wrong, up["headers"])
    assert status == 400 and "BadDigest" in error, "the signed checksum does not match the bytes"
    status, error = put(up["url"], wrong, {**up["headers"], "x-amz-checksum-sha256": sha256_base64(wrong)})
    assert status == 403 and "SignatureDoesNotMatch" in error, "the checksum is signed: a client cannot swap it"
    time.sleep(3)  # UPLOAD_URL_SECONDS is 2
    status, error = put(up["url"], SOURCE, up["headers"])
    assert status == 403 and "AccessDenied" in error, "the URL expired"


def part_plan() -> tuple[str, bytes, dict]:
    up = ask("big-1", len(SOURCE) + 1)  # above the single-PUT limit: a multipart upload
    assert up["method"] == "MULTIPART" and up["partHeaders"] == ["x-amz-checksum-sha256"]
    part = SOURCE[: up["partSize"]]
    return up["urls"][0]["url"], part, {"x-amz-checksum-sha256": sha256_base64(part), **up["partSignedHeaders"]}


@pytest.mark.slow  # waits out the URL's expiry (seconds)
def test_a_part_url_takes_its_part_with_its_checksum_and_the_stand_in_refuses_a_wrong_byte_or_a_late_put(
        upload_api):
    url, part, headers = part_plan()
    assert put(url, part, headers) == (200, "")
    status, error = put(url, part[:-1] + b"X", headers)
    assert status == 400 and "BadDigest" in error, "a part whose bytes differ from its checksum"
    time.sleep(3)
    status, error = put(url, part, headers)
    assert status == 403 and "AccessDenied" in error, "the part URL expired"


def test_a_client_that_sends_exactly_the_headers_the_api_names_is_accepted_and_one_that_leaves_one_out_is_not(
        upload_api):
    """Found with this stand-in: a part URL signs x-amz-sdk-checksum-algorithm, which the answer did not name, so a
    client following it was refused (SignatureDoesNotMatch). The answer now lists it in partSignedHeaders."""
    url, part, headers = part_plan()
    assert put(url, part, headers) == (200, "")
    status, error = put(url, part, {k: v for k, v in headers.items() if k != "x-amz-sdk-checksum-algorithm"})
    assert status == 403 and "SignatureDoesNotMatch" in error


def test_the_stand_in_refuses_a_url_signed_with_other_credentials():
    """The stand-in's own check: without it, 'accepted' above would prove nothing about the signature."""
    url = boto3.client("s3", region_name=REGION, endpoint_url="http://127.0.0.1:9", aws_access_key_id="OTHER",
                       aws_secret_access_key="other", config=Config(signature_version="s3v4",
                                                                     s3={"addressing_style": "path"})
                       ).generate_presigned_url("put_object", Params={"Bucket": "media", "Key": "k"}, ExpiresIn=60)
    split = urlsplit(url)
    status, code = refusal({"Host": split.netloc}, split.path, parse_qsl(split.query), b"", time.time())
    assert (status, code) == (403, "SignatureDoesNotMatch")
