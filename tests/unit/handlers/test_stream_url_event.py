"""The emulator's function URL 2.0 event, built from one HTTP request (pure)."""

from __future__ import annotations

import base64

from dify_lambda.emulator.function_url import LOCAL_IAM_IDENTITY, build_event
from dify_lambda.handlers.http import from_function_url_event


def _event(**overrides: object) -> dict[str, object]:
    args: dict[str, object] = {
        "method": "post",
        "target": "/invoke?action=invoke_llm",
        "headers": [("Content-Type", "application/json"), ("Host", "127.0.0.1:9000")],
        "body": b'{"a":1}',
        "source_ip": "127.0.0.1",
        "request_id": "rid-1",
        "url_id": "abc123",
        "iam": None,
        "now": 1763924638.5,
    }
    args.update(overrides)
    return build_event(**args)  # type: ignore[arg-type]


def test_shape_matches_payload_format_2_0() -> None:
    event = _event()
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/invoke"
    assert event["rawQueryString"] == "action=invoke_llm"
    assert event["queryStringParameters"] == {"action": "invoke_llm"}
    assert event["headers"] == {"content-type": "application/json", "host": "127.0.0.1:9000"}
    assert event["body"] == '{"a":1}' and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert isinstance(ctx, dict)
    assert ctx["http"]["method"] == "POST"
    assert ctx["requestId"] == "rid-1" and ctx["stage"] == "$default"
    assert ctx["timeEpoch"] == 1763924638500
    assert ctx["time"] == "23/Nov/2025:19:03:58 +0000"
    assert "authorizer" not in ctx and ctx["accountId"] == "anonymous"


def test_repeated_headers_are_comma_joined_and_cookies_split() -> None:
    event = _event(headers=[("X-A", "1"), ("x-a", "2"), ("Cookie", "k=v; k2=v2")])
    assert event["headers"] == {"x-a": "1,2"}
    assert event["cookies"] == ["k=v", "k2=v2"]


def test_non_utf8_body_is_base64() -> None:
    event = _event(body=b"\xff\x00\xfe")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(str(event["body"])) == b"\xff\x00\xfe"


def test_empty_body_is_absent() -> None:
    event = _event(body=b"", target="/health")
    assert "body" not in event and "queryStringParameters" not in event


def test_iam_identity_goes_into_the_authorizer() -> None:
    event = _event(iam=LOCAL_IAM_IDENTITY)
    ctx = event["requestContext"]
    assert isinstance(ctx, dict)
    assert ctx["authorizer"] == {"iam": LOCAL_IAM_IDENTITY}


def test_the_handler_reads_the_event_back() -> None:
    request = from_function_url_event(_event(body=b"\x00\x01binary"), max_body_bytes=1024)
    assert request.method == "POST" and request.path == "/invoke"
    assert request.query == "action=invoke_llm"
    assert request.body == b"\x00\x01binary"
    assert request.request_id == "rid-1"
