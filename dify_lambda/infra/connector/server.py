"""The serverless connector HTTP server (stdlib ``ThreadingHTTPServer``), routes as in sri.md §3.

Every route checks ``Authorization`` (the raw key, ``Bearer <key>`` tolerated) in constant time.
Launch answers 200 at once and streams chunked ``data:`` lines, flushing each one; the request
body size is checked from ``Content-Length`` before a byte of it is read.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dify_lambda.errors import DifyLambdaError
from dify_lambda.infra.connector import protocol
from dify_lambda.infra.connector.multipart import parse_form
from dify_lambda.infra.connector.service import LaunchService
from dify_lambda.infra.errors import ConnectorError

__all__ = ["ConnectorServer", "make_server"]

logger = logging.getLogger(__name__)

#: Room for the form's text fields, part headers and boundaries on top of the package itself.
FORM_OVERHEAD_BYTES = 64 * 1024


class ConnectorServer(ThreadingHTTPServer):
    """Holds the service and the settings the request handler reads."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], service: LaunchService, *, api_key: str, max_package_bytes: int
    ) -> None:
        if not api_key:
            raise ConnectorError("the connector API key is empty")
        if max_package_bytes <= 0:
            raise ConnectorError("--max-package-mb must be positive")
        super().__init__(address, ConnectorHandler)
        self.service = service
        self.api_key = api_key.encode()
        self.max_package_bytes = max_package_bytes

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log instead of printing to stderr; a client dropping its connection is routine."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            logger.debug("client %s dropped the connection", client_address)
        else:
            logger.exception("error while handling a request from %s", client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


def make_server(
    host: str, port: int, service: LaunchService, *, api_key: str, max_package_bytes: int
) -> ConnectorServer:
    """Bind (``port`` 0 picks a free one); call ``serve_forever()`` on the result."""
    return ConnectorServer((host, port), service, api_key=api_key, max_package_bytes=max_package_bytes)


class ConnectorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ConnectorServer
    server_version = "dify-lambda-connector"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)

    # --- responses -----------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, *, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _error(self, status: int, message: str, *, close: bool = False) -> None:
        self._send(status, protocol.error_body(message), close=close)

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "").strip().encode()
        bare = given[7:].strip() if given[:7].lower() == b"bearer " else given
        # Both comparisons always run: the time taken does not depend on which form was sent.
        raw_ok = hmac.compare_digest(given, self.server.api_key)
        bearer_ok = hmac.compare_digest(bare, self.server.api_key)
        return raw_ok or bearer_ok

    # --- routing -------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        if not self._authorized():
            self._error(401, "unauthorized: missing or wrong Authorization key", close=method == "POST")
            return
        if path == "/ping":
            self._drain()
            self._send(200, protocol.PONG)
        elif path == "/v1/runner/instances" and method == "GET":
            filename = (parse_qs(parts.query).get("filename") or [""])[0]
            status, body = self.server.service.instances(filename)
            self._send(status, body)
        elif path == "/v1/launch" and method == "POST":
            self._launch()
        else:
            self._error(404, f"no route {method} {path}", close=method == "POST")

    def _drain(self) -> None:
        """Read a small request body (ping may come with one) so the connection stays usable."""
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and 0 < int(length) <= 65536:
            self.rfile.read(int(length))

    # --- launch --------------------------------------------------------------------------------

    def _launch(self) -> None:
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or not length_header:
            self._error(411, "launch needs a Content-Length (chunked uploads are not accepted)", close=True)
            return
        if not length_header.isdigit():
            self._error(400, "Content-Length is not a number", close=True)
            return
        length = int(length_header)
        cap = self.server.max_package_bytes + FORM_OVERHEAD_BYTES
        if length > cap:
            self._error(
                413,
                f"launch body is {length} bytes, over the connector's limit of {cap} bytes "
                f"(--max-package-mb {self.server.max_package_bytes // (1024 * 1024)})",
                close=True,
            )
            return
        body = self.rfile.read(length)
        try:
            form = parse_form(self.headers.get("Content-Type", ""), body)
            context = form.files.get("context")
            if context is None:
                raise ConnectorError("form file 'context' (the .difypkg) is missing")
            parsed = self.server.service.check_request(context.filename, form.fields.get("verified"))
            metadata = form.fields.get("metadata")
            if metadata:
                _check_metadata(metadata, parsed.unique_identifier)
        except DifyLambdaError as exc:
            self._error(400, str(exc))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Accel-Buffering", "no")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        verified = form.fields.get("verified", "").strip().lower() == "true"
        try:
            self.server.service.launch(parsed, context.data, verified, self._write_chunk)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            logger.warning("daemon disconnected during the launch of %s", parsed)
            self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _check_metadata(metadata: str, unique_identifier: str) -> None:
    try:
        doc = json.loads(metadata)
    except json.JSONDecodeError:
        raise ConnectorError("form field 'metadata' is not JSON") from None
    if not isinstance(doc, dict):
        raise ConnectorError("form field 'metadata' must be a JSON object")
    given = doc.get("plugin_unique_identifier")
    if given and given != unique_identifier:
        raise ConnectorError("metadata plugin_unique_identifier does not match the context filename")
