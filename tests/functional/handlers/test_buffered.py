"""The buffered ``lambda_handler`` in a fresh process, fed the sample events from ``events/``.

The invoke events must produce, as one body, the same event lines the SDK's own server streams for
the same envelope; the plugin is loaded once per process (at import) and reused.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.catalog import PLUGINS_DIR
from support.handler_proc import normalise_line, run_buffered, split_lines
from support.sdk_server import start_sdk_server

from dify_lambda import wire

EVENTS = Path(__file__).resolve().parents[3] / "events"


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def body_of(event: dict[str, Any]) -> bytes:
    raw: str = event["body"]
    return base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()


def sdk_answer(plugin: str, event: dict[str, Any]) -> bytes:
    with start_sdk_server(PLUGINS_DIR / plugin) as server:
        response = httpx.post(
            server.url + "/invoke",
            content=body_of(event),
            headers={"Content-Type": "application/json"},
            timeout=60.0,
        )
    assert response.status_code == 200
    return response.content


def assert_buffered_ok(result: dict[str, Any]) -> bytes:
    assert set(result) == {"statusCode", "headers", "body", "isBase64Encoded", "cookies"}
    assert result["statusCode"] == 200
    assert result["headers"] == {"content-type": wire.RESPONSE_CONTENT_TYPE}
    assert result["isBase64Encoded"] is False
    assert result["cookies"] == []
    body: bytes = result["body"].encode()
    return body


def test_mockgpt_events_in_one_process() -> None:
    names = ["health.json", "invoke_llm_stream.json", "bad_request.json", "invoke_llm_stream.json"]
    results, output = run_buffered(PLUGINS_DIR / "mockgpt", [load(n) for n in names])
    assert len(results) == len(names), output
    health, stream, bad, again = results

    assert assert_buffered_ok(health) == b"OK"

    expected = [
        normalise_line(line) for line in split_lines(sdk_answer("mockgpt", load("invoke_llm_stream.json")))
    ]
    for result in (stream, again):
        lines = split_lines(assert_buffered_ok(result))
        assert [normalise_line(line) for line in lines] == expected
    assert json.loads(expected[-1])["data"]["type"] == "end"
    assert len(expected) > 3  # a real stream, several chunks

    assert bad["statusCode"] == 400
    problem = json.loads(bad["body"])
    assert problem["errorType"] == "InvalidRequestError"
    assert "not valid JSON" in problem["errorMessage"]

    # Init ran once, at import; the second invocation reused it.
    logs = [json.loads(line) for line in output.splitlines() if line.startswith('{"level"')]
    assert [entry["message"] for entry in logs].count("plugin loaded") == 1
    cold = [entry["cold_start"] for entry in logs if "cold_start" in entry]
    assert cold[0] is True
    assert not any(cold[1:])


def test_base64_embedding_event_matches_the_sdk() -> None:
    event = load("invoke_text_embedding.json")
    assert event["isBase64Encoded"] is True
    [result], _ = run_buffered(PLUGINS_DIR / "mocklab", [event])
    lines = split_lines(assert_buffered_ok(result))
    expected = split_lines(sdk_answer("mocklab", event))
    assert [normalise_line(line) for line in lines] == [normalise_line(line) for line in expected]
    assert [json.loads(line)["data"]["type"] for line in lines] == ["stream", "end"]


def test_plugin_load_failure_fails_the_import(tmp_path: Path) -> None:
    results, output = run_buffered(tmp_path, [load("health.json")])
    assert results == []
    assert "PluginLoadError" in output
    assert "no manifest.yaml in the plugin root" in output


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DIFY_LAMBDA_URL_AUTH": "NONE"}, "DIFY_LAMBDA_URL_AUTH=NONE requires a shared secret"),
        ({"DIFY_LAMBDA_URL_AUTH": "PUBLIC"}, "DIFY_LAMBDA_URL_AUTH must be AWS_IAM or NONE"),
    ],
)
def test_bad_configuration_fails_init_clearly(env: dict[str, str], message: str) -> None:
    results, output = run_buffered(PLUGINS_DIR / "mockgpt", [load("health.json")], env)
    assert results == []
    assert "HandlerConfigError" in output
    assert message in output


@pytest.mark.parametrize(
    ("allowed", "status"),
    [
        ("arn:aws:iam::111122223333:role/dify-router", 200),
        ("arn:aws:iam::111122223333:user/someone-else", 403),
    ],
)
def test_iam_allow_list_uses_the_event_identity(allowed: str, status: int) -> None:
    env = {"DIFY_LAMBDA_URL_AUTH": "AWS_IAM", "DIFY_LAMBDA_ALLOWED_PRINCIPALS": allowed}
    [result], output = run_buffered(PLUGINS_DIR / "mockgpt", [load("health.json")], env)
    assert result["statusCode"] == status, output
    if status == 403:
        assert json.loads(result["body"])["errorType"] == "ForbiddenError"
