"""Typed events of a plugin response, and the decoder turning body bytes into them.

The body is JSON event lines separated by ``"\\n\\n"`` (docs/wire-protocol.md §3); like the daemon,
the decoder splits on newlines and skips empty lines, so ``"\\n"`` framing works too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dify_lambda import wire

__all__ = [
    "EndEvent",
    "ErrorEvent",
    "Event",
    "LambdaErrorLine",
    "LineDecoder",
    "LogEvent",
    "StreamEvent",
    "decode_line",
]


@dataclass(slots=True)
class StreamEvent:
    """One ``stream`` payload (an LLM chunk, an embedding result, a TTS audio chunk...)."""

    data: Any


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """The plugin's ``error`` message: exception class name, message, args."""

    error_type: str
    message: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EndEvent:
    """The session ``end``: the stream is complete."""

    data: Any = None


@dataclass(frozen=True, slots=True)
class LogEvent:
    """A plugin log record (logged by the router, not yielded to callers)."""

    level: str
    message: str


@dataclass(frozen=True, slots=True)
class LambdaErrorLine:
    """A Lambda error JSON (``{"errorType","errorMessage","requestId"}``) found in the body."""

    error_type: str
    error_message: str
    request_id: str


Event = StreamEvent | ErrorEvent | EndEvent
#: What the decoder yields; ``None`` stands for lines to skip (heartbeats, unknown session types).
Decoded = Event | LogEvent | LambdaErrorLine | None


class MalformedLine(ValueError):
    """A line is not a valid event; the message describes the problem without the line's contents."""


_decode_json = json.JSONDecoder().decode


def decode_line(line: bytes) -> Decoded:
    try:
        # Lines are UTF-8 (the SDK's pydantic JSON); decoding first skips json.loads' encoding sniffing.
        obj = _decode_json(line.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedLine(
            f"not JSON ({exc.__class__.__name__} at byte {getattr(exc, 'pos', '?')})"
        ) from None
    if not isinstance(obj, dict):
        raise MalformedLine(f"not a JSON object but {type(obj).__name__}")
    kind = obj.get("event")
    data = obj.get("data")
    # Fast path: the stream payloads that make up almost every line.
    if kind == "session" and type(data) is dict and data.get("type") == "stream":
        return StreamEvent(data.get("data"))
    if obj.get("errorType"):
        return LambdaErrorLine(*wire.read_lambda_error(obj))
    if kind == "session":
        if not isinstance(data, dict) or "type" not in data:
            raise MalformedLine("session event without a session message {type, data}")
        msg_type, payload = data["type"], data.get("data")
        if msg_type == "stream":
            return StreamEvent(payload)
        if msg_type == "end":
            return EndEvent(payload)
        if msg_type == "error":
            if not isinstance(payload, dict):
                raise MalformedLine("session error without an {error_type, message, args} object")
            args = payload.get("args")
            return ErrorEvent(
                str(payload.get("error_type") or "unknown"),
                str(payload.get("message") or ""),
                args if isinstance(args, dict) else {},
            )
        if msg_type == "invoke":
            # Full-duplex calls are not supported over function URLs (the daemon rejects them too).
            return ErrorEvent(
                "serverless_event_not_supported", "serverless event is not supported by full duplex", {}
            )
        raise MalformedLine(f"unknown session message type {str(msg_type)[:40]!r}")
    if kind == "log":
        record = data if isinstance(data, dict) else {}
        return LogEvent(str(record.get("level") or "info"), str(record.get("message") or ""))
    if kind == "error":
        record = data if isinstance(data, dict) else {"message": str(data)}
        return ErrorEvent(
            str(record.get("error_type") or "PluginError"),
            str(record.get("message") or ""),
            record.get("args") or {},
        )
    if kind == "heartbeat":
        return None
    raise MalformedLine(f"unknown event {str(kind)[:40]!r}")


class LineDecoder:
    """Splits body chunks into lines, enforcing the 5 MiB line cap of the daemon's scanner."""

    def __init__(self, max_line_bytes: int = wire.MAX_LINE_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_line_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:  # part of a long line: keep appending (no copy of the buffer)
            self._buf += chunk
            if len(self._buf) >= self._max:
                raise MalformedLine(f"line of over {len(self._buf)} bytes is over the {self._max}-byte limit")
            return []
        if not self._buf and chunk.endswith(b"\n") and len(chunk) < self._max:
            # Fast path: whole lines, nothing pending (how the SDK and the handler write).
            return [line for part in chunk.split(b"\n") if (line := part.strip())]
        if self._buf:
            self._buf += chunk
            data = bytes(self._buf)
            self._buf.clear()
        else:
            data = chunk
        parts = data.split(b"\n")
        rest = parts.pop()
        if rest:
            if len(rest) >= self._max:
                raise MalformedLine(f"line of over {len(rest)} bytes is over the {self._max}-byte limit")
            self._buf += rest
        lines = []
        for part in parts:
            if len(part) >= self._max:
                raise MalformedLine(f"line of {len(part)} bytes is over the {self._max}-byte limit")
            line = part.strip()
            if line:
                lines.append(line)
        return lines

    def flush(self) -> list[bytes]:
        """The last line when the body does not end with a newline."""
        line = bytes(self._buf).strip()
        self._buf.clear()
        return [line] if line else []
