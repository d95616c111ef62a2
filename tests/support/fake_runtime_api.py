"""A strict Lambda Runtime API on loopback: the emulator's server in strict mode, recording.

Strict mode accepts only what AWS's own runtime clients send (docs/wire-protocol.md §6.5): the
response-mode header, the ``Trailer`` declaration, chunk framing, the JSON prelude and the 8-NUL
delimiter as the first two chunks, the terminating chunk and complete base64 error trailers.
``/error`` after the first byte of a response, a second answer for the same id, or ``/next`` before the
previous answer's reply was read are violations too. Every violation is recorded in ``violations`` and
answered with HTTP 400, so a test can assert ``api.violations == []``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dify_lambda.emulator.runtime_server import Exchange, LocalRuntimeApi, Message
from dify_lambda.handlers.runtime_api import INIT_ERROR_PATH


@dataclass
class FakeInvocation(Exchange):
    """An exchange that keeps what the runtime sent; ``finished`` is set by its final message."""

    prelude: dict[str, Any] | None = None
    #: Body chunks after the delimiter, as they arrived.
    chunks: list[bytes] = field(default_factory=list)
    #: Decoded ``Lambda-Runtime-Function-Error-Body`` trailer.
    stream_error: dict[str, Any] | None = None
    #: ``(error type header, JSON body)`` of a ``/error`` post.
    posted_error: tuple[str, dict[str, Any]] | None = None

    def put(self, message: Message) -> None:
        if message.kind == "head":
            self.prelude = message.data
        elif message.kind == "chunk":
            self.chunks.append(message.data)
        elif message.kind == "trailer_error":
            self.stream_error = message.data[1]
        elif message.kind == "error" and not self.finished.is_set():
            self.posted_error = (message.data[0], json.loads(message.data[1]))
        super().put(message)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class FakeRuntimeApi(LocalRuntimeApi):
    """Start with ``FakeRuntimeApi()``; ``address`` is ``127.0.0.1:<port>``; call ``close()``.

    ``reply_delay`` holds each ``202`` back, so a runtime that asks for ``/next`` without reading
    the reply to its answer is caught.
    """

    strict = True

    def __init__(self, *, reply_delay: float = 0.0) -> None:
        self.reply_delay = reply_delay
        self.violations: list[str] = []
        self.calls: list[str] = []
        self.init_errors: list[tuple[str, dict[str, Any]]] = []
        self.restore_errors: list[tuple[str, dict[str, Any]]] = []
        self.by_id: dict[str, FakeInvocation] = {}
        super().__init__("arn:aws:lambda:us-east-1:123456789012:function:fake")

    def enqueue(self, event: dict[str, Any], *, request_id: str | None = None) -> FakeInvocation:
        rid = request_id or str(uuid.uuid4())
        inv = FakeInvocation(rid, event, int(time.time() * 1000) + 300_000)
        self.by_id[rid] = inv
        self.submit(inv)
        return inv

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def record(self, call: str) -> None:
        self.calls.append(call)

    def violation(self, message: str) -> None:
        self.violations.append(message)

    def _done(self, exchange: Exchange) -> None:
        time.sleep(self.reply_delay)
        super()._done(exchange)

    def _init_error(self, path: str, error_type: str, body: bytes) -> None:
        target = self.init_errors if path == INIT_ERROR_PATH else self.restore_errors
        target.append((error_type, json.loads(body)))
        super()._init_error(path, error_type, body)
