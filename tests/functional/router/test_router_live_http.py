"""The router over real loopback sockets: pooling, per-read timeouts of DeadlineTransport, SigV4."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from router_servers import RecordingServer, running, write_chunked

from dify_lambda import wire
from dify_lambda.router.client import Router, Timeouts
from dify_lambda.router.errors import FirstEventTimeoutError, IdleTimeoutError
from dify_lambda.router.events import EndEvent, StreamEvent
from dify_lambda.router.routes import parse_route_table
from dify_lambda.router.transport import DeadlineTransport

PID = "acme/echo"
DATA = {"provider": "echo", "model_type": "llm", "model": "m", "credentials": {}}


def table(url: str, **dep: Any) -> Any:
    return parse_route_table(
        {"routes": {PID: {"deployments": [{"url": url, "auth": "none", **dep}]}}}, source="t"
    )


def events_reply(pause_before: float = 0.0, pause_between: float = 0.0, count: int = 3) -> Any:
    def behaviour(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        sid = json.loads(body)["session_id"]
        chunks: list[bytes | float] = [pause_before] if pause_before else []
        for i in range(count):
            if i and pause_between:
                chunks.append(pause_between)
            chunks.append(wire.session_line(sid, "stream", {"i": i}))
        chunks.append(wire.end_line(sid))
        write_chunked(handler, chunks)

    return behaviour


@pytest.fixture
def fast_server() -> Iterator[RecordingServer]:
    with running(events_reply()) as server:
        yield server


def test_streams_and_reuses_one_connection(fast_server: RecordingServer) -> None:
    with Router(table(fast_server.url)) as router:
        for _ in range(5):
            events = list(router.invoke(PID, "invoke_llm", DATA, user_id="u"))
            assert [e.data for e in events if isinstance(e, StreamEvent)] == [{"i": 0}, {"i": 1}, {"i": 2}]
            assert isinstance(events[-1], EndEvent)
    assert len(fast_server.requests) == 5
    assert len(fast_server.connections) == 1  # the pooled connection was reused
    assert fast_server.requests[0]["path"] == "/invoke?action=invoke_llm"


def test_real_first_event_timeout() -> None:
    with running(events_reply(pause_before=2.0)) as server:
        router = Router(table(server.url), timeouts=Timeouts(first_event=0.3, idle=30, total=60))
        with router, pytest.raises(FirstEventTimeoutError):
            list(router.invoke(PID, "invoke_llm", DATA, user_id="u"))


def test_real_idle_timeout_after_first_event() -> None:
    with running(events_reply(pause_between=2.0)) as server:
        router = Router(table(server.url), timeouts=Timeouts(first_event=30, idle=0.3, total=60))
        got = []
        with router, pytest.raises(IdleTimeoutError) as info:
            for event in router.invoke(PID, "invoke_llm", DATA, user_id="u"):
                got.append(event)
        assert info.value.delivered == 1
        assert len(got) == 1


def test_slow_first_event_within_first_event_timeout_but_over_idle() -> None:
    # Waiting 2 s for the first event is fine when only the gaps afterwards are limited to 1 s.
    with running(events_reply(pause_before=2.0)) as server:
        router = Router(table(server.url), timeouts=Timeouts(first_event=30, idle=1.0, total=60))
        with router:
            events = list(router.invoke(PID, "invoke_llm", DATA, user_id="u"))
    assert isinstance(events[-1], EndEvent)


def test_deadline_transport_raises_httpx_errors_for_a_closed_port() -> None:
    # The pool is httpcore's; what reaches the router must be httpx's own exception types.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with httpx.Client(transport=DeadlineTransport()) as client, pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{port}/")


def test_closed_port_fails_over_to_the_live_deployment(fast_server: RecordingServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    routes = parse_route_table(
        {
            "routes": {
                PID: {
                    "deployments": [{"url": dead, "auth": "none"}, {"url": fast_server.url, "auth": "none"}]
                }
            }
        },
        source="t",
    )
    with Router(routes, rng=lambda: 0.0) as router:
        events = list(router.invoke(PID, "invoke_llm", DATA, user_id="u"))
    assert isinstance(events[-1], EndEvent)
    assert router.cooldowns.kind(dead) == "connect"
