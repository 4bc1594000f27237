"""The upload API's presigned URLs against a CHECKING STAND-IN for S3: a wrong byte and an expired URL are refused.

Stand-in, named: `checking_s3` below is this test's own HTTP server, not S3 and not an emulator. moto checks
neither presigned signatures nor their expiry nor x-amz-checksum-sha256; the npm package s3rver (3.7.1, checked
2026) checks SigV4 query signatures and expiry but not the x-amz-checksum-* headers, and would bring Node into the
test command. So the stand-in does, for a presigned PUT, what S3 documents:
- recompute the SigV4 query signature with botocore's signer (S3SigV4QueryAuth's public steps) for the same
  credentials, over the headers the URL signed: a mismatch is 403 SignatureDoesNotMatch;
- refuse a request after X-Amz-Date + X-Amz-Expires: 403 AccessDenied "Request has expired"
  (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html);
- refuse a request carrying an x-amz-* header the signature does not cover: 403 AccessDenied "There were headers
  present in the request which were not signed" with <HeadersNotSigned> naming them. S3 documents that the signed
  (canonical) headers must include "any x-amz-* headers that you plan to include in your request"
  (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html), and clients meet exactly this
  refusal with an unsigned x-amz-checksum-sha256 on a presigned PUT (https://github.com/aws/aws-sdk-js-v3/issues/3906)
  or part (https://github.com/mem9-ai/drive9/pull/48). Public reports differ on whether S3 tolerates an unsigned
  x-amz-content-sha256 on a presigned request; the stand-in refuses it too (stricter than S3 at most), and the
  API's clients never send it;
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


def error(code: str, message: str = "", **detail: str) -> str:
    """An S3 error document."""
    extra = "".join(f"<{name}>{value}</{name}>" for name, value in detail.items())
    return f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}</Error>"


def refusal(headers: dict, path: str, query: list[tuple[str, str]], body: bytes, now: float) -> tuple[int, str]:
    """(status, S3's error document) the stand-in answers a presigned PUT with; (200, "") when it accepts it."""
    params = dict(query)
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return 403, error("AccessDenied")
    signed_at = calendar.timegm(time.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    if now > signed_at + int(params["X-Amz-Expires"]):
        return 403, error("AccessDenied", "Request has expired")
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
        return 403, error("SignatureDoesNotMatch")
    unsigned = sorted(h for h in lowered if h.startswith("x-amz-") and h not in signed)
    if unsigned:
        return 403, error("AccessDenied", "There were headers present in the request which were not signed",
                          HeadersNotSigned=", ".join(unsigned))
    sent = lowered.get("x-amz-checksum-sha256") or params.get("x-amz-checksum-sha256")
    if sent is not None and sent != sha256_base64(body):
        return 400, error("BadDigest")
    return 200, ""


class CheckingS3(BaseHTTPRequestHandler):
    """The stand-in's HTTP side: a presigned PUT is checked by `refusal`; CreateMultipartUpload and ListParts (the
    API's own header-signed calls) are answered with an upload id and no parts, unchecked. Nothing is stored."""

    def do_PUT(self) -> None:
        split = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, document = refusal(dict(self.headers.items()), split.path,
                                   parse_qsl(split.query, keep_blank_values=True), body, time.time())
        self.answer(status, document, ETag=f'"{hashlib.md5(body).hexdigest()}"')

    def do_GET(self) -> None:
        bucket, key = urlsplit(self.path).path.lstrip("/").split("/", 1)
        self.answer(200, f"<ListPartsResult><Bucket>{bucket}</Bucket><Key>{key}</Key><UploadId>stand-in-upload"
                         "</UploadId><IsTruncated>false</IsTruncated></ListPartsResult>")

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


def ask(video_id: str, size: int, resource: str = "/videos/{videoId}/upload", body: dict | None = None,
        expected: int = 201) -> dict:
    event = {"httpMethod": "POST", "resource": resource, "pathParameters": {"videoId": video_id},
             "body": json.dumps(body or {"size": size, "contentType": "video/mp4", "sha256": SHA})}
    response = api.lambda_handler(event, None)
    assert response["statusCode"] == expected, response
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
    status, refused = put(up["url"], wrong, up["headers"])
    assert status == 400 and "BadDigest" in refused, "the signed checksum does not match the bytes"
    status, refused = put(up["url"], wrong, {**up["headers"], "x-amz-checksum-sha256": sha256_base64(wrong)})
    assert status == 403 and "SignatureDoesNotMatch" in refused, "the checksum is signed: a client cannot swap it"
    query = dict(parse_qsl(urlsplit(up["url"]).query))
    assert query["X-Amz-SignedHeaders"].split(";") == sorted({"host", *map(str.lower, up["headers"])}), \
        "the single PUT's headers are exactly what its URL signs"
    time.sleep(3)  # UPLOAD_URL_SECONDS is 2
    status, refused = put(up["url"], SOURCE, up["headers"])
    assert status == 403 and "Request has expired" in refused, "the URL expired"


PARTS = (b"the first part's bytes " * 50, b"the second part's bytes" * 50)


def part_urls(parts: tuple[bytes, ...] = PARTS) -> list[dict]:
    """A multipart upload of two parts (20 MiB at 16 MiB a part; the stand-in does not check part sizes, so each
    part is a few bytes) and the URLs asked for its parts, each naming that part's SHA-256."""
    plan = ask("big-1", 20 * 1024 ** 2)  # above the single-PUT limit: a multipart upload
    assert plan["method"] == "MULTIPART" and plan["partCount"] == 2 and "urls" not in plan, "the plan has no URLs"
    answer = ask("big-1", 0, "/videos/{videoId}/upload/parts", {"parts": [
        {"partNumber": n, "sha256": hashlib.sha256(part).hexdigest()} for n, part in enumerate(parts, 1)]}, 200)
    return answer["urls"]


def test_each_part_url_signs_exactly_the_headers_the_answer_tells_the_client_to_send(upload_api):
    """What botocore 1.44.8 does with ChecksumSHA256 on upload_part: it signs x-amz-checksum-sha256 as a header and
    does not hoist it into the query (where a client sending it as a header too would send it unsigned)."""
    for u in part_urls():
        query = dict(parse_qsl(urlsplit(u["url"]).query))
        assert query["X-Amz-SignedHeaders"].split(";") == sorted({"host", *map(str.lower, u["headers"])}), u
        assert not [k for k in query if k.lower().startswith("x-amz-checksum")], "nothing hoisted into the query"


@pytest.mark.slow  # waits out the URL's expiry (seconds)
def test_a_part_url_takes_its_part_and_the_stand_in_refuses_a_wrong_byte_or_a_late_put(upload_api):
    first = part_urls()[0]
    assert put(first["url"], PARTS[0], first["headers"]) == (200, "")
    status, refused = put(first["url"], PARTS[0][:-1] + b"X", first["headers"])
    assert status == 400 and "BadDigest" in refused, "a part whose bytes differ from its signed checksum"
    time.sleep(3)
    status, refused = put(first["url"], PARTS[0], first["headers"])
    assert status == 403 and "Request has expired" in refused, "the part URL expired"


def test_a_url_asked_for_one_parts_checksum_refuses_another_parts_bytes_with_either_checksum(upload_api):
    first, second = part_urls()
    status, refused = put(first["url"], PARTS[1], first["headers"])
    assert status == 400 and "BadDigest" in refused, "the second part's bytes under the first part's checksum"
    status, refused = put(first["url"], PARTS[1], second["headers"])
    assert status == 403 and "SignatureDoesNotMatch" in refused, "the checksum is signed: a client cannot swap it"
    assert put(second["url"], PARTS[1], second["headers"]) == (200, "")


def test_the_old_part_urls_unsigned_checksum_is_refused_as_s3_refuses_it_and_the_new_one_is_accepted(upload_api):
    """The defect fixed: part URLs were presigned with ChecksumAlgorithm only (signing host and
    x-amz-sdk-checksum-algorithm) and the client sent each part's x-amz-checksum-sha256 unsigned, which S3 refuses
    with HeadersNotSigned. The stand-in refuses that request; the URL the API hands out now is accepted."""
    first = part_urls()[0]
    old_url = api.CLIENTS["s3"].generate_presigned_url("upload_part", Params={
        "Bucket": "media", "Key": "sources/big-1", "UploadId": "stand-in-upload", "PartNumber": 1,
        "ChecksumAlgorithm": "SHA256"}, ExpiresIn=60)
    old_headers = {"x-amz-checksum-sha256": sha256_base64(PARTS[0]), "x-amz-sdk-checksum-algorithm": "SHA256"}
    status, refused = put(old_url, PARTS[0], old_headers)
    assert status == 403 and "<HeadersNotSigned>x-amz-checksum-sha256</HeadersNotSigned>" in refused, refused
    assert put(first["url"], PARTS[0], first["headers"]) == (200, "")
    status, refused = put(first["url"], PARTS[0], {**first["headers"], "x-amz-storage-class": "GLACIER"})
    assert status == 403 and "HeadersNotSigned" in refused, "no x-amz-* header rides along unsigned"


def test_part_urls_are_refused_for_parts_outside_the_upload_and_for_no_open_upload(upload_api):
    ask("big-1", 20 * 1024 ** 2)
    answer = ask("big-1", 0, "/videos/{videoId}/upload/parts", {"parts": [{"partNumber": 3, "sha256": SHA}]}, 400)
    assert "partNumber must be 1 to 2" in answer["message"]
    answer = ask("none-open", 0, "/videos/{videoId}/upload/parts", {"parts": [{"partNumber": 1, "sha256": SHA}]},
                 404)
    assert "no upload of none-open is open" in answer["message"]


def test_the_stand_in_refuses_a_url_signed_with_other_credentials():
    """The stand-in's own check: without it, 'accepted' above would prove nothing about the signature."""
    url = boto3.client("s3", region_name=REGION, endpoint_url="http://127.0.0.1:9", aws_access_key_id="OTHER",
                       aws_secret_access_key="other", config=Config(signature_version="s3v4",
                                                                     s3={"addressing_style": "path"})
                       ).generate_presigned_url("put_object", Params={"Bucket": "media", "Key": "k"}, ExpiresIn=60)
    split = urlsplit(url)
    status, refused = refusal({"Host": split.netloc}, split.path, parse_qsl(split.query), b"", time.time())
    assert status == 403 and "SignatureDoesNotMatch" in refused
