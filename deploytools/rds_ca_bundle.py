"""The RDS certificate authority bundle the database clients verify the server against: refresh it from AWS.

    python -m deploytools.rds_ca_bundle [--url URL] [--dir DIR]

The bundle lives beside the database bootstrap (generator/functions/db_bootstrap/rds-ca-bundle.pem, packaged with
it) with its provenance (rds-ca-bundle.json: where it came from, when, its SHA-256 and each certificate's SHA-256
fingerprint). AWS publishes the bundle of every region's RDS certificate authorities at SOURCE_URL
(https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.SSL.html). This command downloads it, checks
that every block is a certificate, and rewrites both files; on any failure both files stay as they were. Run it
where the network reaches AWS, then review and commit the diff.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

from generator.errors import PipelineError

SOURCE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
DIRECTORY = Path(__file__).resolve().parent.parent / "generator" / "functions" / "db_bootstrap"
BUNDLE, PROVENANCE = "rds-ca-bundle.pem", "rds-ca-bundle.json"
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s+[A-Za-z0-9+/=\s]+?-----END \1-----")
MAX_BYTES = 2 * 1024 * 1024  # AWS's bundle is about 160 KB


class BundleError(PipelineError):
    """The bundle could not be fetched, or what came back is not a bundle of certificates."""


def certificates(pem: str) -> list[str]:
    """Every PEM certificate of a bundle, in order; anything but certificates (and blank lines) is refused."""
    blocks = list(PEM_BLOCK.finditer(pem))
    if not blocks:
        raise BundleError("no PEM certificate in the bundle")
    rest = PEM_BLOCK.sub("", pem)
    if rest.strip():
        raise BundleError(f"the bundle holds text outside its certificates: {rest.strip()[:80]!r}")
    kinds = {b.group(1) for b in blocks}
    if kinds != {"CERTIFICATE"}:
        raise BundleError(f"the bundle holds {', '.join(sorted(kinds - {'CERTIFICATE'}))}, not only certificates")
    out = []
    for b in blocks:
        try:
            ssl.PEM_cert_to_DER_cert(b.group(0))
        except ValueError as error:
            raise BundleError(f"a certificate of the bundle does not decode: {error}") from None
        out.append(b.group(0))
    return out


def fingerprint(pem_certificate: str) -> str:
    """SHA-256 of the certificate's DER form, as `openssl x509 -fingerprint -sha256` prints it."""
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem_certificate)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def provenance(pem: str, source: str, retrieved: str, note: str) -> dict:
    return {
        "source": source,
        "retrieved": retrieved,
        "sha256": hashlib.sha256(pem.encode("ascii")).hexdigest(),
        "certificates": [fingerprint(c) for c in certificates(pem)],
        "note": note,
    }


def fetch(url: str, timeout: float = 30) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(MAX_BYTES + 1)
    except (urllib.error.URLError, OSError) as error:
        raise BundleError(f"cannot fetch {url}: {getattr(error, 'reason', error)}") from None
    if len(body) > MAX_BYTES:
        raise BundleError(f"{url} answered more than {MAX_BYTES} bytes: not the RDS bundle")
    try:
        return body.decode("ascii")
    except UnicodeDecodeError:
        raise BundleError(f"{url} answered something that is not PEM text") from None


def refresh(url: str = SOURCE_URL, directory: Path = DIRECTORY, today: str | None = None) -> dict:
    """Fetch, check, then write the bundle and its provenance; returns the provenance."""
    pem = fetch(url)
    text = "".join(c.strip() + "\n" for c in certificates(pem))
    record = provenance(text, url, today or datetime.date.today().isoformat(),
                        "fetched by python -m deploytools.rds_ca_bundle; fingerprints as served")
    (directory / BUNDLE).write_text(text, encoding="ascii")
    (directory / PROVENANCE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploytools.rds_ca_bundle", description=__doc__.split("\n")[0])
    p.add_argument("--url", default=SOURCE_URL, help="where to fetch the bundle (default: AWS's global bundle)")
    p.add_argument("--dir", type=Path, default=DIRECTORY, help="where the bundle and its provenance live")
    args = p.parse_args(argv)
    try:
        record = refresh(args.url, args.dir)
    except PipelineError as error:
        print(f"error: {error}; the bundle was left as it was", file=sys.stderr)
        return 2
    print(f"{args.dir / BUNDLE}: {len(record['certificates'])} certificates from {args.url}, sha256 {record['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
