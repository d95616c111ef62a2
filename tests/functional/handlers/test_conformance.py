"""Conformance: the dify-lambda handler answers every catalogue request exactly like the SDK.

Each case of the shared catalogue (tests/support/catalog.py, both demo plugins, error cases
included) is sent as the same envelope to the SDK's own serverless server and to our application
(running in a subprocess behind a small HTTP shim, once per SDK import mode, ``lazy`` and
``full``). The event lines must be byte-identical after
normalising exactly the values that vary run to run:

* ``usage.latency`` inside a ``stream`` payload (LLM ``delta.usage``, embedding ``usage``,
  polling ``result.usage``);
* ``args.traceback`` of a session ``error`` (file paths and frames differ).

Where the handler deliberately answers differently (documented in dify_lambda/handlers/app.py):
a request the SDK rejects while building its request model (``ValidationError`` as the only
message) is a 400 ``InvalidRequestError`` naming the field; an unknown action (the SDK sends only
``end``) is a 400 ``UnknownActionError``. Both are asserted against what the SDK sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import catalog
from support.handler_proc import HandlerProcess, normalise_line, running_handler, split_lines
from support.sdk_server import SdkServer, start_sdk_server

from dify_lambda import wire

PLUGINS = ("mockgpt", "mocklab")


@pytest.fixture(scope="module")
def sdk_servers() -> Iterator[dict[str, SdkServer]]:
    with (
        start_sdk_server(catalog.PLUGINS_DIR / "mockgpt") as gpt_sdk,
        start_sdk_server(catalog.PLUGINS_DIR / "mocklab") as lab_sdk,
    ):
        yield {"mockgpt": gpt_sdk, "mocklab": lab_sdk}


# Both SDK import modes (dify_lambda/handlers/sdk_import.py) must answer byte for byte alike;
# module scope lets pytest run every case against one mode's pair of handlers, then the other's.
@pytest.fixture(scope="module", params=["lazy", "full"])
def servers(
    request: pytest.FixtureRequest, sdk_servers: dict[str, SdkServer]
) -> Iterator[dict[str, tuple[SdkServer, HandlerProcess]]]:
    env = {"DIFY_LAMBDA_SDK_IMPORT": request.param}
    with (
        running_handler(catalog.PLUGINS_DIR / "mockgpt", env) as gpt_ours,
        running_handler(catalog.PLUGINS_DIR / "mocklab", env) as lab_ours,
    ):
        yield {
            "mockgpt": (sdk_servers["mockgpt"], gpt_ours),
            "mocklab": (sdk_servers["mocklab"], lab_ours),
        }


def _post(url: str, envelope: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{url}/invoke",
        params={"action": envelope["data"]["action"]},
        content=wire.encode_envelope(envelope),
        headers={
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            wire.SESSION_ID_HEADER: envelope["session_id"],
        },
        timeout=60.0,
    )


def _session_types(lines: list[bytes]) -> list[str]:
    return [json.loads(line)["data"]["type"] for line in lines]


@pytest.mark.parametrize("case", catalog.CASES, ids=lambda c: c.name)
def test_same_event_lines_as_the_sdk(
    case: catalog.Case, servers: dict[str, tuple[SdkServer, HandlerProcess]]
) -> None:
    sdk, ours = servers[case.plugin]
    envelope = catalog.envelope(case, session_id=f"conformance-{case.name}")
    expected = _post(sdk.url, envelope)
    actual = _post(ours.url, envelope)
    assert expected.status_code == 200
    sdk_lines = split_lines(expected.content)
    sdk_types = _session_types(sdk_lines)

    if actual.status_code == 400:
        problem = actual.json()
        if sdk_types == ["end"]:
            # The SDK ignores unknown actions; we refuse them, naming the field, never the value.
            assert problem["errorType"] == "UnknownActionError"
            assert "data.action is not a model action" in problem["errorMessage"]
            assert case.action not in problem["errorMessage"]
        else:
            # The SDK failed while building the request model; we reject before streaming.
            assert sdk_types == ["error", "end"]
            # AttributeError: the SDK router's TypeError quirk (it passes the raw dict on).
            assert json.loads(sdk_lines[0])["data"]["data"]["error_type"] in {
                "ValidationError",
                "AttributeError",
            }
            assert problem["errorType"] == "InvalidRequestError"
            message = problem["errorMessage"]
            assert case.action in message
            assert "field 'data." in message or "TypeError" in message
        return

    assert actual.status_code == 200, actual.text
    assert actual.headers["content-type"] == expected.headers["content-type"]
    our_lines = split_lines(actual.content)
    assert [normalise_line(line) for line in our_lines] == [normalise_line(line) for line in sdk_lines]
    assert sdk_types[-1] == "end"
    if case.expect == "plugin_error":
        assert sdk_types[-2] == "error"


def test_catalogue_covers_every_model_action() -> None:
    assert set(wire.MODEL_ACTIONS) <= {case.action for case in catalog.CASES}
