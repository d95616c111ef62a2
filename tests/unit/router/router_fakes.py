"""Scripted function URL behaviour for router tests: an httpx transport, no network, no sleeping.

A script maps a URL host to a queue of replies. A reply's body is a list of byte chunks,
:class:`Wait` markers and exceptions. A ``Wait`` longer than the request's current read timeout
(:func:`dify_lambda.router.transport.read_timeout`, which the router sets before every read)
raises ``httpx.ReadTimeout``, like a socket that stays silent; a shorter one just
advances the fake clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from dify_lambda import wire
from dify_lambda.router.transport import read_timeout


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: list[bytes | Wait | BaseException] = field(default_factory=list)
    #: Seconds before the status line arrives.
    header_wait: float = 0.0


class _Body(httpx.SyncByteStream):
    def __init__(
        self, parts: list[bytes | Wait | BaseException], request: httpx.Request, clock: FakeClock
    ) -> None:
        self._parts = parts
        self._request = request
        self._clock = clock
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for part in self._parts:
            if isinstance(part, Wait):
                limit = read_timeout()
                if limit is not None and part.seconds >= limit:
                    self._clock.advance(limit)
                    raise httpx.ReadTimeout("timed out", request=self._request)
                self._clock.advance(part.seconds)
            elif isinstance(part, BaseException):
                raise part
            else:
                yield part

    def close(self) -> None:
        self.closed = True


class ScriptedTransport(httpx.BaseTransport):
    def __init__(
        self, script: dict[str, list[Reply | BaseException]], clock: FakeClock | None = None
    ) -> None:
        self.script = {host: list(replies) for host, replies in script.items()}
        self.clock = clock or FakeClock()
        self.requests: list[httpx.Request] = []
        self.bodies: list[_Body] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        queue = self.script.get(request.url.host)
        if not queue:
            raise AssertionError(f"unexpected request to {request.url.host}")
        item = queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        if item.header_wait:
            limit = read_timeout()
            if limit is not None and item.header_wait >= limit:
                raise httpx.ReadTimeout("timed out", request=request)
            self.clock.advance(item.header_wait)
        body = _Body(item.body, request, self.clock)
        self.bodies.append(body)
        return httpx.Response(item.status, headers=item.headers, stream=body, request=request)

    def hosts(self) -> list[str]:
        return [r.url.host for r in self.requests]


SID = "sess-1"


def stream(data: Any, sid: str = SID) -> bytes:
    return wire.session_line(sid, "stream", data)


def end(sid: str = SID) -> bytes:
    return wire.end_line(sid)


def error(error_type: str, message: str, args: dict[str, Any] | None = None, sid: str = SID) -> bytes:
    return wire.error_line(sid, error_type, message, args)


def llm_chunk(text: str, index: int = 0, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "model": "fake-llm",
        "prompt_messages": [],
        "system_fingerprint": None,
        "delta": {
            "index": index,
            "message": {"role": "assistant", "content": text, "name": None, "tool_calls": []},
            "usage": usage,
            "finish_reason": "stop" if usage else None,
        },
    }


def ok(*lines: bytes | Wait | BaseException) -> Reply:
    return Reply(200, {"content-type": wire.RESPONSE_CONTENT_TYPE}, list(lines))


def body_json(request: httpx.Request) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(request.content)
    return parsed
