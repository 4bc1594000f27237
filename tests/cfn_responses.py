"""A stand-in for the pre-signed S3 URL to which CloudFormation has a custom resource PUT its response: an HTTP
server on localhost that records each PUT (path with query, headers, JSON body), for the custom resources' tests."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from typing import NamedTuple


class Response(NamedTuple):
    path: str
    headers: dict
    body: dict


@contextlib.contextmanager
def response_server(received: list[Response], query: str = "") -> Iterator[str]:
    """The URL to hand the handler as ResponseURL; what it PUTs is appended to `received` (emptied first)."""
    received.clear()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(Response(self.path, dict(self.headers), json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/response{query}"
    finally:
        httpd.shutdown()
        httpd.server_close()
