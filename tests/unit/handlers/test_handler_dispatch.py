from __future__ import annotations

import json
from typing import Any

import pytest

from dify_lambda import wire
from dify_lambda.errors import RequestError
from dify_lambda.handlers.dispatch import parse_envelope
from dify_lambda.handlers.errors import InvalidRequestError, UnknownActionError


def body(envelope: Any) -> bytes:
    return json.dumps(envelope).encode()


def good(**changes: Any) -> dict[str, Any]:
    envelope = wire.build_envelope("invoke_llm", {"provider": "p"}, user_id="u", session_id="s-1")
    envelope.update(changes)
    return envelope


def test_valid_envelope() -> None:
    envelope = good(conversation_id="c", context={"k": 1})
    invocation = parse_envelope(body(envelope))
    assert invocation.session_id == "s-1"
    assert invocation.action == "invoke_llm"
    assert invocation.data == envelope["data"]
    assert invocation.conversation_id == "c"
    assert invocation.context == {"k": 1}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "request body is empty"),
        (b"{nope", "request body is not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1,2]", "must be a JSON object, got array"),
        (body({k: v for k, v in good().items() if k != "event"}), "field 'event' is missing"),
        (body(good(event="backwards_response")), "field 'event' must be \"request\""),
        (body({k: v for k, v in good().items() if k != "session_id"}), "field 'session_id' is missing"),
        (body(good(session_id=7)), "field 'session_id' must be a string, got number"),
        (body(good(session_id="")), "field 'session_id' is empty"),
        (body({k: v for k, v in good().items() if k != "data"}), "field 'data' is missing"),
        (body(good(data="x")), "field 'data' must be an object, got string"),
        (body(good(app_id=1)), "field 'app_id' must be a string or null, got number"),
        (body(good(context=[])), "field 'context' must be an object or null, got array"),
        (body(good(data={"action": "invoke_llm"})), "field 'data.type' is missing"),
        (
            body(good(data={"type": "model", "action": None})),
            "field 'data.action' must be a string, got null",
        ),
    ],
)
def test_bad_envelopes_are_400_naming_the_field(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_envelope(raw)
    assert info.value.status == 400
    assert message in str(info.value)


def test_unknown_action_and_type_name_the_field_never_the_value() -> None:
    with pytest.raises(UnknownActionError, match=r"data\.action is not a model action") as info:
        parse_envelope(body(good(data={"type": "model", "action": "invoke_text2img", "user_id": "u"})))
    assert "invoke_text2img" not in str(info.value)
    assert "invoke_llm" in str(info.value), "the accepted actions are listed"
    with pytest.raises(UnknownActionError, match=r"data\.type is not served") as info:
        parse_envelope(body(good(data={"type": "tool-secret", "action": "invoke_tool", "user_id": "u"})))
    assert "tool-secret" not in str(info.value)


def test_deep_nesting_is_400() -> None:
    for raw in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        with pytest.raises(InvalidRequestError, match="nests JSON arrays or objects too deeply") as info:
            parse_envelope(raw)
        assert info.value.status == 400


def test_lone_surrogates_are_400_naming_the_field() -> None:
    raw = body(good(session_id="s\ud800"))
    assert b"\\ud800" in raw
    with pytest.raises(InvalidRequestError, match="field 'session_id' with a lone UTF-16 surrogate"):
        parse_envelope(raw)
    deep = body(good(data={"type": "model", "action": "invoke_llm", "user_id": "\udfff"}))
    with pytest.raises(InvalidRequestError, match="has a string with a lone UTF-16 surrogate"):
        parse_envelope(deep)
    paired = body(good(data={"type": "model", "action": "invoke_llm", "user_id": "\U0001f600 \\ud800"}))
    assert parse_envelope(paired).data["user_id"] == "\U0001f600 \\ud800"


def test_every_model_action_is_routable() -> None:
    for action in wire.MODEL_ACTIONS:
        assert parse_envelope(body(wire.build_envelope(action, {}, user_id="u"))).action == action


def test_request_errors_are_request_errors() -> None:
    assert issubclass(InvalidRequestError, RequestError)
