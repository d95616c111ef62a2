"""Per-read timeouts for streams: first event, idle gap and total deadline over one pooled client.

httpx fixes a request's read timeout when the body starts, but a stream needs a different budget
before the first event (time to first token) than between events (idle gap), both capped by the
total deadline. The router therefore sets the read timeout before every read in one place, a
context variable (:func:`reads_within`), which :class:`DeadlineTransport`'s socket streams apply
to each ``recv`` and injected test transports read (:func:`read_timeout`). Context variables are
per thread and per greenlet, so this works in gevent-patched workers without threads or timers.

:class:`DeadlineTransport` is built on httpcore's public ``ConnectionPool(network_backend=...)``;
httpx's own ``HTTPTransport`` offers no way to pass a network backend.
"""

from __future__ import annotations

import contextlib
import contextvars
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

__all__ = ["DeadlineTransport", "read_timeout", "read_within", "reads_within"]

_READ_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "dify_lambda_read_timeout", default=None
)


def read_timeout() -> float | None:
    """The read timeout the router set for the current read, in seconds (None outside a call)."""
    return _READ_TIMEOUT.get()


@contextlib.contextmanager
def reads_within(seconds: float) -> Iterator[None]:
    """Reads inside the block time out after ``seconds`` each (see the module docstring)."""
    token = _READ_TIMEOUT.set(max(seconds, 0.001))
    try:
        yield
    finally:
        _READ_TIMEOUT.reset(token)


def read_within(chunks: Iterator[bytes], seconds: float) -> bytes | None:
    """The next body chunk (None at the end), read under a ``seconds`` read timeout."""
    token = _READ_TIMEOUT.set(seconds if seconds > 0.001 else 0.001)  # once per read: no context manager
    try:
        return next(chunks, None)
    finally:
        _READ_TIMEOUT.reset(token)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        override = _READ_TIMEOUT.get()
        return self._inner.read(max_bytes, override if override is not None else timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


_CORE_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
)


def _to_httpx(exc: Exception) -> Exception:
    """httpx's exception of the same name (httpx mirrors httpcore's exception names)."""
    mapped = getattr(httpx, type(exc).__name__, None)
    if isinstance(mapped, type) and issubclass(mapped, httpx.TransportError):
        return mapped(str(exc))
    return exc


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream
        except _CORE_ERRORS as exc:
            raise _to_httpx(exc) from exc

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class DeadlineTransport(httpx.BaseTransport):
    """A pooled HTTP/1.1 transport whose socket reads honour :func:`reads_within`."""

    def __init__(
        self, *, limits: httpx.Limits | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        limits = limits or httpx.Limits(max_keepalive_connections=50, max_connections=200)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(httpcore.SyncBackend()),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = self._pool.handle_request(core)
        except _CORE_ERRORS as exc:
            raise _to_httpx(exc) from exc
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()
