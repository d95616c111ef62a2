"""Decoding response lines into typed events."""

from __future__ import annotations

import pytest

from dify_lambda import wire
from dify_lambda.router.events import (
    EndEvent,
    ErrorEvent,
    LambdaErrorLine,
    LineDecoder,
    LogEvent,
    MalformedLine,
    StreamEvent,
    decode_line,
)


def strip(line: bytes) -> bytes:
    return line.rstrip(b"\n")


def test_session_messages() -> None:
    assert decode_line(strip(wire.session_line("s", "stream", {"a": 1}))) == StreamEvent({"a": 1})
    assert decode_line(strip(wire.end_line("s"))) == EndEvent({})
    err = decode_line(strip(wire.error_line("s", "InvokeBadRequestError", "boom", {"description": "boom"})))
    assert err == ErrorEvent("InvokeBadRequestError", "boom", {"description": "boom"})


def test_other_events() -> None:
    log = b'{"event":"log","session_id":null,"data":{"level":"warn","message":"hi","timestamp":1.0}}'
    assert decode_line(log) == LogEvent("warn", "hi")
    assert decode_line(b'{"event":"heartbeat","session_id":null,"data":{}}') is None
    lam = decode_line(b'{"errorType":"Runtime.ExitError","errorMessage":"x","requestId":"r"}')
    assert lam == LambdaErrorLine("Runtime.ExitError", "x", "r")
    invoke = decode_line(strip(wire.session_line("s", "invoke", {})))
    assert isinstance(invoke, ErrorEvent) and invoke.error_type == "serverless_event_not_supported"


@pytest.mark.parametrize(
    "line",
    [
        b"<html>bad gateway</html>",
        b"[1,2]",
        b'{"event":"session","data":{"nope":1}}',
        b'{"event":"session","data":{"type":"weird"}}',
        b'{"event":"bogus"}',
        b'{"event":"session","data":{"type":"error","data":"text"}}',
    ],
)
def test_malformed(line: bytes) -> None:
    with pytest.raises(MalformedLine) as info:
        decode_line(line)
    assert "bad gateway" not in str(info.value)


def test_decoder_splits_across_chunks_and_skips_empty_lines() -> None:
    decoder = LineDecoder()
    data = wire.session_line("s", "stream", {"t": "x" * 50}) + wire.end_line("s")
    lines: list[bytes] = []
    for i in range(0, len(data), 7):
        lines += decoder.feed(data[i : i + 7])
    lines += decoder.flush()
    assert [decode_line(x) for x in lines] == [StreamEvent({"t": "x" * 50}), EndEvent({})]


def test_decoder_flush_returns_unterminated_line() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b'{"a":') == []
    assert decoder.flush() == [b'{"a":']
    assert decoder.flush() == []


def test_decoder_line_limit() -> None:
    decoder = LineDecoder(max_line_bytes=16)
    with pytest.raises(MalformedLine, match="16-byte limit"):
        decoder.feed(b"x" * 20)
    with pytest.raises(MalformedLine, match="16-byte limit"):
        LineDecoder(max_line_bytes=16).feed(b"y" * 16 + b"\n")
