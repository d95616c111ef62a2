"""Pure framing of the streaming transport: chunks, prelude, error bodies, invocation context."""

from __future__ import annotations

import base64
import json

import pytest

from dify_lambda.handlers.runtime_api import (
    DELIMITER,
    ErrorInfo,
    Invocation,
    RuntimeApiClient,
    RuntimeApiError,
    encode_chunk,
    encode_prelude,
)


@pytest.mark.parametrize("size", [1, 9, 10, 15, 16, 255, 4096, 70000])
def test_chunk_size_is_lowercase_hex_without_extensions(size: int) -> None:
    data = b"x" * size
    frame = encode_chunk(data)
    head, _, rest = frame.partition(b"\r\n")
    assert head == format(size, "x").encode()
    assert head == head.lower()
    assert rest == data + b"\r\n"


def test_empty_chunk_sends_nothing() -> None:
    assert encode_chunk(b"") == b""


def test_delimiter_is_eight_nul_bytes() -> None:
    assert DELIMITER == b"\x00" * 8


def test_prelude_is_compact_and_moves_cookies_and_drops_hop_by_hop() -> None:
    raw = encode_prelude(
        200,
        {
            "Content-Type": "text/html",
            "Content-Length": "5",
            "Transfer-Encoding": "chunked",
            "Set-Cookie": "a=1",
        },
        ["b=2"],
    )
    assert b" " not in raw.replace(b"text/html", b"")
    assert json.loads(raw) == {
        "statusCode": 200,
        "headers": {"Content-Type": "text/html"},
        "cookies": ["b=2", "a=1"],
    }


def test_prelude_defaults_the_content_type() -> None:
    assert json.loads(encode_prelude(404, {}, []))["headers"] == {"content-type": "application/octet-stream"}


def test_prelude_never_contains_nul() -> None:
    raw = encode_prelude(200, {"x-odd": "a\x00b"}, ["c=\x00"])
    assert b"\x00" not in raw
    assert json.loads(raw)["headers"]["x-odd"] == "a\x00b"


def _raise() -> None:
    raise KeyError("missing thing")


def test_error_info_from_exception() -> None:
    try:
        _raise()
    except KeyError as exc:
        info = ErrorInfo.from_exception(exc, category="Function")
    assert info.error_type == "Function.KeyError"
    assert info.error_class == "KeyError"
    assert info.message == "'missing thing'"
    assert any("_raise" in line for line in info.trace)
    trailer = json.loads(base64.b64decode(info.trailer_body(), validate=True))
    assert trailer == {"errorType": "KeyError", "errorMessage": "'missing thing'", "trace": info.trace}
    body = json.loads(info.json_body())
    assert body == {"errorMessage": "'missing thing'", "errorType": "KeyError", "stackTrace": info.trace}


def test_trailer_body_is_single_line_ascii() -> None:
    info = ErrorInfo("Function.X", "X", "multi\nline ünïcode", ["a", "b"])
    value = info.trailer_body()
    assert value.isascii() and "\n" not in value and "\r" not in value


@pytest.mark.parametrize("address", ["", "localhost", "host:", ":9001", "host:port"])
def test_runtime_api_address_must_be_host_port(address: str) -> None:
    with pytest.raises(RuntimeApiError, match="HOST:PORT"):
        RuntimeApiClient(address)


def test_invocation_event_is_the_json_body() -> None:
    inv = Invocation(request_id="r-1", body=b'{"rawPath": "/"}', headers={})
    assert inv.event() == {"rawPath": "/"}
