"""A TLS echo server standing in for Redis in the client verification tests (issue 25).

The certificate authorities, server certificates and the TLS-terminating proxies live in deploytools/local_tls.py
(the local pipeline runs them too); the tests import them from there. The echo server only completes a handshake and
echoes, which is all a test of the client's verification needs.
"""

from __future__ import annotations

import socket

# Re-exported for tests written before the move (they may still import them from here).
from deploytools.local_tls import Authority, PostgresTlsProxy, TlsProxy, _Server, make_authority, server_context  # noqa: F401


class TlsEchoServer(_Server):
    """Completes the handshake and echoes what it reads (a stand-in for Redis with in-transit encryption)."""

    def serve(self, connection: socket.socket) -> None:
        with self.context.wrap_socket(connection, server_side=True) as secure:
            while data := secure.recv(4096):
                secure.sendall(data)
