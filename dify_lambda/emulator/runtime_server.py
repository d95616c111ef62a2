"""A local Lambda Runtime API for one worker process (docs/wire-protocol.md §6).

Hands out one invocation at a time from ``/invocation/next`` and turns the worker's streamed
answer into :class:`Message` items on the invocation's queue the moment the bytes arrive: the
prelude (``head``), each body piece (``chunk``), then ``end``, a mid-stream ``trailer_error``, or
an ``error`` (``/error``, init failure, crash, protocol violation).

``strict`` mode (the test suite's fake Runtime API) accepts only what AWS's own runtime clients
send (docs/wire-protocol.md §6.5) and reports every departure to :meth:`LocalRuntimeApi.violation`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dify_lambda.handlers.chunked import ChunkedReader, ChunkError, Truncated
from dify_lambda.handlers.runtime_api import (
    API_PREFIX,
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
    decode_prelude,
    next_headers,
    parse_invocation_path,
)
from dify_lambda.wire import MIB, lambda_error_body

__all__ = ["Exchange", "LocalRuntimeApi", "Message", "QuietHandler"]

MAX_PRELUDE_BYTES = MIB
_ERROR_TYPE = ERROR_TYPE_HEADER.lower()
_ERROR_BODY = ERROR_BODY_HEADER.lower()


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()};Sampled=0"


@dataclass(frozen=True, slots=True)
class Message:
    """kind: ``head`` (data = prelude dict), ``chunk`` (bytes), ``end``, ``trailer_error``
    (data = (error type, decoded body)) or ``error`` (data = (error type, JSON body bytes))."""

    kind: str
    data: Any = None


@dataclass
class Exchange:
    """One invocation between the front server and the worker."""

    request_id: str
    event: dict[str, Any]
    deadline_ms: int
    trace_id: str = field(default_factory=_trace_id)
    messages: queue.Queue[Message] = field(default_factory=queue.Queue)
    #: Set when a final message (end, trailer_error, error) has been queued.
    finished: threading.Event = field(default_factory=threading.Event)
    #: Set by the front server when the client went away mid-stream.
    client_gone: threading.Event = field(default_factory=threading.Event)
    #: The trailer fields of the streamed response (lowercase names).
    trailers: dict[str, str] = field(default_factory=dict)
    #: The worker's streaming-response connection while it is open.
    _response_conn: socket.socket | None = field(default=None, repr=False)
    _conn_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def put(self, message: Message) -> None:
        if self.finished.is_set():
            return
        if message.kind in ("end", "trailer_error", "error"):
            self.finished.set()
        self.messages.put(message)

    def client_left(self) -> None:
        """The caller disconnected: cut the worker's response stream, so its next write fails and
        the handler closes the plugin's generator instead of generating for nobody."""
        self.client_gone.set()
        with self._conn_lock:
            conn = self._response_conn
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def attach(self, conn: socket.socket | None) -> None:
        with self._conn_lock:
            self._response_conn = conn
        if conn is not None and self.client_gone.is_set():
            self.client_left()

    def fail(self, error_type: str, message: str) -> None:
        self.put(Message("error", (error_type, lambda_error_body(error_type, message))))


class _Violation(Exception):
    pass


class LocalRuntimeApi:
    """The Runtime API a worker's ``AWS_LAMBDA_RUNTIME_API`` points at."""

    strict = False

    def __init__(self, function_arn: str) -> None:
        self.function_arn = function_arn
        self._lock = threading.Lock()
        self._pending: queue.Queue[Exchange] = queue.Queue()
        self._current: Exchange | None = None
        self._closed = threading.Event()
        #: Set at each ``/next`` (the runtime finished init and is idle).
        self.ready = threading.Event()
        self.init_error: tuple[str, bytes] | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def submit(self, exchange: Exchange) -> None:
        self._pending.put(exchange)

    def reset(self) -> None:
        """A new worker process starts: forget the previous one's state."""
        self.ready.clear()
        with self._lock:
            self.init_error = None

    def process_exited(self, returncode: int) -> None:
        """Fail whatever the dead process was doing, as Lambda reports a crashed runtime."""
        with self._lock:
            current, self._current = self._current, None
            init_error = self.init_error
        stranded = [current] if current is not None else []
        while True:
            try:
                stranded.append(self._pending.get_nowait())
            except queue.Empty:
                break
        for exchange in stranded:
            if init_error is not None:
                exchange.put(Message("error", init_error))
            else:
                exchange.fail(
                    "Runtime.ExitError",
                    f"RequestId: {exchange.request_id} Error: Runtime exited "
                    f"with error: exit status {returncode}",
                )

    def close(self) -> None:
        self._closed.set()
        self.server.shutdown()
        self.server.server_close()

    # --- hooks for the strict test fake ---------------------------------------------------------

    def record(self, call: str) -> None:
        """Each call the runtime makes (``next``, ``response <id>``, ``init/error``...)."""

    def violation(self, message: str) -> None:
        """A protocol violation (answered with HTTP 400)."""

    # --- called by the handler ------------------------------------------------------------------

    def _next(self) -> Exchange | None:
        with self._lock:
            previous, self._current = self._current, None
        if previous is not None:
            self.violation(f"/next before the answer for {previous.request_id} was acknowledged")
            previous.fail("Runtime.InvalidState", "the runtime asked for the next event without answering")
        self.ready.set()
        while not self._closed.is_set():
            try:
                exchange = self._pending.get(timeout=0.25)
            except queue.Empty:
                continue
            with self._lock:
                self._current = exchange
            return exchange
        return None

    def _exchange(self, request_id: str) -> Exchange:
        with self._lock:
            current = self._current
        if current is None or current.request_id != request_id:
            raise _Violation(f"no invocation {request_id!r} is in progress")
        return current

    def _done(self, exchange: Exchange) -> None:
        """The answer for ``exchange`` has been read; its ``202`` reply comes next."""
        with self._lock:
            if self._current is exchange:
                self._current = None

    def _init_error(self, path: str, error_type: str, body: bytes) -> None:
        with self._lock:
            self.init_error = (error_type, body)
            current = self._current
        if current is not None:
            current.put(Message("error", (error_type, body)))


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no access log, and no Nagle delay: headers and body leave in
    separate writes, which Nagle plus delayed ACK would stall by 40 ms."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_body(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


def _make_handler(api: LocalRuntimeApi) -> type[BaseHTTPRequestHandler]:
    strict = api.strict

    class Handler(QuietHandler):
        def _reply(self, status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            try:
                self.send_body(
                    status, json.dumps(doc).encode(), {**(headers or {}), "Content-Type": "application/json"}
                )
            except OSError:  # the runtime process is gone
                self.close_connection = True

        def do_GET(self) -> None:
            api.record(self.path.removeprefix(API_PREFIX + "/").removeprefix("invocation/"))
            if self.path == NEXT_PATH:
                exchange = api._next()
                if exchange is None:
                    self.close_connection = True
                    self._reply(503, {"errorMessage": "the Runtime API is shutting down"})
                    return
                ids = (exchange.request_id, exchange.deadline_ms, api.function_arn, exchange.trace_id)
                self._reply(200, exchange.event, next_headers(*ids))
            elif self.path == RESTORE_NEXT_PATH:
                self._reply(200, {})
            else:
                api.violation(f"unknown GET {self.path[:200]}")
                self._reply(404, {"errorMessage": f"unknown path {self.path[:200]}"})

        def do_POST(self) -> None:
            path = self.path
            try:
                if path in (INIT_ERROR_PATH, RESTORE_ERROR_PATH):
                    api.record(path.removeprefix(API_PREFIX + "/"))
                    api._init_error(path, *self._error_post())
                    self._reply(202, {"status": "OK"})
                    return
                parsed = parse_invocation_path(path)
                if parsed is None or parsed[1] not in ("response", "error"):
                    raise _Violation(f"unknown path {path[:200]}")
                request_id, kind = parsed
                api.record(f"{kind} {request_id}")
                exchange = api._exchange(request_id)
                if kind == "error":
                    if strict and exchange._response_conn is not None:
                        raise _Violation(f"/error for {request_id} after the first byte of its response")
                    exchange.put(Message("error", self._error_post()))
                else:
                    self._response(exchange)
                api._done(exchange)
                self._reply(202, {"status": "OK"})
            except _Violation as exc:
                api.violation(str(exc))
                self.close_connection = True
                self._reply(400, {"errorType": "InvalidRequest", "errorMessage": str(exc)})

        def _error_post(self) -> tuple[str, bytes]:
            """An ``/error`` post: (error type header, JSON body)."""
            error_type = self.headers.get(ERROR_TYPE_HEADER)
            length = self.headers.get("Content-Length")
            if strict and (not error_type or length is None):
                raise _Violation(f"an error post needs {ERROR_TYPE_HEADER} and a Content-Length")
            length = length or "0"
            if not length.isdigit():
                raise _Violation("invalid Content-Length")
            body = self.rfile.read(int(length))
            if strict:
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
                if not isinstance(doc, dict) or not {"errorMessage", "errorType"} <= doc.keys():
                    raise _Violation("the error body is not a JSON object with errorMessage and errorType")
            return error_type or "Runtime.Unknown", body

        def _response(self, exchange: Exchange) -> None:
            h = self.headers
            if h.get(RESPONSE_MODE_HEADER) != "streaming":
                exchange.fail("Runtime.InvalidResponseModeHeader", "the runtime did not stream its response")
                raise _Violation(f"{RESPONSE_MODE_HEADER} must be streaming")
            if (h.get("Transfer-Encoding") or "").lower() != "chunked" or (strict and "Content-Length" in h):
                exchange.fail("Runtime.InvalidResponse", "the response is not chunked")
                raise _Violation("the response must use Transfer-Encoding: chunked (and no Content-Length)")
            declared = {
                name.strip().lower() for line in h.get_all("Trailer") or [] for name in line.split(",")
            }
            if strict and (
                h.get("Content-Type") != HTTP_INTEGRATION_CONTENT_TYPE
                or declared - {_ERROR_TYPE, _ERROR_BODY, ""}
            ):
                raise _Violation(f"the Content-Type or the Trailer declaration {sorted(declared)} is wrong")
            exchange.attach(self.connection)
            try:
                self._stream(exchange, declared)
            except _Violation as exc:
                exchange.fail("Runtime.InvalidResponse", str(exc))
                raise
            finally:
                exchange.attach(None)

        def _stream(self, exchange: Exchange, declared: set[str]) -> None:
            head = bytearray()
            in_body = False
            reader = ChunkedReader(self.rfile, strict=strict)
            try:
                for index, data in enumerate(reader):
                    if in_body:
                        exchange.put(Message("chunk", data))
                        continue
                    # AWS's clients send the prelude and the delimiter as the first two chunks.
                    if strict and (
                        index > 1 or (index == 0 and b"\0" in data) or (index == 1 and data != DELIMITER)
                    ):
                        raise _Violation("the prelude and the 8-NUL delimiter are not the first two chunks")
                    head += data
                    cut = head.find(DELIMITER)
                    if cut < 0:
                        if len(head) > MAX_PRELUDE_BYTES:
                            raise _Violation("no 8-NUL delimiter within the first MiB")
                        continue
                    exchange.put(Message("head", _prelude(bytes(head[:cut]))))
                    in_body = True
                    rest = bytes(head[cut + len(DELIMITER) :])
                    if rest:
                        exchange.put(Message("chunk", rest))
            except Truncated as exc:
                if strict:
                    raise _Violation(str(exc)) from None
                # The runtime died mid-stream: what was sent stays sent (Lambda's "Truncated").
                exchange.fail("Runtime.TruncatedResponse", "the response stream ended without its last chunk")
                return
            except ChunkError as exc:
                raise _Violation(str(exc)) from None
            if not in_body:
                raise _Violation("the response has no prelude and 8-NUL delimiter")
            exchange.trailers = trailers = reader.trailers
            error_type = trailers.get(_ERROR_TYPE)
            complete = set(trailers) == {_ERROR_TYPE, _ERROR_BODY} <= declared and error_type
            if strict and trailers and not complete:
                raise _Violation(f"trailers {sorted(trailers)} are incomplete or were not announced")
            if error_type:
                exchange.put(Message("trailer_error", (error_type, _error_body(trailers))))
            else:
                exchange.put(Message("end"))

    def _prelude(raw: bytes) -> dict[str, Any]:
        try:
            prelude = decode_prelude(raw)
        except ValueError as exc:
            raise _Violation(str(exc)) from None
        if strict and "statusCode" not in prelude:
            raise _Violation("the prelude has no statusCode")
        return prelude

    def _error_body(trailers: dict[str, str]) -> dict[str, Any]:
        try:
            doc = decode_error_trailer(trailers.get(_ERROR_BODY, ""))
        except ValueError as exc:
            if strict:
                raise _Violation(str(exc)) from None
            return {}
        if strict and set(doc) != {"errorType", "errorMessage", "trace"}:
            raise _Violation("the error trailer must hold exactly errorType, errorMessage and trace")
        return doc

    return Handler
