"""The serverless connector HTTP server (stdlib ``ThreadingHTTPServer``), routes as in docs/connector.md.

Every route checks ``Authorization`` (the raw key, ``Bearer <key>`` tolerated) in constant time;
the key is never read from the query string, and no log line carries a query string. Launch
answers 200 at once and streams chunked ``data:`` lines, flushing each one; the request body size
is checked from ``Content-Length`` before a byte of it is read.

Every connection has a read timeout: each receive waits at most ``read_timeout_s``, and a whole
request (line, headers and body) must arrive within ``read_timeout_s`` too, so a client trickling
bytes cannot hold a thread. The stdlib server is kept on purpose: uvicorn has no deadline on
receiving a request either (only a keep-alive timeout reset by every byte), the launch work is
blocking boto3 and builder code that would run in threads anyway, and the daemon-facing protocol
stays byte for byte what it was.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import signal
import socket
import sys
import threading
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dify_lambda.errors import DifyLambdaError
from dify_lambda.handlers.chunked import LAST_CHUNK, encode_chunk
from dify_lambda.infra.connector import protocol
from dify_lambda.infra.connector.multipart import parse_form
from dify_lambda.infra.connector.service import LaunchService
from dify_lambda.infra.errors import ConnectorError
from dify_lambda.wire import MIB

__all__ = ["ConnectorServer", "make_server", "serve_until_signalled"]

logger = logging.getLogger(__name__)

#: Room for the form's text fields, part headers and boundaries on top of the package itself.
FORM_OVERHEAD_BYTES = 64 * 1024
#: Default time to receive one whole request (and the longest wait for any one receive).
DEFAULT_READ_TIMEOUT_S = 30.0
#: ``listen()`` backlog: the stdlib default of 5 resets connections under a burst.
LISTEN_BACKLOG = 128
#: Connections served at once (one thread each). More are answered 503 at once, so a flood of idle
#: connections cannot pile up threads; the daemon retries a failed launch.
MAX_CONNECTIONS = 64
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
)
_QUERY = re.compile(r"\?[^\s'\"]*")


def _plain_number(value: str) -> bool:
    """ASCII digits only: ``str.isdigit`` alone accepts "²", which ``int()`` then refuses."""
    value = value.strip()
    return value.isascii() and value.isdigit()


def _without_query(text: str) -> str:
    """``text`` with every ``?query`` part cut, so no log line carries a query string."""
    return _QUERY.sub("", text)


class ConnectorServer(ThreadingHTTPServer):
    """Holds the service and the settings the request handler reads."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        service: LaunchService,
        *,
        api_key: str,
        max_package_bytes: int,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        if not api_key:
            raise ConnectorError("the connector API key is empty")
        if max_package_bytes <= 0:
            raise ConnectorError("--max-package-mb must be positive")
        if read_timeout_s <= 0:
            raise ConnectorError("--read-timeout must be positive")
        if max_connections <= 0:
            raise ConnectorError("the connection cap must be positive")
        super().__init__(address, ConnectorHandler)
        self._slots = threading.BoundedSemaphore(max_connections)
        self.service = service
        self.api_key = api_key.encode()
        self.max_package_bytes = max_package_bytes
        self.read_timeout_s = read_timeout_s

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse_busy(request, client_address)
            return
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse_busy(self, request: socket.socket, client_address: Any) -> None:
        """503 without reading the request (this runs on the accepting thread: it must not wait)."""
        logger.warning("refused a connection from %s: all connection slots are busy", client_address[0])
        body = protocol.error_body("busy: too many open connections; retry shortly")
        with contextlib.suppress(OSError):
            request.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                request.recv(65536)  # what already arrived, so closing does not reset the answer away
            request.sendall(_BUSY % (len(body), body))
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log instead of printing to stderr; a client dropping its connection is routine."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # reset, broken pipe, read timeout
            logger.debug("client %s dropped the connection or timed out", client_address)
        else:
            logger.exception("error while handling a request from %s", client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


def make_server(
    host: str,
    port: int,
    service: LaunchService,
    *,
    api_key: str,
    max_package_bytes: int,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
) -> ConnectorServer:
    """Bind (``port`` 0 picks a free one); call ``serve_forever()`` on the result."""
    return ConnectorServer(
        (host, port),
        service,
        api_key=api_key,
        max_package_bytes=max_package_bytes,
        read_timeout_s=read_timeout_s,
        max_connections=max_connections,
    )


def serve_until_signalled(
    server: ConnectorServer,
    *,
    signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    drain_timeout_s: float | None = None,
) -> bool:
    """Serve until one of ``signals``; then stop accepting, cancel the launches in flight and wait.

    Cancelled launches roll back at their next step and end their streams with a ``failed`` line;
    a launch whose deploy already finished completes. Must run in the main thread (signal
    handlers). Returns True when every launch was finished or rolled back in time.
    """
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            # shutdown() waits for serve_forever(), which runs in this very thread: ask from another.
            threading.Thread(target=server.shutdown, name="connector-shutdown", daemon=True).start()

    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    in_flight = server.service.stop()
    server.server_close()
    logger.info("stopping: %d launch(es) in flight are being finished or rolled back", in_flight)
    done = server.service.wait_idle(timeout=drain_timeout_s)
    if not done:
        logger.warning("stopping with launches still running after %s s", drain_timeout_s)
    return done


class ConnectorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ConnectorServer
    server_version = "dify-lambda-connector"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # The longest wait for any one receive (the stdlib reads ``timeout`` only as a class attribute).
        self.connection.settimeout(self.server.read_timeout_s)
        self._deadline: threading.Timer | None = None

    def handle_one_request(self) -> None:
        # The whole request (line, headers, body) must arrive in time, however slowly it trickles.
        self._deadline = threading.Timer(self.server.read_timeout_s, self._expire)
        self._deadline.daemon = True
        self._deadline.start()
        try:
            super().handle_one_request()
        finally:
            self._received()

    def _received(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        logger.info(
            "%s: request not received within %.0f s; connection closed",
            self.address_string(),
            self.server.read_timeout_s,
        )
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        # Never a query string (a key or a value a client put there), whatever the format says.
        logger.info("%s %s", self.address_string(), _without_query(format % args))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A malformed request: one JSON line naming the status, never the request line it quoted."""
        status = HTTPStatus(code)
        self.request_version = self.protocol_version  # unset when the request line was unreadable
        self.log_message("refused a malformed request: %d %s", status.value, status.phrase)
        self.close_connection = True
        self.send_response_only(status.value)
        body = protocol.error_body(f"malformed request: {status.phrase}")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status.value >= 200:
            self.wfile.write(body)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        path = urlsplit(getattr(self, "path", "") or "").path  # unset when the request line was bad
        if path.rstrip("/") == "/v1/launch":
            return  # a launch gets one line with its outcome instead
        status = getattr(code, "value", code)
        self.log_message("%s %s %s", getattr(self, "command", None) or "-", path or "-", status)

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
        launch = path == "/v1/launch" and method == "POST"
        if not self._authorized():
            # The key is only ever read from this header, never from the query string.
            self._error(401, "unauthorized: missing or wrong Authorization key", close=method == "POST")
            if launch:
                self._log_launch("-", "refused: unauthorized")
            return
        if launch:
            ident, outcome = self._launch()
            if outcome:
                self._log_launch(ident, outcome)
            return
        if not self._drain():
            return
        self._received()
        if path == "/ping":
            self._send(200, protocol.PONG)
        elif path == "/v1/runner/instances" and method == "GET":
            filename = (parse_qs(parts.query).get("filename") or [""])[0]
            status, body = self.server.service.instances(filename)
            self._send(status, body)
        else:
            self._error(404, "no such route: the connector serves /ping, /v1/runner/instances, /v1/launch")

    def _log_launch(self, ident: str, outcome: str) -> None:
        logger.info("%s launch %s: %s", self.address_string(), ident, outcome)

    def _content_length(self) -> int | None:
        """The declared body length; None (after a 400 answer) when it is not a plain number."""
        value = self.headers.get("Content-Length")
        if value is None:
            return 0
        if not _plain_number(value):
            self._error(400, "Content-Length is not a non-negative integer", close=True)
            return None
        return int(value)

    def _drain(self) -> bool:
        """Read a small request body (ping may come with one) so the connection stays usable."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # answer, then close instead of reading a chunked body
            return True
        length = self._content_length()
        if length is None:
            return False
        if length > 65536:
            self._error(413, "request body over 65536 bytes", close=True)
            return False
        if length and len(self.rfile.read(length)) < length:
            self.close_connection = True
            return False
        return True

    # --- launch --------------------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> tuple[str, str]:
        self._error(status, message, close=True)
        return "-", f"refused: {message}"

    def _launch(self) -> tuple[str, str]:
        """Read, check and run one launch; returns the package identity and the outcome to log.

        A streamed launch logs its outcome itself, before the stream's last chunk (outcome "").
        """
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or not length_header:
            return self._refuse(411, "launch needs a Content-Length (chunked uploads are not accepted)")
        if not _plain_number(length_header):
            return self._refuse(400, "Content-Length is not a non-negative integer")
        length = int(length_header)
        cap = self.server.max_package_bytes + FORM_OVERHEAD_BYTES
        if length > cap:
            return self._refuse(
                413,
                f"launch body is over the connector's limit of {cap} bytes "
                f"(--max-package-mb {self.server.max_package_bytes // MIB})",
            )
        try:
            body = self.rfile.read(length)
        except OSError:
            body = b""
        if len(body) < length:
            self.close_connection = True
            return "-", f"refused: request body not received within {self.server.read_timeout_s:.0f} s"
        self._received()
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
            return "-", f"refused: {exc}"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Accel-Buffering", "no")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        verified = form.fields.get("verified", "").strip().lower() == "true"
        outcome = "failed"
        try:
            outcome = self.server.service.launch(parsed, context.data, verified, self._write_chunk)
            self._log_launch(str(parsed), outcome)
            outcome = ""
            self.wfile.write(LAST_CHUNK)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            if outcome:
                return str(parsed), "failed: the daemon disconnected; the launch stops and rolls back"
        return str(parsed), ""

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(encode_chunk(data))
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
