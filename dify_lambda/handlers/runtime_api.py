"""A standard-library client for the Lambda Runtime API, with a streamed response writer.

Replaces what the managed runtime's client (awslambdaric) does, plus the one thing it cannot do:
stream a response (docs/wire-protocol.md §6). ``/next`` and the small JSON posts go through
``http.client`` on one persistent connection; each streamed response is written on its own raw
socket with hand-made chunk framing, because ``http.client`` cannot send trailers.

Sockets are looked up through the ``socket`` module at call time, so the client works the same
whether or not ``dify_plugin`` has gevent-patched the process.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ipaddress
import json
import socket
import traceback
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dify_lambda.handlers.chunked import LAST_CHUNK, encode_chunk, last_chunk

__all__ = [
    "DELIMITER",
    "HTTP_INTEGRATION_CONTENT_TYPE",
    "ErrorInfo",
    "Invocation",
    "ResponseWriter",
    "RuntimeApiClient",
    "RuntimeApiError",
    "decode_error_trailer",
    "decode_prelude",
    "encode_chunk",
    "encode_prelude",
    "invocation_path",
    "next_headers",
    "parse_invocation_path",
]

API_PREFIX = "/2018-06-01/runtime"
HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
#: Separates the JSON prelude from the body of an http-integration response.
DELIMITER = b"\0" * 8
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY_HEADER = "Lambda-Runtime-Function-Error-Body"
RESPONSE_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"
NEXT_PATH = API_PREFIX + "/invocation/next"
RESTORE_NEXT_PATH = API_PREFIX + "/restore/next"
INIT_ERROR_PATH = API_PREFIX + "/init/error"
RESTORE_ERROR_PATH = API_PREFIX + "/restore/error"
#: Hop-by-hop headers a function URL manages itself; never put them into the prelude.
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


class RuntimeApiError(Exception):
    """The Runtime API could not be reached or answered with an unexpected status."""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A failure to report: ``error_type`` goes into the header, the rest into the JSON body."""

    error_type: str
    error_class: str
    message: str
    trace: list[str] = field(default_factory=list)

    @classmethod
    def from_exception(cls, exc: BaseException, *, category: str) -> ErrorInfo:
        """``<category>.<ExceptionClass>``, e.g. ``Function.ValueError`` or ``Runtime.PluginLoadError``."""
        name = type(exc).__name__
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        return cls(f"{category}.{name}", name, str(exc), [line.rstrip("\n") for line in lines])

    def json_body(self) -> bytes:
        """The ``/error`` body: the Lambda error shape awslambdaric posts."""
        doc = {"errorMessage": self.message, "errorType": self.error_class, "stackTrace": self.trace}
        return json.dumps(doc, separators=(",", ":")).encode()

    def trailer_body(self) -> str:
        """Base64 of ``{errorType, errorMessage, trace}``, as AWS's Node.js client sends it."""
        doc = {"errorType": self.error_class, "errorMessage": self.message, "trace": self.trace}
        return base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode("ascii")


@dataclass(frozen=True, slots=True)
class Invocation:
    """One event from ``/next``: the request id, its raw body and the Runtime API's headers."""

    request_id: str
    body: bytes
    headers: Mapping[str, str]

    def event(self) -> Any:
        return json.loads(self.body)


def invocation_path(request_id: str, kind: str) -> str:
    """``/invocation/<id>/<kind>`` (``response`` or ``error``) under :data:`API_PREFIX`, id quoted."""
    return f"{API_PREFIX}/invocation/{urllib.parse.quote(request_id, safe='')}/{kind}"


def parse_invocation_path(path: str) -> tuple[str, str] | None:
    """The server side of :func:`invocation_path`: ``(request id, kind)``, or None."""
    prefix = API_PREFIX + "/invocation/"
    if not path.startswith(prefix) or path.count("/") != 5:
        return None
    request_id, _, kind = path[len(prefix) :].partition("/")
    return request_id, kind


def next_headers(request_id: str, deadline_ms: int, function_arn: str, trace_id: str) -> dict[str, str]:
    """The ``Lambda-Runtime-*`` headers a Runtime API sends with an event from ``/next``."""
    return {
        "Lambda-Runtime-Aws-Request-Id": request_id,
        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
        "Lambda-Runtime-Invoked-Function-Arn": function_arn,
        "Lambda-Runtime-Trace-Id": trace_id,
    }


def decode_prelude(raw: bytes) -> dict[str, Any]:
    """The prelude as a dict; ValueError unless it is a JSON object whose ``statusCode`` (when
    present) is an integer."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ValueError("the prelude is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("statusCode", 200), int):
        raise ValueError("the prelude is not an object with an integer statusCode")
    return doc


def decode_error_trailer(value: str) -> dict[str, Any]:
    """The ``Lambda-Runtime-Function-Error-Body`` trailer (base64 of a JSON object); ValueError."""
    try:
        doc = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        raise ValueError(f"{ERROR_BODY_HEADER} is not base64 of JSON") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{ERROR_BODY_HEADER} is not base64 of a JSON object")
    return doc


def encode_prelude(status: int, headers: Mapping[str, str], cookies: list[str]) -> bytes:
    """The compact JSON prelude of an http-integration response.

    Hop-by-hop headers are dropped, ``Set-Cookie`` moves to ``cookies`` and a missing content type
    defaults to ``application/octet-stream`` (what AWS's own clients do). JSON escapes control
    characters, so the prelude can never contain a NUL byte.
    """
    clean: dict[str, str] = {}
    all_cookies = list(cookies)
    for name, value in headers.items():
        lower = name.lower()
        if lower in _HOP_BY_HOP:
            continue
        if lower == "set-cookie":
            all_cookies.append(value)
            continue
        clean[name] = value
    if not any(name.lower() == "content-type" for name in clean):
        clean["content-type"] = "application/octet-stream"
    doc = {"statusCode": int(status), "headers": clean, "cookies": all_cookies}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _connect(host: str, port: int) -> socket.socket:
    """A blocking TCP_NODELAY connection; an IP literal skips name resolution (a thread hop under gevent)."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        sock = socket.create_connection((host, port), timeout=None)
    else:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(None)
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class ResponseWriter:
    """A streamed ``POST .../response``: prelude, delimiter, one chunk per write, then the end.

    Nothing goes on the wire before :meth:`start`; the request line and headers leave together
    with the prelude. Every write is one ``sendall`` on a ``TCP_NODELAY`` socket, so a chunk is
    on its way the moment the application yields it.
    """

    def __init__(self, host: str, port: int, request_id: str) -> None:
        self._host, self._port = host, port
        self._path = invocation_path(request_id, "response")
        self._sock: socket.socket | None = None
        #: True once any byte of the response has been handed to the kernel.
        self.started = False

    def start(self, prelude: bytes) -> None:
        sock = _connect(self._host, self._port)
        self._sock = sock
        head = (
            f"POST {self._path} HTTP/1.1\r\n"
            f"Host: {self._host}:{self._port}\r\n"
            f"{RESPONSE_MODE_HEADER}: streaming\r\n"
            f"Trailer: {ERROR_TYPE_HEADER}, {ERROR_BODY_HEADER}\r\n"
            f"Content-Type: {HTTP_INTEGRATION_CONTENT_TYPE}\r\n"
            "Transfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n"
        ).encode("ascii")
        self.started = True
        sock.sendall(head + encode_chunk(prelude))
        sock.sendall(encode_chunk(DELIMITER))

    def write(self, data: bytes) -> None:
        if self._sock is None:
            raise RuntimeApiError("response not started")
        frame = encode_chunk(data)
        if frame:
            self._sock.sendall(frame)

    def finish(self, error: ErrorInfo | None = None) -> int:
        """Send the last chunk (with the error trailers when ``error`` is given); return the API's status."""
        if self._sock is None:
            raise RuntimeApiError("response not started")
        if error is None:
            self._sock.sendall(LAST_CHUNK)
        else:
            trailers = {ERROR_TYPE_HEADER: error.error_type, ERROR_BODY_HEADER: error.trailer_body()}
            self._sock.sendall(last_chunk(trailers))
        reply = http.client.HTTPResponse(self._sock)
        try:
            reply.begin()
            reply.read()
        except (OSError, http.client.HTTPException) as exc:
            raise RuntimeApiError(f"no reply to the response for this invocation: {exc}") from exc
        finally:
            reply.close()
        return reply.status

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class RuntimeApiClient:
    """Talks to ``http://$AWS_LAMBDA_RUNTIME_API``; one persistent connection for ``/next``."""

    def __init__(self, address: str) -> None:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise RuntimeApiError(f"AWS_LAMBDA_RUNTIME_API must be HOST:PORT, got {address[:100]!r}")
        self.host, self.port = host, int(port)
        self._conn: http.client.HTTPConnection | None = None

    def _request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        # One retry on a fresh connection covers a keep-alive connection the server closed.
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port)
            try:
                self._conn.request(method, path, body=body, headers=dict(headers or {}))
                resp = self._conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise RuntimeApiError(f"{method} {path.removeprefix(API_PREFIX)} failed: {exc}") from exc
                continue
            if resp.will_close:
                self._conn.close()
                self._conn = None
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        raise AssertionError("unreachable")

    def next_invocation(self) -> Invocation:
        """Block until the next event arrives."""
        status, headers, body = self._request("GET", NEXT_PATH)
        request_id = headers.get("lambda-runtime-aws-request-id", "")
        if status != 200 or not request_id:
            raise RuntimeApiError(f"GET /invocation/next answered {status} without a request id")
        return Invocation(request_id=request_id, body=body, headers=headers)

    def response_writer(self, request_id: str) -> ResponseWriter:
        return ResponseWriter(self.host, self.port, request_id)

    def restore_next(self) -> None:
        """SnapStart: block until the snapshot has been restored."""
        status, _, _ = self._request("GET", RESTORE_NEXT_PATH)
        if status != 200:
            raise RuntimeApiError(f"GET /restore/next answered {status}")

    def post_error(self, path: str, error: ErrorInfo) -> int:
        """Report ``error`` to ``/init/error``, ``/restore/error`` or an invocation's ``error`` path."""
        headers = {ERROR_TYPE_HEADER: error.error_type, "Content-Type": "application/json"}
        status, _, _ = self._request("POST", path, error.json_body(), headers)
        return status

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
