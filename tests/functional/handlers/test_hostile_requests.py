"""Hostile request bodies against the real SDK and the tiny plugin: each is one 4xx JSON line.

Nothing reaches the plugin, no value from the request is echoed, and the process keeps serving.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from support.egress import Egress
from support.handler_proc import HandlerProcess, running_handler, split_lines

from dify_lambda import wire

# One xdist worker runs the module (--dist loadgroup): a handler, once per run.
pytestmark = pytest.mark.xdist_group("test_hostile_requests")

TINY = Path(__file__).resolve().parents[2] / "support" / "tinyplugin"
MARKER = "hostile-marker-7f3a"


@pytest.fixture(scope="module")
def tiny() -> Iterator[HandlerProcess]:
    with running_handler(TINY) as handler:
        yield handler


def _envelope(action: str = "get_ai_model_schemas", session_id: str = "s-1") -> bytes:
    body = {
        "provider": "tiny",
        "credentials": {"api_key": "k"},
        "model_type": "rerank",
        "model": "tiny-rerank",
    }
    return wire.encode_envelope(wire.build_envelope(action, body, user_id="u", session_id=session_id))


CASES = [
    ("deep-array", b"[" * 100_000 + b"]" * 100_000, "request body nests JSON arrays or objects too deeply"),
    ("deep-object", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nests JSON arrays or objects too deeply"),
    (
        "lone-surrogate-session",
        _envelope(session_id="s").replace(
            b'"session_id":"s"', b'"session_id":"\\ud800' + MARKER.encode() + b'"'
        ),
        "field 'session_id' with a lone UTF-16 surrogate escape",
    ),
    ("unknown-action", _envelope(action=MARKER), "data.action is not a model action"),
    (
        "unknown-type",
        json.dumps({**json.loads(_envelope()), "data": {"type": MARKER, "action": "x"}}).encode(),
        "data.type is not served",
    ),
    ("not-utf8", b'{"event": "request", "session_id": "\xff"}', "request body is not UTF-8 encoded JSON"),
]


@pytest.mark.parametrize(("name", "body", "message"), CASES, ids=[c[0] for c in CASES])
def test_hostile_body_is_one_400_line(tiny: HandlerProcess, name: str, body: bytes, message: str) -> None:
    port = urlsplit(tiny.url).port or 0
    with Egress() as egress:
        response = httpx.post(tiny.url + "/invoke", content=body, timeout=60)
        after = httpx.post(tiny.url + "/invoke", content=_envelope(), timeout=60)
    egress.assert_only(port)
    assert response.status_code == 400, response.text
    assert response.content.count(b"\n") == 0, "one line"
    doc = response.json()
    assert doc["errorType"] in ("InvalidRequestError", "UnknownActionError")
    assert message in doc["errorMessage"]
    assert MARKER not in response.text, "no value from the request is echoed"
    assert after.status_code == 200
    lines = [json.loads(line) for line in split_lines(after.content)]
    assert lines[-1]["data"]["type"] == "end", "the process still serves"
