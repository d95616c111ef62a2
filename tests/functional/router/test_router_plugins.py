"""The router against real plugin endpoints: the SDK's own serverless server and ``dify-lambda serve``.

Every catalogue case goes through the router; its payloads and errors must equal what the SDK's
server answers directly (after blanking latency and tracebacks).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from support.catalog import CASES, PLUGIN_IDS, USER_ID, Case, envelope, strip_volatile
from support.sdk_server import PLUGINS_DIR, invoke, start_sdk_server

from dify_lambda.router.client import Router
from dify_lambda.router.errors import LambdaError
from dify_lambda.router.events import EndEvent, ErrorEvent, StreamEvent
from dify_lambda.router.routes import parse_route_table

# One xdist worker runs the module (--dist loadgroup): SDK servers and emulators, once per run.
pytestmark = pytest.mark.xdist_group("test_router_plugins")

CHECKED = [c for c in CASES if not c.timing]
PLUGINS = ("mockgpt", "mocklab")


@pytest.fixture(scope="module")
def sdk_urls() -> Iterator[dict[str, str]]:
    servers = []
    try:
        for name in PLUGINS:
            servers.append(start_sdk_server(PLUGINS_DIR / name))
        yield {name: s.url for name, s in zip(PLUGINS, servers, strict=True)}
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def emulator_urls() -> Iterator[dict[str, str]]:
    from dify_lambda.emulator import serve

    running = []
    try:
        for name in PLUGINS:
            running.append(
                serve(PLUGINS_DIR / name, env={"DIFY_LAMBDA_URL_AUTH": "NONE", "DIFY_LAMBDA_SECRET": "s3"})
            )
        yield {name: fn.url for name, fn in zip(PLUGINS, running, strict=True)}
    finally:
        for fn in running:
            fn.close()


def router_for(urls: dict[str, str], **auth: Any) -> Router:
    routes = {PLUGIN_IDS[n]: {"deployments": [{"url": u, "auth": "none", **auth}]} for n, u in urls.items()}
    return Router(parse_route_table({"routes": routes}, source="test"))


def expected(sdk_url: str, case: Case) -> tuple[list[Any], ErrorEvent | None]:
    lines = invoke(sdk_url, envelope(case, str(uuid.uuid4())))
    payloads, err = [], None
    for line in lines:
        msg = line["data"]
        if line["event"] == "session" and msg["type"] == "stream":
            payloads.append(msg["data"])
        elif line["event"] == "session" and msg["type"] == "error":
            err = ErrorEvent(msg["data"]["error_type"], msg["data"]["message"], msg["data"]["args"])
    return payloads, err


def through(router: Router, case: Case) -> tuple[list[Any], ErrorEvent | None, list[Any]]:
    data = envelope(case, "x")["data"]
    data = {k: v for k, v in data.items() if k not in ("user_id", "type", "action")}
    events = list(
        router.invoke(PLUGIN_IDS[case.plugin], case.action, data, user_id=USER_ID, raise_errors=False)
    )
    payloads = [e.data for e in events if isinstance(e, StreamEvent)]
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    return payloads, errors[0] if errors else None, events


def check(router: Router, sdk_url: str, case: Case) -> None:
    want, want_err = expected(sdk_url, case)
    got, got_err, events = through(router, case)
    assert isinstance(events[-1], EndEvent)
    assert strip_volatile(got) == strip_volatile(want)
    if case.expect == "plugin_error":
        assert got_err is not None and want_err is not None
        assert got_err.error_type == case.error_type == want_err.error_type
        assert got_err.message == want_err.message
    else:
        assert got_err is None


@pytest.mark.parametrize("case", CHECKED, ids=[c.name for c in CHECKED])
def test_router_against_sdk_server(sdk_urls: dict[str, str], case: Case) -> None:
    with router_for(sdk_urls) as router:
        check(router, sdk_urls[case.plugin], case)


@pytest.mark.parametrize("case", CHECKED, ids=[c.name for c in CHECKED])
def test_router_against_local_emulator(
    emulator_urls: dict[str, str], sdk_urls: dict[str, str], case: Case
) -> None:
    with router_for(emulator_urls, auth="secret", secret="s3") as router:
        try:
            check(router, sdk_urls[case.plugin], case)
        except LambdaError as exc:
            # The dify-lambda handler validates requests up front and answers 400 where the SDK
            # answers an in-band error (or only ``end`` for an unknown action): a typed error either way.
            assert case.expect in ("plugin_error", "end_only"), case.name
            assert exc.status == 400
            assert str(exc).startswith("Plugin runtime request failed: ")


def test_llm_stream_through_convenience_method(sdk_urls: dict[str, str]) -> None:
    with router_for(sdk_urls) as router:
        chunks = list(
            router.invoke_llm(
                "tenant", "u", PLUGIN_IDS["mockgpt"], "mockgpt", "mockgpt-1", {"api_key": "mock-catalog"},
                [{"role": "user", "content": "echo:one two three"}], {"word_delay": 0},
            )
        )  # fmt: skip
    text = "".join(c["delta"]["message"]["content"] for c in chunks)
    assert text.strip() == "one two three"
    assert chunks[-1]["delta"]["usage"] is not None
