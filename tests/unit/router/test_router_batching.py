"""Request-size guard and serial batching of embedding calls."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from router_fakes import FakeClock, ScriptedTransport, body_json, end, ok, stream

from dify_lambda import wire
from dify_lambda.router.batching import (
    ItemTooLarge,
    encoded_size,
    merge_embeddings,
    merge_num_tokens,
    plan_batches,
    too_large_message,
)
from dify_lambda.router.client import Router
from dify_lambda.router.errors import PayloadTooLargeError
from dify_lambda.router.routes import parse_route_table

HOST = "emb.lambda-url.us-east-1.on.aws"
PLUGIN = "langgenius/mocklab"


def test_too_large_message_format() -> None:
    assert too_large_message("invoke_llm", 10, 5) == (
        "ServerlessPayloadTooLarge: action=invoke_llm payload_bytes=10 max_request_bytes=5"
    )
    assert too_large_message("invoke_text_embedding", 10, 5, 3).endswith(" item_index=3")


def test_encoded_size_matches_envelope_encoding() -> None:
    env = wire.build_envelope("x", {"texts": ["héllo", 'q"uote']}, user_id="u", session_id="s")
    assert encoded_size(env) == len(wire.encode_envelope(env))


def test_plan_batches_fit_exactly() -> None:
    texts = [f"text-{i}-" + "x" * (i * 3) for i in range(40)]
    env = wire.build_envelope("invoke_text_embedding", {"texts": []}, user_id="u", session_id="s")
    base = encoded_size(env)
    limit = base + 200
    ranges = plan_batches(base, texts, limit)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(texts)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    for start, end_ in ranges:
        part = wire.build_envelope(
            "invoke_text_embedding", {"texts": texts[start:end_]}, user_id="u", session_id="s"
        )
        assert len(wire.encode_envelope(part)) <= limit
        if end_ < len(texts):  # greedy: adding the next text would overflow
            bigger = wire.build_envelope(
                "invoke_text_embedding", {"texts": texts[start : end_ + 1]}, user_id="u", session_id="s"
            )
            assert len(wire.encode_envelope(bigger)) > limit


def test_plan_batches_item_too_large() -> None:
    with pytest.raises(ItemTooLarge) as info:
        plan_batches(100, ["a", "b" * 500, "c"], 300)
    assert info.value.index == 1


def test_plan_batches_empty() -> None:
    assert plan_batches(10, [], 100) == [(0, 0)]


def test_merge_embeddings_sums_usage_and_keeps_order() -> None:
    def result(vecs: list[list[float]], tokens: int, price: str, latency: float) -> dict[str, Any]:
        usage = {"tokens": tokens, "total_tokens": tokens, "unit_price": "0.1", "price_unit": "0.001",
                 "total_price": price, "currency": "USD", "latency": latency}  # fmt: skip
        return {"model": "emb", "embeddings": vecs, "usage": usage}

    merged = merge_embeddings([result([[1.0]], 3, "0.0003", 0.5), result([[2.0], [3.0]], 4, "0.0004", 0.25)])
    assert merged["embeddings"] == [[1.0], [2.0], [3.0]]
    assert merged["usage"]["tokens"] == 7 and merged["usage"]["total_tokens"] == 7
    assert merged["usage"]["total_price"] == "0.0007"
    assert merged["usage"]["latency"] == 0.75
    assert merged["usage"]["currency"] == "USD" and merged["model"] == "emb"


def test_merge_num_tokens() -> None:
    assert merge_num_tokens([{"num_tokens": [1, 2]}, {"num_tokens": [3]}]) == {"num_tokens": [1, 2, 3]}


def _router(script: list[Any], max_bytes: int) -> tuple[Router, ScriptedTransport]:
    clock = FakeClock()
    transport = ScriptedTransport({HOST: script}, clock)
    table = parse_route_table(
        {"routes": {PLUGIN: {"deployments": [{"url": f"https://{HOST}/", "auth": "none"}]}}}, source="t"
    )
    return Router(
        table, transport=transport, clock=clock, sleep=clock.sleep, max_request_bytes=max_bytes
    ), transport


def _num_tokens_reply(request_texts: int) -> Any:
    return ok(stream({"num_tokens": list(range(request_texts))}), end())


def test_router_batches_num_tokens_serially_in_order() -> None:
    texts = [f"t{i:02d}" + "z" * 30 for i in range(12)]
    data = {
        "provider": "mocklab",
        "model_type": "text-embedding",
        "model": "e",
        "credentials": {},
        "texts": texts,
    }
    full = len(wire.encode_envelope(wire.build_envelope("get_text_embedding_num_tokens", data, user_id="u")))
    limit = full - 150  # force at least two batches
    # Replies are scripted per request after we know the split: plan it the same way the router does.
    base_env = wire.build_envelope(
        "get_text_embedding_num_tokens", {**data, "texts": []}, user_id="u", session_id=wire.new_session_id()
    )
    ranges = plan_batches(encoded_size(base_env), texts, limit)
    assert len(ranges) >= 2
    replies = [ok(stream({"num_tokens": [int(t[1:3]) for t in texts[a:b]]}), end()) for a, b in ranges]
    router, transport = _router(replies, limit)
    result = router.get_text_embedding_num_tokens("t", "u", PLUGIN, "mocklab", "e", {}, texts)
    assert result == list(range(12))
    sent = [body_json(r)["data"]["texts"] for r in transport.requests]
    assert [t for batch in sent for t in batch] == texts
    assert all(len(r.content) <= limit for r in transport.requests)
    assert len({body_json(r)["session_id"] for r in transport.requests}) == len(ranges)


def test_router_rejects_oversized_non_batchable_before_io() -> None:
    router, transport = _router([], 1000)
    data = {
        "provider": "p",
        "model_type": "llm",
        "model": "m",
        "credentials": {},
        "prompt_messages": [{"role": "user", "content": "x" * 2000}],
    }
    with pytest.raises(PayloadTooLargeError) as info:
        list(router.invoke(PLUGIN, "invoke_llm", data, user_id="u"))
    assert str(info.value).startswith("ServerlessPayloadTooLarge: action=invoke_llm payload_bytes=")
    assert str(info.value).endswith(" max_request_bytes=1000")
    assert "xxxx" not in str(info.value)
    assert transport.requests == []


def test_router_single_text_too_large_names_item() -> None:
    router, transport = _router([], 600)
    data = {
        "provider": "p",
        "model_type": "text-embedding",
        "model": "m",
        "credentials": {},
        "texts": ["a", "b" * 700],
        "input_type": "document",
    }
    with pytest.raises(PayloadTooLargeError) as info:
        list(router.invoke(PLUGIN, "invoke_text_embedding", data, user_id="u"))
    assert info.value.item_index == 1
    assert str(info.value).endswith(" item_index=1")
    payload = json.dumps(data)
    assert payload not in str(info.value)
    assert transport.requests == []
