"""A strict fake Lambda Runtime API on a real loopback HTTP server (docs/wire-protocol.md §6).

Its strict rules are those of AWS's own runtime client (docs/wire-protocol.md §6.5).

Serves queued events from ``GET /2018-06-01/runtime/invocation/next`` with the ``Lambda-Runtime-*``
headers and checks every streamed ``POST .../response`` byte by byte: the response-mode header,
the ``Trailer`` declaration, chunk framing, the JSON prelude in its own chunk (no NUL bytes), the
8-NUL delimiter in its own chunk, the terminating chunk and the base64 error trailers. ``/error``
after the first response byte, a second answer for the same id, or ``/next`` before the previous
answer's reply was read are violations too. Every violation is recorded in ``violations`` and
answered with HTTP 400, so a test can assert ``api.violations == []``.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dify_lambda.handlers.chunked import ChunkedReader, ChunkError
from dify_lambda.handlers.runtime_api import (
    DELIMITER,
    ERROR_BODY_HEADER,
    ERROR_TYPE_HEADER,
    HTTP_INTEGRATION_CONTENT_TYPE,
    INIT_ERROR_PATH,
    NEXT_PATH,
    RESPONSE_MODE_HEADER,
    RESTORE_ERROR_PATH,
    RESTORE_NEXT_PATH,
    decode_error_trailer,
    next_headers,
    parse_invocation_path,
)

ERROR_TYPE = ERROR_TYPE_HEADER.lower()
ERROR_BODY = ERROR_BODY_HEADER.lower()


class Violation(Exception):
    """The runtime broke the protocol."""


@dataclass
class FakeInvocation:
    request_id: str
    event: dict[str, Any]
    trace_id: str
    deadline_ms: int
    arn: str
    #: pending -> running (handed out by /next) -> responding -> done
    state: str = "pending"
    prelude: dict[str, Any] | None = None
    #: Body chunks after the delimiter, with their monotonic arrival time.
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)
    #: Decoded ``Lambda-Runtime-Function-Error-Body`` trailer.
    stream_error: dict[str, Any] | None = None
    #: ``(error type header, JSON body)`` of a ``/error`` post.
    posted_error: tuple[str, dict[str, Any]] | None = None
    replied: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def body(self) -> bytes:
        return b"".join(data for _, data in self.chunks)


class FakeRuntimeApi:
    """Start with ``FakeRuntimeApi()``; ``address`` is ``127.0.0.1:<port>``; call ``close()``."""

    def __init__(self, *, reply_delay: float = 0.0) -> None:
        self.reply_delay = reply_delay
        self.violations: list[str] = []
        self.calls: list[str] = []
        self.init_errors: list[tuple[str, dict[str, Any]]] = []
        self.restore_errors: list[tuple[str, dict[str, Any]]] = []
        self.by_id: dict[str, FakeInvocation] = {}
        self.changed = threading.Condition()
        self._pending: queue.Queue[FakeInvocation] = queue.Queue()
        self._closed = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    # --- test API ----------------------------------------------------------------------------

    def enqueue(self, event: dict[str, Any], *, request_id: str | None = None) -> FakeInvocation:
        rid = request_id or str(uuid.uuid4())
        inv = FakeInvocation(
            request_id=rid,
            event=event,
            trace_id=f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};Sampled=0",
            deadline_ms=int(time.time() * 1000) + 300_000,
            arn="arn:aws:lambda:us-east-1:123456789012:function:fake",
        )
        with self.changed:
            self.by_id[rid] = inv
        self._pending.put(inv)
        return inv

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> bool:
        """Wait until ``predicate()`` is true (checked on every recorded step, and polled)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.05))
            return True

    def close(self) -> None:
        self._closed.set()
        self.server.shutdown()
        self.server.server_close()

    # --- recording ---------------------------------------------------------------------------

    def record(self, call: str) -> None:
        with self.changed:
            self.calls.append(call)
            self.changed.notify_all()

    def violate(self, message: str) -> None:
        with self.changed:
            self.violations.append(message)
            self.changed.notify_all()

    def next_invocation(self) -> FakeInvocation | None:
        with self.changed:
            unreplied = [i.request_id for i in self.by_id.values() if i.state == "done" and not i.replied]
        if unreplied:
            self.violate(f"/next before the reply to the answer for {unreplied} was read")
        while not self._closed.is_set():
            try:
                inv = self._pending.get(timeout=0.2)
            except queue.Empty:
                continue
            with self.changed:
                inv.state = "running"
                self.changed.notify_all()
            return inv
        return None


def _make_handler(api: FakeRuntimeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in separate writes: without this, Nagle + delayed ACK stall 40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            body = json.dumps(doc).encode()
            try:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
            except OSError:  # the runtime process is gone (killed at teardown)
                self.close_connection = True

        def _reject(self, message: str) -> None:
            api.violate(message)
            self.close_connection = True
            self._reply(400, {"errorType": "InvalidRequest", "errorMessage": message})

        def do_GET(self) -> None:
            if self.path == NEXT_PATH:
                api.record("next")
                inv = api.next_invocation()
                if inv is None:
                    self.close_connection = True
                    self._reply(503, {"errorMessage": "shutting down"})
                    return
                body = json.dumps(inv.event).encode()
                self.send_response(200)
                for name, value in next_headers(
                    inv.request_id, inv.deadline_ms, inv.arn, inv.trace_id
                ).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
            elif self.path == RESTORE_NEXT_PATH:
                api.record("restore/next")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._reject(f"unknown GET {self.path}")

        def do_POST(self) -> None:
            path = self.path
            invocation = parse_invocation_path(path)
            try:
                if invocation is not None and invocation[1] in ("response", "error"):
                    rid, kind = invocation
                    api.record(f"{kind} {rid}")
                    inv = api.by_id.get(rid)
                    if inv is None:
                        raise Violation(f"{kind} for unknown request id {rid!r}")
                    if kind == "response":
                        self._response(inv)
                    else:
                        self._error(inv)
                    return
                if path in (INIT_ERROR_PATH, RESTORE_ERROR_PATH):
                    kind = "init/error" if path == INIT_ERROR_PATH else "restore/error"
                    api.record(kind)
                    error_type, doc = self._plain_error()
                    target = api.init_errors if kind == "init/error" else api.restore_errors
                    with api.changed:
                        target.append((error_type, doc))
                        api.changed.notify_all()
                    self._reply(202, {"status": "OK"})
                    return
                raise Violation(f"unknown POST {path}")
            except Violation as exc:
                self._reject(str(exc))

        def _plain_error(self) -> tuple[str, dict[str, Any]]:
            error_type = self.headers.get(ERROR_TYPE_HEADER)
            if not error_type:
                raise Violation(f"{self.path}: missing {ERROR_TYPE_HEADER}")
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise Violation(f"{self.path}: error post without a Content-Length")
            try:
                doc = json.loads(self.rfile.read(int(length)))
            except ValueError:
                raise Violation(f"{self.path}: error body is not JSON") from None
            if not isinstance(doc, dict) or not {"errorMessage", "errorType"} <= doc.keys():
                raise Violation(f"{self.path}: error body lacks errorMessage/errorType")
            return error_type, doc

        def _error(self, inv: FakeInvocation) -> None:
            if inv.state != "running":
                raise Violation(f"/error for {inv.request_id} in state {inv.state} (after the first byte?)")
            error_type, doc = self._plain_error()
            with api.changed:
                inv.posted_error = (error_type, doc)
                inv.state = "done"
                api.changed.notify_all()
            self._finish_reply(inv)

        def _finish_reply(self, inv: FakeInvocation) -> None:
            if api.reply_delay:
                time.sleep(api.reply_delay)
            with api.changed:
                inv.replied = True
            self._reply(202, {"status": "OK"})
            inv.done.set()
            with api.changed:
                api.changed.notify_all()

        def _response(self, inv: FakeInvocation) -> None:
            if inv.state != "running":
                raise Violation(f"second or unexpected response for {inv.request_id} (state {inv.state})")
            h = self.headers
            if h.get(RESPONSE_MODE_HEADER) != "streaming":
                raise Violation(f"missing {RESPONSE_MODE_HEADER}: streaming")
            if h.get("Content-Type") != HTTP_INTEGRATION_CONTENT_TYPE:
                expected = HTTP_INTEGRATION_CONTENT_TYPE
                raise Violation(f"Content-Type is {h.get('Content-Type')!r}, expected {expected}")
            if (h.get("Transfer-Encoding") or "").lower() != "chunked" or "Content-Length" in h:
                raise Violation("the response is not chunked (or also has a Content-Length)")
            declared = {
                name.strip().lower() for line in h.get_all("Trailer") or [] for name in line.split(",")
            }
            if declared - {ERROR_TYPE, ERROR_BODY, ""}:
                raise Violation(f"invalid Trailer declaration {sorted(declared)}")
            with api.changed:
                inv.state = "responding"
            index = 0
            reader = ChunkedReader(self.rfile, strict=True)
            try:
                for data in reader:
                    now = time.monotonic()
                    if index == 0:
                        if b"\0" in data:
                            raise Violation("the prelude chunk contains NUL bytes (missing prelude?)")
                        try:
                            prelude = json.loads(data)
                        except ValueError:
                            raise Violation("the first chunk is not a JSON prelude") from None
                        if not isinstance(prelude, dict) or not isinstance(prelude.get("statusCode"), int):
                            raise Violation("the prelude has no integer statusCode")
                        with api.changed:
                            inv.prelude = prelude
                            api.changed.notify_all()
                    elif index == 1:
                        if data != DELIMITER:
                            raise Violation("the second chunk is not the 8-NUL delimiter")
                    else:
                        with api.changed:
                            inv.chunks.append((now, data))
                            api.changed.notify_all()
                    index += 1
            except ChunkError as exc:
                raise Violation(str(exc)) from None
            trailers = reader.trailers
            undeclared = set(trailers) - declared
            if undeclared:
                raise Violation(f"trailers {sorted(undeclared)} were not announced in Trailer")
            if index < 2:
                raise Violation(f"response ended after {index} chunks: missing prelude or delimiter")
            stream_error = None
            if trailers:
                if set(trailers) != {ERROR_TYPE, ERROR_BODY} or not trailers[ERROR_TYPE]:
                    raise Violation(f"incomplete error trailers {sorted(trailers)}")
                try:
                    stream_error = decode_error_trailer(trailers[ERROR_BODY])
                except ValueError as exc:
                    raise Violation(str(exc)) from None
                if set(stream_error) != {"errorType", "errorMessage", "trace"}:
                    raise Violation("error body must hold exactly errorType, errorMessage, trace")
            with api.changed:
                inv.trailers = trailers
                inv.stream_error = stream_error
                inv.state = "done"
                api.changed.notify_all()
            self._finish_reply(inv)

    return Handler
