"""The demo plugins load under the real SDK's serverless server and answer every catalogue case.

One SDK server per plugin (module scope) runs in a subprocess; every case of the shared catalogue
is posted to it as the daemon would, and the event lines are checked for their framing and for
the payload shape of the action (docs/wire-protocol.md §3 and §4.3).
"""

from __future__ import annotations

import binascii
import json
import math
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.catalog import (
    CASES,
    GOOD_CREDENTIALS,
    PLUGINS_DIR,
    Case,
    case,
    envelope,
    llm,
)
from support.sdk_server import SdkServer, invoke, start_sdk_server

from dify_lambda.wire import MAX_LINE_BYTES, MODEL_ACTIONS

# One xdist worker runs the module (--dist loadgroup): SDK servers, once per run.
pytestmark = pytest.mark.xdist_group("test_demo_plugins")

LLM_USAGE_FIELDS = {
    "prompt_tokens",
    "prompt_unit_price",
    "prompt_price_unit",
    "prompt_price",
    "completion_tokens",
    "completion_unit_price",
    "completion_price_unit",
    "completion_price",
    "total_tokens",
    "total_price",
    "currency",
    "latency",
}
EMBEDDING_USAGE_FIELDS = {
    "tokens",
    "total_tokens",
    "unit_price",
    "price_unit",
    "total_price",
    "currency",
    "latency",
}


@pytest.fixture(scope="module")
def mockgpt_server() -> Iterator[SdkServer]:
    with start_sdk_server(PLUGINS_DIR / "mockgpt", env={"MOCKGPT_WORD_DELAY": "0"}) as server:
        yield server


@pytest.fixture(scope="module")
def mocklab_server() -> Iterator[SdkServer]:
    with start_sdk_server(PLUGINS_DIR / "mocklab") as server:
        yield server


def server_for(request: pytest.FixtureRequest, plugin: str) -> SdkServer:
    server: SdkServer = request.getfixturevalue(f"{plugin}_server")
    return server


def send(server: SdkServer, c: Case) -> tuple[str, list[dict[str, Any]]]:
    session_id = str(uuid.uuid4())
    return session_id, invoke(server.url, envelope(c, session_id))


def split(events: list[dict[str, Any]]) -> tuple[list[Any], list[dict[str, Any]]]:
    streams = [e["data"]["data"] for e in events if e["data"]["type"] == "stream"]
    errors = [e["data"]["data"] for e in events if e["data"]["type"] == "error"]
    return streams, errors


# --- framing -------------------------------------------------------------------------------------


def check_framing(session_id: str, events: list[dict[str, Any]]) -> None:
    assert events, "no event lines"
    for event in events:
        assert list(event) == ["event", "session_id", "data"]
        assert event["event"] == "session"
        assert event["session_id"] == session_id
        assert event["data"]["type"] in {"stream", "error", "end"}
        assert len(json.dumps(event).encode()) < MAX_LINE_BYTES
    types = [e["data"]["type"] for e in events]
    assert types[-1] == "end" and types.count("end") == 1
    assert events[-1]["data"]["data"] == {}


def check_error(c: Case, events: list[dict[str, Any]]) -> None:
    streams, errors = split(events)
    assert len(errors) == 1
    assert events[-2]["data"]["type"] == "error", "the error must come right before end"
    error = errors[0]
    assert set(error) >= {"error_type", "message", "args"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["args"], dict)
    assert error["error_type"] == c.error_type
    # Messages must never carry credentials.
    assert GOOD_CREDENTIALS["api_key"] not in error["message"]
    if error["error_type"].startswith("Invoke"):
        assert error["args"]["description"] == error["message"]
        assert error["message"].startswith("[models] ")
    assert bool(streams) == c.partial


# --- payload shapes per action (docs/wire-protocol.md §4.3)-----------------------------------


def check_usage(usage: dict[str, Any]) -> None:
    assert set(usage) >= LLM_USAGE_FIELDS
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    total = Decimal(usage["prompt_price"]) + Decimal(usage["completion_price"])
    assert Decimal(usage["total_price"]) == total
    expected_prompt = (
        Decimal(usage["prompt_tokens"])
        * Decimal(usage["prompt_unit_price"])
        * Decimal(usage["prompt_price_unit"])
    )
    assert Decimal(usage["prompt_price"]) == expected_prompt.quantize(Decimal("0.0000001"))


def check_llm(c: Case, streams: list[Any]) -> None:
    for index, chunk in enumerate(streams):
        assert set(chunk) == {"model", "prompt_messages", "system_fingerprint", "delta"}
        assert chunk["model"] == c.data["model"]
        assert chunk["prompt_messages"] == []
        delta = chunk["delta"]
        assert delta["index"] == index
        assert delta["message"]["role"] == "assistant"
        assert isinstance(delta["message"]["content"], str)
        if index < len(streams) - 1:
            assert delta["usage"] is None
    last = streams[-1]["delta"]
    check_usage(last["usage"])
    if c.data["stream"]:
        assert last["finish_reason"] in {"stop", "length", "tool_calls"}
    else:
        assert len(streams) == 1, "non-stream answers are exactly one chunk"


def check_embedding(c: Case, payload: dict[str, Any]) -> None:
    inputs = c.data.get("texts", c.data.get("documents"))
    assert payload["model"] == c.data["model"]
    assert len(payload["embeddings"]) == len(inputs)
    for vector in payload["embeddings"]:
        assert len(vector) == 64
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-9)
    assert set(payload["usage"]) == EMBEDDING_USAGE_FIELDS


def check_rerank(c: Case, payload: dict[str, Any]) -> None:
    docs = payload["docs"]
    sent = c.data["docs"]
    assert payload["model"] == c.data["model"]
    scores = [d["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    limit = c.data["top_n"] or len(sent)  # 0 and null both mean "not set"
    assert len(docs) <= limit
    if not c.data["score_threshold"]:
        assert len(docs) == min(limit, len(sent))
    assert len({d["index"] for d in docs}) == len(docs)
    for doc in docs:
        original = sent[doc["index"]]
        assert doc["text"] == (original["content"] if isinstance(original, dict) else original)
        assert 0.0 <= doc["score"] <= 1.0
        assert doc["score"] >= (c.data["score_threshold"] or 0)


def check_payload(c: Case, streams: list[Any]) -> None:
    action = c.action
    assert streams, "an ok answer has at least one stream message"
    if action == "invoke_llm":
        check_llm(c, streams)
        return
    if action == "invoke_tts":
        audio = b"".join(binascii.unhexlify(s["result"]) for s in streams)
        assert all(s.get("mime_type") == "audio/wav" for s in streams)
        assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"
        return
    assert len(streams) == 1, f"{action} answers with one stream message"
    payload = streams[0]
    if action in {"invoke_text_embedding", "invoke_multimodal_embedding"}:
        check_embedding(c, payload)
    elif action == "get_text_embedding_num_tokens":
        assert len(payload["num_tokens"]) == len(c.data["texts"])
        assert all(isinstance(n, int) and n >= 0 for n in payload["num_tokens"])
    elif action == "get_llm_num_tokens":
        assert isinstance(payload["num_tokens"], int) and payload["num_tokens"] > 0
    elif action in {"invoke_rerank", "invoke_multimodal_rerank"}:
        check_rerank(c, payload)
    elif action == "get_tts_model_voices":
        assert all(set(v) == {"name", "value"} for v in payload["voices"])
    elif action in {"invoke_speech2text"}:
        assert isinstance(payload["result"], str) and payload["result"]
    elif action == "invoke_moderation":
        assert isinstance(payload["result"], bool)
    elif action in {"validate_provider_credentials", "validate_model_credentials"}:
        assert payload == {"result": True, "credentials": c.data["credentials"]}
    elif action == "get_ai_model_schemas":
        schema = payload["model_schema"]
        assert schema is None or schema["model"] == c.data["model"]
    elif action in {"start_polling", "check_polling"}:
        status = payload["status"]
        assert status in {"running", "succeeded", "failed"}
        if status == "running":
            assert payload["plugin_state"]
        elif status == "succeeded":
            assert payload["result"]["message"]["content"]
            check_usage(payload["result"]["usage"])
        else:
            assert payload["error"]
    else:  # pragma: no cover - a new action needs a shape check
        pytest.fail(f"no shape check for {action}")


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_catalogue_case(request: pytest.FixtureRequest, c: Case) -> None:
    session_id, events = send(server_for(request, c.plugin), c)
    check_framing(session_id, events)
    streams, _ = split(events)
    if c.expect == "ok":
        assert not split(events)[1], f"unexpected error: {split(events)[1]}"
        check_payload(c, streams)
    elif c.expect == "plugin_error":
        check_error(c, events)
    else:
        assert [e["data"]["type"] for e in events] == ["end"]


# --- the catalogue covers every model action -----------------------------------------------------


def test_catalogue_answers_every_model_action_successfully() -> None:
    succeeded = {c.action for c in CASES if c.expect == "ok"}
    assert set(MODEL_ACTIONS) <= succeeded


def test_catalogue_sets_word_delay_zero_unless_timing() -> None:
    for c in CASES:
        if c.action in {"invoke_llm", "start_polling"} and "model_parameters" in c.data:
            delay = c.data["model_parameters"].get("word_delay")
            slow = isinstance(delay, int | float) and delay > 0
            assert slow == c.timing, c.name


# --- behaviour across calls ----------------------------------------------------------------------


def text_of(streams: list[Any]) -> str:
    return "".join(s["delta"]["message"]["content"] for s in streams)


def test_stream_and_nonstream_give_the_same_reply(mockgpt_server: SdkServer) -> None:
    _, streamed = send(mockgpt_server, case("llm_stream"))
    _, whole = send(mockgpt_server, case("llm_nonstream"))
    stream_chunks, single = split(streamed)[0], split(whole)[0]
    assert len(stream_chunks) > 2
    assert text_of(stream_chunks) == single[0]["delta"]["message"]["content"]
    stream_usage, single_usage = stream_chunks[-1]["delta"]["usage"], single[0]["delta"]["usage"]
    for key in ("prompt_tokens", "completion_tokens", "total_price"):
        assert stream_usage[key] == single_usage[key]


def test_llm_usage_prices_come_from_the_model_yaml(mockgpt_server: SdkServer) -> None:
    pricing = yaml.safe_load((PLUGINS_DIR / "mockgpt/models/llm/llm.yaml").read_text())["pricing"]
    _, events = send(mockgpt_server, case("llm_stream"))
    usage = split(events)[0][-1]["delta"]["usage"]
    assert Decimal(usage["prompt_unit_price"]) == Decimal(pricing["input"])
    assert Decimal(usage["completion_unit_price"]) == Decimal(pricing["output"])
    assert Decimal(usage["completion_price_unit"]) == Decimal(pricing["unit"])
    assert usage["currency"] == pricing["currency"]


@pytest.mark.parametrize("name", ["llm_echo", "llm_unicode"])
def test_echo_replies_verbatim(mockgpt_server: SdkServer, name: str) -> None:
    c = case(name)
    expected = c.data["prompt_messages"][-1]["content"].removeprefix("echo:")
    _, events = send(mockgpt_server, c)
    assert text_of(split(events)[0]) == expected


def test_stop_sequence_and_max_tokens(mockgpt_server: SdkServer) -> None:
    _, stopped = send(mockgpt_server, case("llm_stop_sequence"))
    assert text_of(split(stopped)[0]) == "alpha beta "
    _, limited = send(mockgpt_server, case("llm_max_tokens"))
    chunks = split(limited)[0]
    assert text_of(chunks) == "w1 w2 w3 w4 w5"
    assert chunks[-1]["delta"]["finish_reason"] == "length"


def test_tool_call(mockgpt_server: SdkServer) -> None:
    _, events = send(mockgpt_server, case("llm_tool_call"))
    last = split(events)[0][-1]["delta"]
    assert last["finish_reason"] == "tool_calls"
    (call,) = last["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert call["id"]
    json.loads(call["function"]["arguments"])


def test_words_stream_one_message_per_word(mockgpt_server: SdkServer) -> None:
    _, events = send(mockgpt_server, case("llm_long_stream"))
    chunks = split(events)[0]
    assert len(chunks) == 201
    assert text_of(chunks).split(" ") == [f"w{i}" for i in range(1, 201)]


def test_crash_midstream_streams_three_words_first(mockgpt_server: SdkServer) -> None:
    _, events = send(mockgpt_server, case("llm_crash_midstream"))
    assert len(split(events)[0]) == 3


def test_replies_are_deterministic(mockgpt_server: SdkServer) -> None:
    first = text_of(split(send(mockgpt_server, case("llm_chat_history"))[1])[0])
    second = text_of(split(send(mockgpt_server, case("llm_chat_history"))[1])[0])
    assert first == second and first


def test_customizable_model_schema(mockgpt_server: SdkServer) -> None:
    _, events = send(mockgpt_server, case("gpt_schema_customizable"))
    schema = split(events)[0][0]["model_schema"]
    assert schema["fetch_from"] == "customizable-model"
    assert schema["model_properties"]["context_size"] == int(
        case("gpt_schema_customizable").data["credentials"]["context_size"]
    )
    assert {rule["name"] for rule in schema["parameter_rules"]} >= {"temperature", "max_tokens", "word_delay"}
    _, predefined = send(mockgpt_server, case("gpt_schema_predefined"))
    assert split(predefined)[0][0]["model_schema"]["fetch_from"] == "predefined-model"


def test_polling_round_trip(mockgpt_server: SdkServer) -> None:
    start = case("poll_start")
    _, events = send(mockgpt_server, start)
    result = split(events)[0][0]
    checks = 0
    while result["status"] == "running":
        checks += 1
        assert checks <= 5, "polling never finished"
        check = Case(
            name="poll_follow_up",
            plugin="mockgpt",
            action="check_polling",
            data={k: start.data[k] for k in ("provider", "model_type", "model", "credentials")}
            | {"plugin_state": result["plugin_state"]},
        )
        _, events = send(mockgpt_server, check)
        result = split(events)[0][0]
    assert result["status"] == "succeeded"
    _, direct = send(mockgpt_server, Case("direct", "mockgpt", "invoke_llm", llm("hello", stream=False)))
    assert result["result"]["message"]["content"] == split(direct)[0][0]["delta"]["message"]["content"]


def test_polling_failure_round_trip(mockgpt_server: SdkServer) -> None:
    start = case("poll_start_fail")
    state = split(send(mockgpt_server, start)[1])[0][0]["plugin_state"]
    base = {k: start.data[k] for k in ("provider", "model_type", "model", "credentials")}
    statuses = []
    for _ in range(3):
        result = split(
            send(mockgpt_server, Case("f", "mockgpt", "check_polling", base | {"plugin_state": state}))[1]
        )[0][0]
        statuses.append(result["status"])
        if result["status"] != "running":
            break
        state = result["plugin_state"]
    assert statuses[-1] == "failed"


def test_tts_then_stt_round_trips(mocklab_server: SdkServer) -> None:
    tts = case("tts_alice")
    _, events = send(mocklab_server, tts)
    chunks = split(events)[0]
    assert len(chunks) > 1, "TTS audio arrives in several chunks"
    audio_hex = "".join(s["result"] for s in chunks)
    stt = Case(
        "stt_round_trip",
        "mocklab",
        "invoke_speech2text",
        {
            **{
                k: case("stt_mocklab_wav").data[k] for k in ("provider", "model_type", "model", "credentials")
            },
            "file": audio_hex,
        },
    )
    _, answer = send(mocklab_server, stt)
    assert split(answer)[0] == [{"result": tts.data["content_text"]}]


def test_stt_of_foreign_audio_counts_bytes(mocklab_server: SdkServer) -> None:
    c = case("stt_other_audio")
    _, events = send(mocklab_server, c)
    assert split(events)[0] == [{"result": f"{len(c.data['file']) // 2} bytes of audio"}]


def test_query_and_document_embeddings_differ_but_stay_close(mocklab_server: SdkServer) -> None:
    doc = case("embed_documents")
    text = doc.data["texts"][0]
    vectors = {}
    for input_type in ("document", "query"):
        c = Case(
            "e", "mocklab", "invoke_text_embedding", {**doc.data, "texts": [text], "input_type": input_type}
        )
        vectors[input_type] = split(send(mocklab_server, c)[1])[0][0]["embeddings"][0]
    assert vectors["document"] != vectors["query"]
    cosine = sum(a * b for a, b in zip(vectors["document"], vectors["query"], strict=True))
    assert cosine > 0.9
    again = split(send(mocklab_server, doc)[1])[0][0]["embeddings"][0]
    assert again == vectors["document"]


def test_rerank_scores_by_word_overlap(mocklab_server: SdkServer) -> None:
    c = case("rerank_daemon_zeros")
    docs = split(send(mocklab_server, c)[1])[0][0]["docs"]
    query = set(c.data["query"].split())
    expected = {
        i: round(len(query & set(text.split())) / len(query), 6) for i, text in enumerate(c.data["docs"])
    }
    assert {d["index"]: d["score"] for d in docs} == expected


def test_moderation_flags_listed_words(mocklab_server: SdkServer) -> None:
    assert split(send(mocklab_server, case("moderation_flagged"))[1])[0] == [{"result": True}]
    assert split(send(mocklab_server, case("moderation_clean"))[1])[0] == [{"result": False}]


def test_health(mockgpt_server: SdkServer) -> None:
    response = httpx.get(mockgpt_server.url + "/health")
    assert response.status_code == 200 and response.text == "OK"


def test_server_start_failure_reports_output(tmp_path: Path) -> None:
    (tmp_path / "manifest.yaml").write_text("not: a manifest\n")
    (tmp_path / "main.py").write_text("raise SystemExit('plugin refused to start')\n")
    with pytest.raises(RuntimeError, match="plugin refused to start"):
        start_sdk_server(tmp_path, timeout=30)
