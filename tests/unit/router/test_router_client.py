"""The router's failure policy end to end, over a scripted transport (no network, no sleeping)."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest
from router_fakes import (
    FakeClock,
    Reply,
    ScriptedTransport,
    Wait,
    body_json,
    end,
    error,
    llm_chunk,
    ok,
    stream,
)

from dify_lambda import wire
from dify_lambda.router.client import Router, Timeouts
from dify_lambda.router.errors import (
    AllDeploymentsCoolingDownError,
    FirstEventTimeoutError,
    IdleTimeoutError,
    LambdaError,
    MalformedEventError,
    NoRouteError,
    PluginInvokeError,
    RetryableError,
    RouterError,
    StreamInterruptedError,
)
from dify_lambda.router.events import EndEvent, ErrorEvent, StreamEvent
from dify_lambda.router.policy import RetryPolicy
from dify_lambda.router.routes import parse_route_table

PLUGIN = "langgenius/mockgpt"
A = "a1.lambda-url.us-east-1.on.aws"
B = "b2.lambda-url.eu-west-1.on.aws"
DATA = {"provider": "mockgpt", "model_type": "llm", "model": "m", "credentials": {}, "prompt_messages": []}


def make_router(
    script: dict[str, list[Any]], hosts: tuple[str, ...] = (A,), **kwargs: Any
) -> tuple[Router, ScriptedTransport, FakeClock]:
    clock = FakeClock()
    transport = ScriptedTransport(script, clock)
    table = parse_route_table(
        {"routes": {PLUGIN: {"deployments": [{"url": f"https://{h}/", "auth": "none"} for h in hosts]}}},
        source="test",
    )
    kwargs.setdefault("rng", random.Random(7).random)
    router = Router(table, transport=transport, clock=clock, sleep=clock.sleep, **kwargs)
    return router, transport, clock


def run(router: Router, **kwargs: Any) -> list[Any]:
    return list(router.invoke(PLUGIN, "invoke_llm", DATA, user_id="u1", **kwargs))


def test_lazy_request_sent_on_first_next() -> None:
    router, transport, _ = make_router({A: [ok(stream(llm_chunk("hi")), end())]})
    events = router.invoke(PLUGIN, "invoke_llm", DATA, user_id="u1")
    assert transport.requests == []
    first = next(events)
    assert isinstance(first, StreamEvent)
    assert len(transport.requests) == 1
    assert isinstance(next(events), EndEvent)


def test_request_shape_matches_daemon() -> None:
    router, transport, _ = make_router({A: [ok(end())]})
    run(router, session_id="sess-9")
    request = transport.requests[0]
    assert str(request.url) == f"https://{A}/invoke?action=invoke_llm"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers[wire.SESSION_ID_HEADER] == "sess-9"
    expected = wire.encode_envelope(
        wire.build_envelope("invoke_llm", DATA, user_id="u1", session_id="sess-9")
    )
    assert request.content == expected


def test_502_then_200_retries_after_backoff() -> None:
    chunk = llm_chunk("hello")
    router, transport, clock = make_router({A: [Reply(502), ok(stream(chunk), end())]})
    events = run(router)
    assert [e.data for e in events if isinstance(e, StreamEvent)] == [chunk]
    assert len(transport.requests) == 2
    policy = RetryPolicy()
    assert len(clock.sleeps) == 1
    assert policy.base_delay * 0.5 <= clock.sleeps[0] <= policy.base_delay


def test_429_with_retry_after_waits_that_long() -> None:
    router, transport, clock = make_router(
        {A: [Reply(429, {"retry-after": "3"}), ok(stream({"n": 1}), end())]}
    )
    events = run(router)
    assert len(events) == 2
    assert clock.sleeps == [3.0]
    assert len(transport.requests) == 2


def test_throttling_fails_over_to_other_deployment_and_cools_down() -> None:
    script = {
        A: [Reply(429, {"x-amzn-errortype": "TooManyRequestsException"})],
        B: [ok(stream({"n": 1}), end())],
    }
    # rng 0.0 picks the first deployment (A) first.
    router, transport, clock = make_router(script, hosts=(A, B), rng=lambda: 0.0)
    run(router)
    assert transport.hosts() == [A, B]
    assert clock.sleeps == []  # another deployment: no wait
    assert router.cooldowns.remaining(f"https://{A}/") == pytest.approx(RetryPolicy().throttle_cooldown)
    # The next call skips A while it cools down.
    transport.script[B].append(ok(end()))
    run(router)
    assert transport.hosts() == [A, B, B]


def test_error_carries_the_call_of_the_failing_attempt() -> None:
    # A fails over to B, B breaks mid-stream: the error names B's attempt, session and call.
    reset = httpx.ReadError("connection reset")
    script = {A: [Reply(503)], B: [ok(stream({"n": 1}), reset)]}
    router, _, _ = make_router(script, hosts=(A, B), rng=lambda: 0.0)
    with pytest.raises(StreamInterruptedError) as info:
        list(router.invoke(PLUGIN, "invoke_llm", DATA, user_id="u1", session_id="s-42"))
    call = info.value.call
    assert call is not None
    assert (call.plugin_id, call.action, call.session_id) == (PLUGIN, "invoke_llm", "s-42")
    assert (call.provider, call.model, call.url) == ("mockgpt", "m", f"https://{B}/")
    assert info.value.delivered == 1


def test_final_error_names_the_last_attempt_url() -> None:
    script = {A: [Reply(502)] * 3, B: [Reply(502)] * 3}
    router, transport, _ = make_router(script, hosts=(A, B), rng=lambda: 0.0)
    with pytest.raises(RetryableError) as info:
        run(router)
    last = f"https://{transport.hosts()[-1]}/"
    assert transport.hosts()[:2] == [A, B]
    assert info.value.call is not None and info.value.call.url == last
    assert str(info.value).endswith(f"from {last}")


def test_x_amzn_error_type_under_200_is_retried() -> None:
    router, transport, _ = make_router(
        {A: [Reply(200, {"x-amzn-errortype": "Runtime.ExitError"}), ok(stream({"ok": True}), end())]}
    )
    events = run(router)
    assert [e.data for e in events if isinstance(e, StreamEvent)] == [{"ok": True}]
    assert len(transport.requests) == 2


def test_x_amzn_error_type_exhausted_is_lambda_error_with_request_id() -> None:
    reply = Reply(200, {"x-amzn-errortype": "Runtime.ExitError", "x-amzn-requestid": "req-1"})
    router, _, _ = make_router({A: [reply, reply, reply]})
    with pytest.raises(LambdaError) as info:
        run(router)
    assert info.value.error_type == "Runtime.ExitError"
    assert info.value.request_id == "req-1"
    assert str(info.value).startswith("Plugin runtime request failed: Runtime.ExitError")


def test_403_is_not_retried_on_same_deployment() -> None:
    router, transport, _ = make_router({A: [Reply(403, {}, [b'{"Message":"Forbidden"}'])]})
    with pytest.raises(LambdaError) as info:
        run(router)
    assert info.value.status == 403
    assert "Forbidden" in str(info.value)
    assert len(transport.requests) == 1
    assert router.cooldowns.remaining(f"https://{A}/") == pytest.approx(RetryPolicy().auth_cooldown)


def test_400_is_fatal() -> None:
    router, transport, _ = make_router({A: [Reply(400)]})
    with pytest.raises(LambdaError) as info:
        run(router)
    assert info.value.status == 400
    assert "400 Bad Request" in str(info.value)
    assert len(transport.requests) == 1


def test_all_attempts_502_gives_retryable_error() -> None:
    router, transport, clock = make_router({A: [Reply(502)] * 3})
    with pytest.raises(RetryableError) as info:
        run(router)
    assert info.value.kind == "status"
    assert info.value.status == 502
    assert info.value.attempts == 3
    assert len(transport.requests) == 3
    assert len(clock.sleeps) == 2
    assert clock.sleeps[1] > clock.sleeps[0] * 0.9  # exponential growth, jitter in [0.5, 1)


def test_connection_error_before_response_is_retried_and_cooled() -> None:
    router, transport, _ = make_router({A: [httpx.ConnectError("refused"), ok(end())]})
    events = run(router)
    assert isinstance(events[-1], EndEvent)
    assert len(transport.requests) == 2
    assert router.cooldowns.remaining(f"https://{A}/") > 0


def test_connection_reset_before_first_event_is_retried() -> None:
    reset = httpx.RemoteProtocolError("peer closed connection")
    router, transport, _ = make_router({A: [ok(reset), ok(stream({"i": 1}), end())]})
    events = run(router)
    assert [e.data for e in events if isinstance(e, StreamEvent)] == [{"i": 1}]
    assert len(transport.requests) == 2


def test_connection_reset_after_first_event_raises_with_delivered() -> None:
    reset = httpx.ReadError("connection reset")
    router, transport, _ = make_router(
        {A: [ok(stream({"i": 1}), stream({"i": 2}), reset)]}, keep_delivered=True
    )
    got: list[Any] = []
    with pytest.raises(StreamInterruptedError) as info:
        for event in router.invoke(PLUGIN, "invoke_llm", DATA, user_id="u1"):
            got.append(event.data)
    assert got == [{"i": 1}, {"i": 2}]
    assert info.value.delivered == 2
    assert info.value.events == ({"i": 1}, {"i": 2})
    assert len(transport.requests) == 1  # never retried after the first event


def test_first_event_timeout() -> None:
    timeouts = Timeouts(first_event=5, idle=60, total=600)
    router, transport, _ = make_router({A: [ok(Wait(10), stream({}), end())]}, timeouts=timeouts)
    with pytest.raises(FirstEventTimeoutError) as info:
        run(router)
    assert info.value.delivered == 0
    assert len(transport.requests) == 1


def test_first_event_timeout_waiting_for_headers() -> None:
    router, _, _ = make_router(
        {A: [Reply(200, body=[end()], header_wait=10)]}, timeouts=Timeouts(first_event=5)
    )
    with pytest.raises(FirstEventTimeoutError):
        run(router)


def test_first_event_longer_than_idle_is_fine() -> None:
    # Time to first token may exceed the idle gap allowed between events.
    timeouts = Timeouts(first_event=60, idle=5, total=600)
    router, _, _ = make_router({A: [ok(Wait(30), stream({"x": 1}), Wait(4), end())]}, timeouts=timeouts)
    assert len(run(router)) == 2


def test_idle_timeout_after_first_event() -> None:
    timeouts = Timeouts(first_event=60, idle=5, total=600)
    router, _, _ = make_router({A: [ok(stream({"x": 1}), Wait(6), end())]}, timeouts=timeouts)
    with pytest.raises(IdleTimeoutError) as info:
        run(router)
    assert info.value.delivered == 1
    assert isinstance(info.value, StreamInterruptedError)


def test_total_deadline_caps_a_slow_stream() -> None:
    timeouts = Timeouts(first_event=60, idle=50, total=100)
    body = [stream({"i": i}) if i % 2 == 0 else Wait(40) for i in range(10)]
    router, _, _ = make_router({A: [ok(*body, end())]}, timeouts=timeouts)
    with pytest.raises(StreamInterruptedError) as info:
        run(router)
    assert info.value.delivered >= 1


def test_malformed_line() -> None:
    router, transport, _ = make_router({A: [ok(b"<html>502 Bad Gateway</html>\n\n")]})
    with pytest.raises(MalformedEventError) as info:
        run(router)
    assert "<html>" not in str(info.value)  # never echo the body
    assert len(transport.requests) == 1


def test_missing_end_is_an_error() -> None:
    router, _, _ = make_router({A: [ok(stream({"i": 1}))]})
    with pytest.raises(StreamInterruptedError) as info:
        run(router)
    assert info.value.delivered == 1
    assert "without 'end'" in str(info.value)


def test_empty_body_is_an_error() -> None:
    router, _, _ = make_router({A: [ok()]})
    with pytest.raises(StreamInterruptedError) as info:
        run(router)
    assert info.value.delivered == 0


def test_plugin_error_raises_typed_error() -> None:
    args = {"description": "[models] Rate Limit Error, slow down"}
    router, _, _ = make_router(
        {A: [ok(error("InvokeRateLimitError", "[models] Rate Limit Error, slow down", args), end())]}
    )
    with pytest.raises(PluginInvokeError) as info:
        run(router)
    assert info.value.error_type == "InvokeRateLimitError"
    assert info.value.error_message == "[models] Rate Limit Error, slow down"
    assert info.value.error_args == args


def test_plugin_error_as_event_when_not_raising() -> None:
    router, _, _ = make_router({A: [ok(error("ValueError", "bad"), end())]})
    events = run(router, raise_errors=False)
    assert events[0] == ErrorEvent("ValueError", "bad", {})
    assert isinstance(events[1], EndEvent)


def test_lambda_error_json_in_body() -> None:
    line = b'{"errorType":"Runtime.ExitError","errorMessage":"exited","requestId":"r-9"}\n'
    router, _, _ = make_router({A: [ok(line)]})
    with pytest.raises(LambdaError) as info:
        run(router)
    assert info.value.request_id == "r-9"
    assert str(info.value) == "Plugin runtime request failed: Runtime.ExitError: exited"


def test_all_deployments_cooling_down() -> None:
    router, transport, _ = make_router({A: [], B: []}, hosts=(A, B))
    router.cooldowns.cool(f"https://{A}/", 30)
    router.cooldowns.cool(f"https://{B}/", 12)
    with pytest.raises(AllDeploymentsCoolingDownError) as info:
        run(router)
    assert info.value.retry_in == pytest.approx(12)
    assert transport.requests == []
    assert not info.value.connect  # cooled down by hand, no failure kind recorded


def test_cooling_down_after_connection_failures_says_connect() -> None:
    router, transport, _ = make_router({A: [httpx.ConnectError("refused")] * 3})
    with pytest.raises(RetryableError):
        run(router)
    with pytest.raises(AllDeploymentsCoolingDownError) as info:
        run(router)
    assert info.value.connect and info.value.kinds == {"connect"}
    assert len(transport.requests) == 3


def test_cooldown_expires_with_clock() -> None:
    router, transport, clock = make_router({A: [ok(end())]})
    router.cooldowns.cool(f"https://{A}/", 10)
    clock.advance(10.5)
    run(router)
    assert len(transport.requests) == 1


def test_retry_after_longer_than_max_delay_fails_fast() -> None:
    router, transport, clock = make_router({A: [Reply(429, {"retry-after": "120"})]})
    with pytest.raises(RetryableError) as info:
        run(router)
    assert info.value.throttled
    assert info.value.retry_after == 120
    assert clock.sleeps == []
    assert len(transport.requests) == 1


def test_unknown_plugin() -> None:
    router, _, _ = make_router({})
    with pytest.raises(NoRouteError, match="nope/nope"):
        list(router.invoke("nope/nope", "invoke_llm", DATA, user_id="u"))


def test_errors_are_router_errors() -> None:
    router, _, _ = make_router({A: [Reply(400)]})
    with pytest.raises(RouterError):
        run(router)


def test_signed_and_secret_headers_are_added_per_attempt() -> None:
    clock = FakeClock()
    transport = ScriptedTransport({A: [Reply(502), ok(end())]}, clock)
    table = parse_route_table(
        {
            "routes": {
                PLUGIN: {"deployments": [{"url": f"https://{A}/", "auth": "secret", "secret": "s3cr3t"}]}
            }
        },
        source="t",
    )
    router = Router(table, transport=transport, clock=clock, sleep=clock.sleep)
    run(router)
    assert [r.headers[wire.SECRET_HEADER] for r in transport.requests] == ["s3cr3t", "s3cr3t"]
    assert "s3cr3t" not in repr(table)


def test_envelope_body_is_the_same_on_retry() -> None:
    router, transport, _ = make_router({A: [Reply(503), ok(end())]})
    run(router)
    assert body_json(transport.requests[0]) == body_json(transport.requests[1])


def test_stream_closed_when_caller_stops_early() -> None:
    router, transport, _ = make_router({A: [ok(stream({"i": 1}), stream({"i": 2}), end())]})
    events = router.invoke(PLUGIN, "invoke_llm", DATA, user_id="u1")
    next(events)
    events.close()  # type: ignore[attr-defined]
    assert transport.bodies[0].closed


def test_plugin_error_then_cut_raises_the_plugin_error() -> None:
    router, _, _ = make_router(
        {A: [ok(error("InvokeServerUnavailableError", "down"), httpx.ReadError("reset"))]}
    )
    with pytest.raises(PluginInvokeError) as info:
        run(router)
    assert info.value.error_type == "InvokeServerUnavailableError"
