"""The application core over HTTP with the tiny test plugin: incremental delivery, all actions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import sdk_matrix
from support.handler_proc import HandlerProcess, running_handler, split_lines

from dify_lambda import wire

# One xdist worker runs the module (--dist loadgroup): a handler per SDK release, once per run.
pytestmark = pytest.mark.xdist_group("test_streaming_core")

TINY = Path(__file__).resolve().parents[2] / "support" / "tinyplugin"
CREDENTIALS = {"api_key": "tiny-key"}


@pytest.fixture(scope="module")
def tiny() -> Iterator[HandlerProcess]:
    with running_handler(TINY) as handler:
        yield handler


# Every release of the SDK matrix (tests/support/sdk_matrix.py) streams, not only the project's.
@pytest.fixture(scope="module", params=sdk_matrix.matrix())
def tiny_on_release(request: pytest.FixtureRequest) -> Iterator[HandlerProcess]:
    with running_handler(TINY, python=sdk_matrix.sdk_python(request.param)) as handler:
        yield handler


def envelope(action: str, session_id: str, **data: Any) -> bytes:
    body = {"provider": "tiny", "credentials": CREDENTIALS, **data}
    return wire.encode_envelope(wire.build_envelope(action, body, user_id="u", session_id=session_id))


def llm(prompt: str) -> dict[str, Any]:
    return {
        "model_type": "llm",
        "model": "tiny-llm",
        "prompt_messages": [{"role": "user", "content": prompt}],
        "model_parameters": {},
        "stop": None,
        "tools": None,
    }


def test_first_event_arrives_while_the_plugin_is_still_running(
    tiny_on_release: HandlerProcess, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    body = envelope("invoke_llm", "gated", **llm(f"gate:{gate}"))
    with httpx.stream("POST", tiny_on_release.url + "/invoke", content=body, timeout=60.0) as response:
        chunks = response.iter_raw()
        received = b""
        while wire.LINE_DELIMITER not in received:
            received += next(chunks)
        # The plugin is blocked on the gate: this line can only have come out incrementally.
        first = json.loads(received.split(wire.LINE_DELIMITER)[0])
        assert first["data"]["data"]["delta"]["message"]["content"] == "waiting "
        gate.touch()
        received += b"".join(chunks)
    lines = [json.loads(line) for line in split_lines(received)]
    assert lines[1]["data"]["data"]["delta"]["message"]["content"] == "opened"
    assert lines[-1] == {"event": "session", "session_id": "gated", "data": {"type": "end", "data": {}}}


# The tiny plugin implements neither multimodal embedding nor polling: the SDK's in-band error.
CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("invoke_llm", llm("one two three"), ["stream", "stream", "stream", "end"]),
    ("invoke_llm", {**llm("one two"), "stream": False}, ["stream", "end"]),
    ("invoke_llm", llm("late boom"), ["stream", "error", "end"]),
    ("get_llm_num_tokens", llm("one two three"), ["stream", "end"]),
    (
        "invoke_text_embedding",
        {"model_type": "text-embedding", "model": "tiny-embed", "texts": ["a b"], "input_type": "query"},
        ["stream", "end"],
    ),
    (
        "invoke_multimodal_embedding",
        {
            "model_type": "text-embedding",
            "model": "tiny-embed",
            "documents": [{"content": "a", "content_type": "text"}],
        },
        ["error", "end"],
    ),
    (
        "get_text_embedding_num_tokens",
        {"model_type": "text-embedding", "model": "tiny-embed", "texts": ["a b", "c"]},
        ["stream", "end"],
    ),
    (
        "invoke_rerank",
        {
            "model_type": "rerank",
            "model": "tiny-rerank",
            "query": "a",
            "docs": ["a", "b"],
            "score_threshold": None,
            "top_n": None,
        },
        ["stream", "end"],
    ),
    (
        "invoke_tts",
        {
            "model_type": "tts",
            "model": "tiny-tts",
            "content_text": "a b c",
            "voice": "plain",
            "tenant_id": "t",
        },
        ["stream", "stream", "stream", "end"],
    ),
    ("get_tts_model_voices", {"model_type": "tts", "model": "tiny-tts", "language": None}, ["stream", "end"]),
    (
        "invoke_speech2text",
        {"model_type": "speech2text", "model": "tiny-stt", "file": b"RIFFdata".hex()},
        ["stream", "end"],
    ),
    (
        "invoke_moderation",
        {"model_type": "moderation", "model": "tiny-mod", "text": "forbidden words"},
        ["stream", "end"],
    ),
    ("validate_provider_credentials", {}, ["stream", "end"]),
    ("validate_model_credentials", {"model_type": "llm", "model": "tiny-llm"}, ["stream", "end"]),
    ("get_ai_model_schemas", {"model_type": "rerank", "model": "tiny-rerank"}, ["stream", "end"]),
    ("start_polling", {**llm("x"), "stream": False}, ["error", "end"]),
    ("check_polling", {"model_type": "llm", "model": "tiny-llm", "plugin_state": {"k": 1}}, ["error", "end"]),
]


@pytest.mark.parametrize(("action", "data", "types"), CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_every_action_answers_with_session_lines(
    tiny: HandlerProcess, action: str, data: dict[str, Any], types: list[str]
) -> None:
    response = httpx.post(tiny.url + "/invoke", content=envelope(action, f"s-{action}", **data), timeout=60.0)
    assert response.status_code == 200
    lines = [json.loads(line) for line in split_lines(response.content)]
    assert [line["data"]["type"] for line in lines] == types
    assert {line["session_id"] for line in lines} == {f"s-{action}"}
