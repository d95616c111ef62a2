"""Conformance: the dify-lambda handler answers every catalogue request exactly like the SDK.

Each case of the shared catalogue (tests/support/catalog.py, both demo plugins and the tiny test
plugin, error cases included) is sent as the same envelope to the SDK's own serverless server and
to our application (running in a subprocess behind a small HTTP shim, once per SDK import mode,
``lazy`` and ``full``), both on the same ``dify_plugin`` release, for every release of the SDK
matrix (tests/support/sdk_matrix.py; ``DIFY_LAMBDA_SDK_MATRIX=all`` runs every supported minor).
A plugin runs only on the releases it loads on (the demo plugins need 0.10). The event lines must
be byte-identical after normalising exactly the values that vary run to run:

* ``usage.latency`` inside a ``stream`` payload (LLM ``delta.usage``, embedding ``usage``,
  polling ``result.usage``);
* ``args.traceback`` of a session ``error`` (file paths and frames differ; whether it is there at
  all follows the release and is compared).

Where the handler deliberately answers differently (documented in dify_lambda/handlers/app.py):
a request the SDK rejects while building its request model (``ValidationError`` as the only
message) is a 400 ``InvalidRequestError`` naming the field; an unknown action, or one the release
does not route yet (the SDK sends only ``end``), is a 400 ``UnknownActionError``. Both are asserted
against what the SDK sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import catalog, sdk_matrix
from support.handler_proc import HandlerProcess, normalise_line, running_handler, split_lines
from support.sdk_server import SdkServer, start_sdk_server

from dify_lambda import wire

VERSIONS = sdk_matrix.matrix()
MODES = ("lazy", "full")


def _modes(version: str) -> tuple[str, ...]:
    # ``lazy`` is what functions run; ``full`` (the fallback) on every release only in the full
    # matrix, to keep make test short.
    if version == sdk_matrix.project_sdk_version() or sdk_matrix.is_full_matrix():
        return MODES
    return ("lazy",)


def _loads_on(plugin: str, version: str) -> bool:
    return sdk_matrix.SdkRelease.of(version)[:2] >= catalog.PLUGIN_MIN_SDK[plugin]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Only the cases whose plugin loads on the release; module scope groups the cases by release
    # and mode, so each release's servers and each mode's handlers start once.
    if "sdk_version" in metafunc.fixturenames and "case" in metafunc.fixturenames:
        combos = [
            # One xdist worker per release and mode (--dist loadgroup): its servers start once.
            pytest.param(
                version,
                mode,
                case,
                id=f"{version}-{mode}-{case.name}",
                marks=pytest.mark.xdist_group(f"conformance-{version}-{mode}"),
            )
            for version in VERSIONS
            for mode in _modes(version)
            for case in (*catalog.CASES, *catalog.TINY_CASES)
            if _loads_on(case.plugin, version)
        ]
        metafunc.parametrize(
            ("sdk_version", "import_mode", "case"),
            combos,
            indirect=["sdk_version", "import_mode"],
            scope="module",
        )


@pytest.fixture(scope="module")
def sdk_version(request: pytest.FixtureRequest) -> str:
    version: str = request.param
    return version


@pytest.fixture(scope="module")
def import_mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture(scope="module")
def sdk_servers(sdk_version: str) -> Iterator[tuple[Path, dict[str, SdkServer]]]:
    python = sdk_matrix.sdk_python(sdk_version)
    with ExitStack() as stack:
        servers = {
            plugin: stack.enter_context(start_sdk_server(directory, python=python))
            for plugin, directory in catalog.PLUGIN_DIRS.items()
            if _loads_on(plugin, sdk_version)
        }
        yield python, servers


# Both SDK import modes (dify_lambda/handlers/sdk_import.py) must answer byte for byte alike.
@pytest.fixture(scope="module")
def servers(
    import_mode: str, sdk_servers: tuple[Path, dict[str, SdkServer]]
) -> Iterator[dict[str, tuple[SdkServer, HandlerProcess]]]:
    env = {"DIFY_LAMBDA_SDK_IMPORT": import_mode}
    python, sdk = sdk_servers
    with ExitStack() as stack:
        yield {
            plugin: (
                server,
                stack.enter_context(running_handler(catalog.PLUGIN_DIRS[plugin], env, python=python)),
            )
            for plugin, server in sdk.items()
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


def test_same_event_lines_as_the_sdk(
    sdk_version: str, case: catalog.Case, servers: dict[str, tuple[SdkServer, HandlerProcess]]
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
            # The SDK ignores unknown actions; we refuse them, naming the field, never the value. A
            # model action this release does not have is named: it is one of ours, not the caller's text.
            assert problem["errorType"] == "UnknownActionError"
            action = envelope["data"]["action"]
            if action in wire.MODEL_ACTIONS:
                assert f"model action {action} is not served by dify_plugin" in problem["errorMessage"]
            else:
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
    if case.expect == "plugin_error" and sdk_matrix.SdkRelease.of(sdk_version)[:2] >= case.expect_since:
        assert sdk_types[-2] == "error"


def test_catalogue_covers_every_model_action() -> None:
    assert set(wire.MODEL_ACTIONS) <= {case.action for case in catalog.CASES}


def test_the_tiny_plugin_covers_every_action_all_releases_route() -> None:
    old = {"start_polling", "check_polling", "invoke_multimodal_embedding", "invoke_multimodal_rerank"}
    assert set(wire.MODEL_ACTIONS) - old <= {case.action for case in catalog.TINY_CASES}
