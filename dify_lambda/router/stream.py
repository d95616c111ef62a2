"""Reading one response: body bytes → typed events, under first-event, idle and total deadlines.

The retry window closes at the first event the caller receives; from then on every failure is a
typed error carrying how many events were delivered. A stream that ends without ``end`` is an
error, never a silent truncation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import httpx

from dify_lambda import wire
from dify_lambda.router.call import CallInfo
from dify_lambda.router.errors import (
    FirstEventTimeoutError,
    IdleTimeoutError,
    LambdaError,
    MalformedEventError,
    PluginInvokeError,
    StreamInterruptedError,
)
from dify_lambda.router.events import (
    EndEvent,
    ErrorEvent,
    Event,
    LambdaErrorLine,
    LineDecoder,
    LogEvent,
    MalformedLine,
    StreamEvent,
    decode_line,
)
from dify_lambda.router.policy import Failure, classify_transport_error
from dify_lambda.router.transport import read_within

__all__ = ["RetryBeforeStart", "drain", "error_detail", "read_events", "status_text"]

logger = logging.getLogger("dify_lambda.router")

_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_ERROR_BODY_BYTES = 4096


class RetryBeforeStart(Exception):
    """The connection broke before the first event; the attempt may be retried."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.error_type)
        self.failure = failure


def read_events(
    call: CallInfo,
    response: httpx.Response,
    *,
    first_deadline: float,
    deadline: float,
    clock: Callable[[], float],
    keep: bool = False,
) -> Iterator[Event]:
    """The events of one response, with the first-event, idle and total deadlines applied.

    Raises :class:`RetryBeforeStart` when the connection breaks before any event (the caller may
    retry), and a typed :class:`~dify_lambda.router.errors.InvocationError` for everything else.
    """
    timeouts = call.timeouts
    decoder = LineDecoder()
    chunks = response.iter_bytes()
    delivered = 0
    kept: list[Any] = []
    pending_error: ErrorEvent | None = None

    def interrupted(cls: type[StreamInterruptedError], message: str) -> StreamInterruptedError:
        return cls(message, events=tuple(kept), call=call, delivered=delivered)

    while True:
        now = clock()
        started = delivered > 0 or pending_error is not None
        limit = min(timeouts.idle, deadline - now) if started else first_deadline - now
        if limit <= 0:
            if not started:
                raise FirstEventTimeoutError(f"no event from {call.url} in time", call=call)
            raise interrupted(
                StreamInterruptedError, f"total timeout of {timeouts.total}s reached mid-stream"
            )
        try:
            chunk = read_within(chunks, limit)
        except httpx.TransportError as exc:
            if pending_error is not None:  # the plugin already reported its error: raise that one
                raise _plugin_error(pending_error, call, delivered) from None
            if isinstance(exc, httpx.ReadTimeout):
                if not started:
                    raise FirstEventTimeoutError(
                        f"no event from {call.url} within {timeouts.first_event}s", call=call
                    ) from None
                raise interrupted(
                    IdleTimeoutError, f"no data for {limit:.1f}s after {delivered} event(s)"
                ) from None
            if not started:
                raise RetryBeforeStart(classify_transport_error(exc)) from None
            raise interrupted(
                StreamInterruptedError,
                f"connection lost after {delivered} event(s): {type(exc).__name__}",
            ) from None
        try:
            lines = decoder.feed(chunk) if chunk is not None else decoder.flush()
            for line in lines:
                decoded = decode_line(line)
                if type(decoded) is StreamEvent:  # the common case first
                    delivered += 1
                    if keep:
                        kept.append(decoded.data)
                    yield decoded
                    continue
                if decoded is None:
                    continue
                if isinstance(decoded, LogEvent):
                    logger.log(
                        _LOG_LEVELS.get(decoded.level.lower(), logging.INFO),
                        "serverless plugin log: %s",
                        decoded.message,
                        extra={"session_id": call.session_id, "action": call.action},
                    )
                    continue
                if isinstance(decoded, LambdaErrorLine):
                    raise LambdaError(
                        f"Plugin runtime request failed: {decoded.error_type}"
                        + (f": {decoded.error_message}" if decoded.error_message else ""),
                        status=response.status_code,
                        error_type=decoded.error_type,
                        request_id=response.headers.get("x-amzn-requestid", "") or decoded.request_id,
                        call=call,
                        delivered=delivered,
                    )
                if isinstance(decoded, EndEvent):
                    if pending_error is not None:
                        raise _plugin_error(pending_error, call, delivered)
                    yield decoded
                    drain(chunks, timeouts.idle)
                    return
                if isinstance(decoded, ErrorEvent) and call.raise_errors:
                    pending_error = decoded  # the SDK sends ``end`` right after; raise then
                    continue
                delivered += 1  # an ErrorEvent passed through (raise_errors=False)
                yield decoded
        except MalformedLine as exc:
            raise MalformedEventError(
                f"invalid event line from {call.url} (status {response.status_code}): {exc}",
                call=call,
                delivered=delivered,
            ) from None
        if chunk is None:
            if pending_error is not None:
                raise _plugin_error(pending_error, call, delivered)
            if delivered == 0:
                raise interrupted(
                    StreamInterruptedError, "no valid session response (stream ended with no event)"
                )
            raise interrupted(
                StreamInterruptedError, f"stream ended without 'end' after {delivered} event(s)"
            )


def drain(chunks: Iterator[bytes], idle: float) -> None:
    """Read the (empty) rest after ``end`` so the connection goes back to the pool."""
    try:
        while read_within(chunks, min(idle, 5.0)) is not None:
            pass
    except httpx.HTTPError:
        pass


def _plugin_error(event: ErrorEvent, call: CallInfo, delivered: int) -> PluginInvokeError:
    return PluginInvokeError(
        event.message, error_type=event.error_type, args=event.args, call=call, delivered=delivered
    )


def status_text(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def error_detail(response: httpx.Response) -> dict[str, str]:
    """error_type / message / request_id of a Lambda error response (first 4 KiB of the body only)."""
    detail = {"request_id": response.headers.get("x-amzn-requestid", "")}
    raw = b""
    try:
        for chunk in response.iter_raw():
            raw += chunk
            if len(raw) >= _ERROR_BODY_BYTES:
                break
    except httpx.HTTPError:
        pass
    try:
        obj = json.loads(raw[:_ERROR_BODY_BYTES])
    except ValueError:
        return detail
    if isinstance(obj, dict):
        detail["error_type"], detail["message"], request_id = wire.read_lambda_error(obj)
        detail["request_id"] = detail["request_id"] or request_id
    return detail
