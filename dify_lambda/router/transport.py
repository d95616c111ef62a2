"""Per-read timeouts for streams: first event, idle gap and total deadline over one pooled httpx client.

httpx fixes a request's read timeout when the body starts, but a stream needs a different budget
before the first event (time to first token) than between events (idle gap), both capped by the
total deadline. The router therefore updates the read timeout before every read in two places:

- ``request.extensions["timeout"]["read"]``: httpx's own timeout record, which injected
  transports (tests) read to decide whether a scripted wait times out;
- a context variable read by :class:`DeadlineTransport`'s socket streams, so the real transport
  applies the current value to each ``recv``. Context variables are per thread and per greenlet,
  so this works in gevent-patched workers without threads or timers.
"""

from __future__ import annotations

import contextvars
import ssl
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx

__all__ = ["DeadlineTransport", "ReadBudget"]

_READ_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "dify_lambda_read_timeout", default=None
)


class ReadBudget:
    """Sets the read timeout for the next read(s) of one request (see module docstring)."""

    __slots__ = ("_timeouts",)

    def __init__(self, request: httpx.Request) -> None:
        timeouts = request.extensions.get("timeout")
        if not isinstance(timeouts, dict):
            timeouts = {}
            request.extensions["timeout"] = timeouts
        self._timeouts: dict[str, Any] = timeouts

    def set(self, seconds: float) -> contextvars.Token[float | None]:
        value = max(seconds, 0.001)
        self._timeouts["read"] = value
        return _READ_TIMEOUT.set(value)

    @staticmethod
    def reset(token: contextvars.Token[float | None]) -> None:
        _READ_TIMEOUT.reset(token)

    def read(self, chunks: Iterator[bytes], seconds: float) -> bytes | None:
        """The next body chunk (None at the end), read under a ``seconds`` read timeout."""
        value = seconds if seconds > 0.001 else 0.001
        self._timeouts["read"] = value
        token = _READ_TIMEOUT.set(value)
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


class DeadlineTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose socket reads honour :class:`ReadBudget` (pooled, HTTP/1.1)."""

    def __init__(self, *, limits: httpx.Limits | None = None, **kwargs: Any) -> None:
        super().__init__(
            limits=limits or httpx.Limits(max_keepalive_connections=50, max_connections=200), **kwargs
        )
        pool = self._pool
        # httpx exposes no network-backend option; wrap the pool's backend (httpcore >= 1.0 keeps it here).
        backend = getattr(pool, "_network_backend", None)
        if backend is not None:
            pool._network_backend = _Backend(backend)
