"""The front of the emulator: a local function URL (payload format 2.0, ``InvokeMode: RESPONSE_STREAM``).

Each client request becomes a function URL event (docs/wire-protocol.md §7) handed to an idle worker;
the worker's streamed answer goes back to the client as chunked HTTP/1.1, each chunk written the
moment it arrives, with the status, headers and cookies of its prelude. Errors use Lambda's
shapes: 429 ``TooManyRequestsException`` when every worker stays busy, 413 above the payload
limit, 502 with ``x-amzn-ErrorType`` for function and runtime errors. A failure after the first
body byte cannot change the status any more: the client sees a truncated stream.
"""

from __future__ import annotations

import base64
import json
import queue
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dify_lambda.emulator.runtime_server import Exchange, Message, QuietHandler
from dify_lambda.emulator.workers import Worker, WorkerPool
from dify_lambda.handlers.chunked import LAST_CHUNK, BodyTooLarge, ChunkedReader, encode_chunk
from dify_lambda.wire import FUNCTION_URL_MAX_REQUEST_BYTES, lambda_error_body

__all__ = ["FrontConfig", "build_event", "make_front_server"]

#: What a function URL with ``AuthType: AWS_IAM`` puts in the event after checking the signature.
#: The emulator checks no signature: every caller is this local identity.
LOCAL_IAM_IDENTITY = {
    "accessKey": "ASIALOCALDIFYLAMBDA0",
    "accountId": "000000000000",
    "callerId": "AIDALOCALDIFYLAMBDA0",
    "cognitoIdentity": None,
    "principalOrgId": None,
    "userArn": "arn:aws:iam::000000000000:user/dify-lambda-local",
    "userId": "AIDALOCALDIFYLAMBDA0",
}
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(frozen=True)
class FrontConfig:
    pool: WorkerPool
    #: ``AWS_IAM`` adds :data:`LOCAL_IAM_IDENTITY` to each event; ``NONE`` sends no authorizer.
    auth: str
    queue_timeout: float
    function_timeout: float
    url_id: str


def build_event(
    *,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    request_id: str,
    url_id: str,
    iam: dict[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    """A function URL (payload 2.0) event for one request; pure, so it is unit-testable."""
    path, _, query = target.partition("?")
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[lower] = f"{merged[lower]},{value}" if lower in merged else value
    event: dict[str, Any] = {"version": "2.0", "routeKey": "$default", "rawPath": path or "/"}
    event["rawQueryString"] = query
    if cookies:
        event["cookies"] = cookies
    event["headers"] = merged
    if query:
        params: dict[str, str] = {}
        for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    host = merged.get("host", f"{url_id}.lambda-url.us-east-1.on.aws")
    context: dict[str, Any] = {
        "accountId": "anonymous" if iam is None else iam["accountId"],
        "apiId": url_id,
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0],
        "http": {
            "method": method.upper(),
            "path": path or "/",
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": merged.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if iam is not None:
        context["authorizer"] = {"iam": dict(iam)}
    event["requestContext"] = context
    if body:
        try:
            event["body"] = body.decode("utf-8")
            event["isBase64Encoded"] = False
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


class _TooLarge(Exception):
    pass


class _BadRequest(Exception):
    """A request whose framing cannot be trusted; the message names what is wrong, never a value."""


#: ``listen()`` backlog; the stdlib default of 5 resets connections under a burst of clients.
LISTEN_BACKLOG = 128


class _FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG


def make_front_server(host: str, port: int, config: FrontConfig) -> ThreadingHTTPServer:
    return _FrontServer((host, port), _make_handler(config))


def _make_handler(config: FrontConfig) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        server_version = "dify-lambda-serve"
        sys_version = ""

        def _read_body(self) -> bytes:
            if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                try:
                    return b"".join(ChunkedReader(self.rfile, max_bytes=FUNCTION_URL_MAX_REQUEST_BYTES))
                except BodyTooLarge:
                    self.close_connection = True
                    raise _TooLarge from None
            value = (self.headers.get("Content-Length") or "0").strip()
            if not (value.isascii() and value.isdigit()):  # "-1" would read until the client closes
                self.close_connection = True
                raise _BadRequest("Content-Length is not a non-negative integer")
            length = int(value)
            if length > FUNCTION_URL_MAX_REQUEST_BYTES:
                self.close_connection = True
                raise _TooLarge
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            request_id = str(uuid.uuid4())
            try:
                body = self._read_body()
            except _TooLarge:
                limit = FUNCTION_URL_MAX_REQUEST_BYTES
                doc = {
                    "Message": f"Request must be smaller than {limit} bytes for the InvokeFunction operation"
                }
                _plain(self, 413, "RequestEntityTooLargeException", json.dumps(doc).encode(), request_id)
                return
            except _BadRequest as exc:
                _plain(self, 400, None, json.dumps({"Message": str(exc)}).encode(), request_id)
                return
            except ValueError:
                self.close_connection = True
                _plain(self, 400, None, b'{"Message":"malformed chunked request body"}', request_id)
                return
            now = time.time()
            event = build_event(
                method=self.command,
                target=self.path,
                headers=list(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
                request_id=request_id,
                url_id=config.url_id,
                iam=LOCAL_IAM_IDENTITY if config.auth == "AWS_IAM" else None,
                now=now,
            )
            worker = config.pool.acquire(config.queue_timeout)
            if worker is None:
                doc = {
                    "Reason": "ConcurrentInvocationLimitExceeded",
                    "Type": "User",
                    "message": "Rate Exceeded.",
                }
                _plain(self, 429, "TooManyRequestsException", json.dumps(doc).encode(), request_id)
                return
            try:
                deadline = now + config.function_timeout
                exchange = Exchange(request_id, event, int(deadline * 1000))
                worker.submit(exchange)
                _Relay(self, worker, exchange, deadline, request_id).run()
            finally:
                config.pool.release(worker)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle

    return Handler


class _Relay:
    """Moves one exchange's messages to the client.

    When the client goes away, the worker's response stream is cut (:meth:`Exchange.client_left`):
    the handler's next write fails and it closes the plugin's generator, then the relay drains what
    is left of the exchange.
    """

    def __init__(
        self, handler: QuietHandler, worker: Worker, exchange: Exchange, deadline: float, rid: str
    ) -> None:
        self.h, self.worker, self.exchange, self.deadline, self.rid = handler, worker, exchange, deadline, rid
        self.started = False
        self.client_ok = True
        self.no_body = False

    def _send(self, action: Callable[..., None], *args: Any) -> None:
        if not self.client_ok:
            return
        try:
            action(*args)
        except OSError:
            self.client_ok = False  # the client left: stop the plugin instead of generating for nobody
            self.exchange.client_left()

    def _write(self, data: bytes) -> None:
        self.h.wfile.write(data)
        self.h.wfile.flush()

    def run(self) -> None:
        while True:
            left = self.deadline - time.time()
            try:
                message = self.exchange.messages.get(timeout=left) if left > 0 else None
            except queue.Empty:
                message = None
            if message is None:
                _log(f"request {self.rid}: task timed out; stopping the worker")
                self.worker.kill()
                body = lambda_error_body("Sandbox.Timedout", f"RequestId: {self.rid} Error: Task timed out")
                message = Message("error", ("Sandbox.Timedout", body))
            if message.kind == "head":
                self._send(self._head, message.data)
            elif message.kind == "chunk":
                if message.data and self.started and not self.no_body:
                    self._send(self._write, encode_chunk(message.data))
            elif message.kind == "end":
                if not self.no_body:
                    self._send(self._write, LAST_CHUNK)
                break
            else:  # "error", or "trailer_error", which always follows the first byte
                error_type, body = message.data
                if self.started or message.kind == "trailer_error":
                    _log(f"request {self.rid}: {error_type} after the first byte; stream truncated")
                    # No terminating chunk: the client sees an incomplete body, not a clean end.
                    self.h.close_connection = True
                else:
                    self._send(_plain, self.h, 502, error_type, body, self.rid)
                break
        if not self.client_ok:
            self.h.close_connection = True

    def _head(self, prelude: dict[str, Any]) -> None:
        h = self.h
        status = int(prelude.get("statusCode", 200))
        self.no_body = status in _NO_BODY_STATUSES or h.command == "HEAD"
        h.send_response(status)
        headers = prelude.get("headers") or {}
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                h.send_header(str(name), str(value))
        for cookie in prelude.get("cookies") or []:
            h.send_header("Set-Cookie", str(cookie))
        h.send_header("x-amzn-RequestId", self.rid)
        if not self.no_body:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", "0")
        h.end_headers()
        h.wfile.flush()
        self.started = True


def _plain(h: QuietHandler, status: int, error_type: str | None, body: bytes, request_id: str) -> None:
    headers = {"Content-Type": "application/json", "x-amzn-RequestId": request_id}
    h.send_body(status, body, {**headers, "x-amzn-ErrorType": error_type} if error_type else headers)


def _log(line: str) -> None:
    print(f"dify-lambda serve: {line}", file=sys.stderr, flush=True)
