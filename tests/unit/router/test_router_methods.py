"""Convenience methods named like Dify's PluginModelClient: request data and return values."""

from __future__ import annotations

import binascii
import io
from typing import Any

import pytest
from router_fakes import FakeClock, ScriptedTransport, body_json, end, error, llm_chunk, ok, stream

from dify_lambda.router.client import Router
from dify_lambda.router.errors import PluginInvokeError
from dify_lambda.router.routes import parse_route_table

HOST = "m.lambda-url.us-east-1.on.aws"
PID = "langgenius/mocklab"
CREDS = {"api_key": "k"}


def make(*replies: Any) -> tuple[Router, ScriptedTransport]:
    clock = FakeClock()
    transport = ScriptedTransport({HOST: list(replies)}, clock)
    table = parse_route_table(
        {"routes": {PID: {"deployments": [{"url": f"https://{HOST}", "auth": "none"}]}}}, source="t"
    )
    return Router(table, transport=transport, clock=clock, sleep=clock.sleep), transport


def sent(transport: ScriptedTransport) -> dict[str, Any]:
    data: dict[str, Any] = body_json(transport.requests[-1])["data"]
    return data


def test_invoke_llm_is_lazy_and_streams_chunks() -> None:
    chunks = [llm_chunk("a"), llm_chunk("b", 1)]
    router, transport = make(ok(*(stream(c) for c in chunks), end()))
    it = router.invoke_llm(
        "t1", "u1", PID, "mocklab", "m", CREDS, [{"role": "user", "content": "hi"}], {"temperature": 0.1}
    )
    assert transport.requests == []
    assert list(it) == chunks
    assert sent(transport) == {
        "user_id": "u1", "type": "model", "action": "invoke_llm", "provider": "mocklab", "model_type": "llm",
        "model": "m", "credentials": CREDS, "prompt_messages": [{"role": "user", "content": "hi"}],
        "model_parameters": {"temperature": 0.1}, "tools": None, "stop": None, "stream": True,
    }  # fmt: skip


def test_user_id_none_becomes_empty() -> None:
    router, transport = make(ok(stream({"num_tokens": 5}), end()))
    assert router.get_llm_num_tokens("t", None, PID, "mocklab", "llm", "m", CREDS, []) == 5
    assert sent(transport)["user_id"] == ""  # as the daemon forwards an absent user_id
    assert sent(transport)["action"] == "get_llm_num_tokens"


def test_embedding_rerank_moderation() -> None:
    emb = {"model": "e", "embeddings": [[0.1]], "usage": {"tokens": 1}}
    rerank = {"model": "r", "docs": [{"index": 0, "text": "x", "score": 0.9}]}
    router, transport = make(
        ok(stream(emb), end()), ok(stream(rerank), end()), ok(stream({"result": True}), end())
    )
    assert router.invoke_text_embedding("t", "u", PID, "mocklab", "e", CREDS, ["x"], "query") == emb
    assert sent(transport)["input_type"] == "query" and sent(transport)["model_type"] == "text-embedding"
    assert router.invoke_rerank("t", "u", PID, "mocklab", "r", CREDS, "q", ["x"], None, 3) == rerank
    assert (sent(transport)["score_threshold"], sent(transport)["top_n"]) == (None, 3)
    assert router.invoke_moderation("t", "u", PID, "mocklab", "mod", CREDS, "text") is True


def test_tts_decodes_hex_and_stt_encodes_hex() -> None:
    audio = [b"\x00\x01", b"\xff"]
    router, transport = make(
        ok(*(stream({"result": binascii.hexlify(a).decode()}) for a in audio), end()),
        ok(stream({"result": "hello"}), end()),
    )
    assert list(router.invoke_tts("t9", "u", PID, "mocklab", "tts", CREDS, "say", "v1")) == audio
    assert sent(transport)["tenant_id"] == "t9" and sent(transport)["voice"] == "v1"
    assert (
        router.invoke_speech2text("t", "u", PID, "mocklab", "stt", CREDS, io.BytesIO(b"\x10\x20")) == "hello"
    )
    assert sent(transport)["file"] == "1020"
    assert router.invoke_speech_to_text == router.invoke_speech2text  # Dify's name


def test_voices_and_schema() -> None:
    router, _ = make(
        ok(stream({"voices": [{"name": "A", "value": "a", "extra": 1}]}), end()),
        ok(stream({"model_schema": {"model": "m"}}), end()),
        ok(stream({"model_schema": None}), end()),
    )
    assert router.get_tts_model_voices("t", "u", PID, "mocklab", "tts", CREDS, "en") == [
        {"name": "A", "value": "a"}
    ]
    assert router.get_model_schema("t", "u", PID, "mocklab", "llm", "m", CREDS) == {"model": "m"}
    assert router.get_model_schema("t", "u", PID, "mocklab", "llm", "x", CREDS) is None


def test_validate_updates_credentials_in_place() -> None:
    router, transport = make(
        ok(stream({"result": True, "credentials": {"api_key": "k", "added": "1"}}), end()),
        ok(stream({"result": True, "credentials": {}}), end()),
    )
    creds = dict(CREDS)
    assert router.validate_provider_credentials("t", "u", PID, "mocklab", creds) is True
    assert creds == {"api_key": "k", "added": "1"}
    assert set(sent(transport)) == {"user_id", "type", "action", "provider", "credentials"}
    assert router.validate_model_credentials("t", "u", PID, "mocklab", "llm", "m", creds) is True
    assert sent(transport)["model"] == "m"


def test_validate_failure_raises_plugin_error() -> None:
    router, _ = make(ok(error("CredentialsValidateFailedError", "bad key"), end()))
    with pytest.raises(PluginInvokeError) as info:
        router.validate_provider_credentials("t", "u", PID, "mocklab", {})
    assert info.value.error_type == "CredentialsValidateFailedError"


def test_multimodal() -> None:
    res = {"model": "e", "embeddings": [], "usage": {}}
    router, transport = make(ok(stream(res), end()), ok(stream({"model": "r", "docs": []}), end()))
    docs = [{"content": "x", "content_type": "text"}]
    assert router.invoke_multimodal_embedding("t", "u", PID, "mocklab", "e", CREDS, docs) == res
    assert sent(transport)["documents"] == docs and sent(transport)["input_type"] == "document"
    router.invoke_multimodal_rerank("t", "u", PID, "mocklab", "r", CREDS, docs[0], docs)
    assert sent(transport)["action"] == "invoke_multimodal_rerank"
