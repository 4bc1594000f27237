"""The RDS certificate authority bundle (issue 25): packaged with the database bootstrap, recorded with its source
and checksum, the only trust the bootstrap's TLS context has; and the command that refreshes it, run against a
local HTTP server standing in for AWS's URL (this machine cannot reach it)."""

from __future__ import annotations

import hashlib
import http.server
import json
import ssl
import threading

import pytest

from deploytools import package_function, rds_ca_bundle
from deploytools.local_tls import make_authority
from generator import config
from generator.functions.db_bootstrap import handler as bootstrap

BUNDLE = rds_ca_bundle.DIRECTORY / rds_ca_bundle.BUNDLE
PROVENANCE = json.loads((rds_ca_bundle.DIRECTORY / rds_ca_bundle.PROVENANCE).read_text())


def test_the_bundle_is_what_its_provenance_records():
    """An edited or swapped bundle no longer matches its recorded checksum and fingerprints."""
    pem = BUNDLE.read_text(encoding="ascii")
    assert hashlib.sha256(pem.encode("ascii")).hexdigest() == PROVENANCE["sha256"]
    assert [rds_ca_bundle.fingerprint(c) for c in rds_ca_bundle.certificates(pem)] == PROVENANCE["certificates"]
    assert PROVENANCE["source"] == "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
    if "copied_from" in PROVENANCE:  # a third-party copy says so, and that nobody checked it against AWS
        assert "unverified" in PROVENANCE["note"]


def test_the_bundle_holds_the_pipeline_regions_certificate_authorities():
    """RDS signs each region's server certificates with that region's CAs (three key types); the default region's
    must be loaded, or no connection there verifies."""
    names = {value for ca in _loaded(bootstrap.tls_context()) for (key, value), in ca["subject"]
             if key == "commonName"}
    for generation in ("RSA2048 G1", "RSA4096 G1", "ECC384 G1"):
        assert f"Amazon RDS {config.DEFAULT_REGION} Root CA {generation}" in names, generation


def _loaded(context: ssl.SSLContext) -> list[dict]:
    return context.get_ca_certs()


def test_the_bootstraps_tls_verifies_the_certificate_and_host_against_the_rds_cas_only():
    """verify-full: today's code (CERT_NONE, no host check) fails here."""
    context = bootstrap.tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True
    loaded = {json.dumps(ca, sort_keys=True) for ca in _loaded(context)}
    assert loaded and all("Amazon RDS" in json.dumps(ca["subject"]) for ca in _loaded(context)), (
        "no public CA: anyone could obtain a certificate for a name under one")
    assert len(loaded) == len(set(PROVENANCE["certificates"]))


def test_the_bundle_is_packaged_with_the_function():
    names = [name for name, _ in package_function.files(rds_ca_bundle.DIRECTORY)]
    assert bootstrap.RDS_CA_BUNDLE.name in names and bootstrap.RDS_CA_BUNDLE.parent == rds_ca_bundle.DIRECTORY


# --------------------------------------------------------------------------------------------------
# python -m deploytools.rds_ca_bundle, against a stand-in for AWS's URL


@pytest.fixture
def serve():
    """serve(body) -> a local URL answering GET with body."""
    servers = []

    def start(body: bytes) -> str:
        class Answer(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        httpd = http.server.HTTPServer(("127.0.0.1", 0), Answer)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/global-bundle.pem"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_refresh_writes_the_bundle_and_its_provenance(serve, tmp_path):
    cas = [make_authority(tmp_path, name).pem.read_text() for name in ("Stand-in RDS CA 1", "Stand-in RDS CA 2")]
    url = serve("\n".join(cas).encode())
    out = tmp_path / "out"
    out.mkdir()
    assert rds_ca_bundle.main(["--url", url, "--dir", str(out)]) == 0
    pem = (out / rds_ca_bundle.BUNDLE).read_text()
    record = json.loads((out / rds_ca_bundle.PROVENANCE).read_text())
    assert record["source"] == url and record["sha256"] == hashlib.sha256(pem.encode()).hexdigest()
    assert record["certificates"] == [rds_ca_bundle.fingerprint(c) for c in cas]
    context = ssl.create_default_context(cafile=str(out / rds_ca_bundle.BUNDLE))
    assert len(context.get_ca_certs()) == 2


@pytest.mark.parametrize("body, message", [
    (b"<html>captive portal</html>", "no PEM certificate"),
    (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not only certificates"),
])
def test_refresh_refuses_what_is_not_a_bundle_and_keeps_the_old_one(serve, tmp_path, capsys, body, message):
    (tmp_path / rds_ca_bundle.BUNDLE).write_text("old\n")
    assert rds_ca_bundle.main(["--url", serve(body), "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "left as it was" in err and "Traceback" not in err
    assert (tmp_path / rds_ca_bundle.BUNDLE).read_text() == "old\n"
    assert not (tmp_path / rds_ca_bundle.PROVENANCE).exists()


def test_refresh_reports_an_unreachable_source_in_one_line(tmp_path, capsys):
    assert rds_ca_bundle.main(["--url", "http://127.0.0.1:9/global-bundle.pem", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot fetch http://127.0.0.1:9/") and err.count("\n") == 1
