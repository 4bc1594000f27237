"""S3: fetch the source (streaming, checksum checked) and upload outputs idempotently.

Every uploaded object carries its SHA-256 as user metadata (`x-amz-meta-sha256`) and as S3's own additional
checksum (S3 verifies the bytes it received:
https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html). An object already under
the prefix with the same size and SHA-256 is not uploaded again: a re-run of an interrupted attempt sends only
what is missing or differs.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from botocore.exceptions import ClientError

from processor.media import InvalidMedia

CHUNK_BYTES = 1024 * 1024
UPLOAD_THREADS = 8
CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".m4s": "video/iso.segment", ".mp4": "video/mp4",
                 ".jpg": "image/jpeg", ".json": "application/json"}


class LocalFile(NamedTuple):
    key: str  # relative to the outputs prefix
    path: Path
    bytes: int
    sha256: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class Fetched(NamedTuple):
    size: int
    version_id: str  # the version read: the job's, or the current one when the job named none
    sha256: str  # of the bytes read


def fetch_source(s3, bucket: str, key: str, version_id: str, expected_sha256: str, destination: Path) -> Fetched:
    """Stream the source's version (the current one when `version_id` is empty) to `destination`, hashing as it
    goes; what was read. InvalidMedia when the bytes are not the file whose checksum the client declared at upload (the
    contract's, else the object's `sha256` metadata; a source placed without either is not checked)."""
    response = s3.get_object(Bucket=bucket, Key=key, **({"VersionId": version_id} if version_id else {}))
    expected_sha256 = expected_sha256 or response.get("Metadata", {}).get("sha256", "")
    digest = hashlib.sha256()
    size = 0
    with destination.open("wb") as sink:
        for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
            digest.update(chunk)
            sink.write(chunk)
            size += len(chunk)
    if expected_sha256 and digest.hexdigest() != expected_sha256.lower():
        raise InvalidMedia(f"the uploaded file's SHA-256 is {digest.hexdigest()}, not the {expected_sha256} declared "
                           "when the upload started: the upload is incomplete or a different file; upload it again")
    return Fetched(size, str(response.get("VersionId") or version_id), digest.hexdigest())


def local_files(root: Path) -> list[LocalFile]:
    """Every file under root, keyed by its path relative to root, in key order."""
    return [LocalFile(p.relative_to(root).as_posix(), p, p.stat().st_size, sha256_of(p))
            for p in sorted(root.rglob("*")) if p.is_file()]


def existing_sizes(s3, bucket: str, prefix: str) -> dict[str, int]:
    """Key (relative to prefix) -> size of every object under prefix."""
    sizes = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            sizes[item["Key"][len(prefix):]] = item["Size"]
    return sizes


def _stored_sha256(s3, bucket: str, key: str) -> str | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get("sha256")
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def upload_file(s3, bucket: str, prefix: str, f: LocalFile) -> None:
    # put_object, not upload_file: outputs are segments and an MP4 far below S3's 5 GiB single-PUT limit for the
    # accepted sources, and one request keeps the checksum S3 verifies a whole-object one.
    with f.path.open("rb") as body:
        s3.put_object(Bucket=bucket, Key=prefix + f.key, Body=body, ContentLength=f.bytes,
                      ContentType=CONTENT_TYPES.get(f.path.suffix, "application/octet-stream"),
                      ChecksumAlgorithm="SHA256", Metadata={"sha256": f.sha256})


def upload_missing(s3, bucket: str, prefix: str, files: list[LocalFile]) -> list[str]:
    """Upload the files S3 does not hold with the same size and SHA-256; the keys uploaded, in key order."""
    sizes = existing_sizes(s3, bucket, prefix)

    def needs_upload(f: LocalFile) -> bool:
        return sizes.get(f.key) != f.bytes or _stored_sha256(s3, bucket, prefix + f.key) != f.sha256

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        todo = [f for f, needed in zip(files, pool.map(needs_upload, files), strict=True) if needed]
        list(pool.map(lambda f: upload_file(s3, bucket, prefix, f), todo))
    return [f.key for f in todo]
