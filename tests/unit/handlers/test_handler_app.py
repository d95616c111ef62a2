from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from unit.handlers.fakes import FakeRuntime, FakeSecret, RecordingObserver

from dify_lambda import wire
from dify_lambda.handlers.app import Application, buffered_result
from dify_lambda.handlers.auth import Authenticator
from dify_lambda.handlers.http import HttpRequest, HttpResponse


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def make_app(
    *, secret: str | None = None, max_body: int = 1000
) -> tuple[Application, FakeRuntime, RecordingObserver]:
    runtime, observer = FakeRuntime(), RecordingObserver()
    app = Application(
        runtime=runtime,
        authenticator=Authenticator(secret=FakeSecret(secret) if secret else None),
        observer=observer,
        max_body_bytes=max_body,
        clock=Clock(),
    )
    return app, runtime, observer


def envelope(**data: Any) -> bytes:
    return wire.encode_envelope(wire.build_envelope("invoke_llm", data, user_id="u", session_id="s-1"))


def post(body: bytes, path: str = "/invoke", **kw: Any) -> HttpRequest:
    return HttpRequest(
        method="POST", path=path, query="action=invoke_llm", headers={}, body=body, request_id="r-1", **kw
    )


def problem(response: HttpResponse) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    parsed: dict[str, Any] = json.loads(b"".join(response.body))
    assert set(parsed) == {"errorType", "errorMessage"}
    return parsed


def test_invoke_streams_the_runtime_lines_lazily() -> None:
    app, runtime, observer = make_app()
    response = app.handle(post(envelope(words=["a", "b"])))
    assert response.status == 200
    assert response.headers == {"content-type": wire.RESPONSE_CONTENT_TYPE}
    assert runtime.started == []  # nothing runs before the transport pulls the first chunk
    body: Iterator[bytes] = response.body
    first = next(body)
    assert first == wire.session_line("s-1", "stream", {"word": "a"})
    assert runtime.started == ["s-1"]
    rest = list(body)
    assert rest[-1] == wire.end_line("s-1")
    assert observer.finished == []  # metrics wait for close()
    response.close()
    [record] = observer.finished
    assert (record.action, record.session_id, record.request_id) == ("invoke_llm", "s-1", "r-1")
    assert record.events == 3
    assert record.completed is True
    assert record.error_type is None
    assert record.time_to_first_event_ms is not None
    assert 0 < record.time_to_first_event_ms < record.duration_ms


def test_plugin_error_is_in_band_and_recorded() -> None:
    app, _, observer = make_app()
    response = app.handle(post(envelope(words=["a"], fail=True)))
    lines = list(response.body)
    response.close()
    assert [json.loads(line)["data"]["type"] for line in lines] == ["stream", "error", "end"]
    assert observer.finished[0].error_type == "BoomError"


def test_client_disconnect_closes_the_plugin_stream() -> None:
    app, runtime, observer = make_app()
    response = app.handle(post(envelope(words=["a", "b", "c"])))
    body = response.body
    next(body)
    body.close()  # type: ignore[attr-defined]
    response.close()
    assert runtime.closed == ["s-1"]
    assert observer.finished[0].completed is False
    assert observer.finished[0].events == 1


def test_close_is_idempotent() -> None:
    app, _, observer = make_app()
    response = app.handle(post(envelope()))
    list(response.body)
    response.close()
    response.close()
    assert len(observer.finished) == 1


def test_health() -> None:
    app, _, _ = make_app()
    response = app.handle(HttpRequest(method="GET", path="/health", query="", headers={}, body=b""))
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert b"".join(response.body) == b"OK"


@pytest.mark.parametrize(
    ("request_", "status", "error_type", "fragment"),
    [
        (HttpRequest("GET", "/invoke", "", {}, b""), 405, "MethodNotAllowedError", "POST"),
        (HttpRequest("POST", "/health", "", {}, b""), 405, "MethodNotAllowedError", "GET"),
        (HttpRequest("POST", "/other", "", {}, b""), 404, "RouteNotFoundError", "POST /invoke"),
        (HttpRequest("POST", "/invoke/", "", {}, b""), 404, "RouteNotFoundError", "POST /invoke"),
        (post(b"x" * 1001), 413, "PayloadTooLargeError", "1001 bytes exceeds 1000"),
        (post(b"{"), 400, "InvalidRequestError", "not valid JSON"),
        (post(envelope(words="nope")), 400, "InvalidRequestError", "data.words"),
        (
            post(wire.encode_envelope(wire.build_envelope("invoke_text2img", {}, user_id="u"))),
            400,
            "UnknownActionError",
            "data.action is not a model action",
        ),
        (
            post(
                wire.encode_envelope(
                    wire.build_envelope("invoke_llm", {}, user_id="u", session_id="s")
                ).replace(b'"session_id":"s"', b'"session_id":"\\udc80"')
            ),
            400,
            "InvalidRequestError",
            "field 'session_id' with a lone UTF-16 surrogate",
        ),
    ],
)
def test_bad_requests_get_a_lambda_error_body(
    request_: HttpRequest, status: int, error_type: str, fragment: str
) -> None:
    app, runtime, observer = make_app()
    response = app.handle(request_)
    assert response.status == status
    body = problem(response)
    assert body["errorType"] == error_type
    assert fragment in body["errorMessage"]
    assert "invoke_text2img" not in body["errorMessage"], "no value from the request is echoed"
    assert "\n" not in body["errorMessage"]
    assert runtime.started == []
    assert [(r.status, r.error_type) for r in observer.rejections] == [(status, error_type)]


def test_json_nested_100000_levels_is_a_400_line() -> None:
    app, runtime, observer = make_app(max_body=1_000_000)
    response = app.handle(post(b"[" * 100_000 + b"]" * 100_000))
    assert response.status == 400
    assert problem(response) == {
        "errorType": "InvalidRequestError",
        "errorMessage": "request body nests JSON arrays or objects too deeply",
    }
    assert runtime.started == []
    assert [(r.status, r.error_type) for r in observer.rejections] == [(400, "InvalidRequestError")]


def test_405_names_the_allowed_method() -> None:
    app, _, _ = make_app()
    assert app.handle(HttpRequest("GET", "/invoke", "", {}, b"")).headers["allow"] == "POST"


def test_secret_is_checked_before_routing_and_never_echoed() -> None:
    app, _, _ = make_app(secret="top-secret-1")
    denied = app.handle(HttpRequest("POST", "/nowhere", "", {}, b""))
    assert denied.status == 401
    assert problem(denied)["errorType"] == "UnauthorizedError"
    ok = app.handle(post(envelope(), path="/top-secret-1/invoke"))
    assert ok.status == 200
    # A path that still holds the secret after the header decided: 404 without echoing the path.
    stray = app.handle(
        HttpRequest("POST", "/top-secret-1/invoke", "", {"x-dify-lambda-secret": "top-secret-1"}, b"")
    )
    assert stray.status == 404
    assert "top-secret-1" not in problem(stray)["errorMessage"]


def test_handle_event_decodes_base64_bodies() -> None:
    app, runtime, _ = make_app()
    event = {
        "rawPath": "/invoke",
        "requestContext": {"http": {"method": "POST"}, "requestId": "r-9"},
        "headers": {},
        "body": base64.b64encode(envelope(words=["x"])).decode(),
        "isBase64Encoded": True,
    }
    response = app.handle_event(event)
    assert next(iter(response.body)) == wire.session_line("s-1", "stream", {"word": "x"})
    assert runtime.started == ["s-1"]


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (
            {
                "rawPath": "/invoke",
                "requestContext": {"http": {"method": "POST"}},
                "body": "!!",
                "isBase64Encoded": True,
            },
            400,
        ),
        ({"rawPath": "/invoke", "requestContext": {"http": {"method": "POST"}}, "body": "x" * 2000}, 413),
        ({"rawPath": "/invoke", "headers": "nope"}, 400),
    ],
)
def test_bad_events_are_4xx(event: dict[str, Any], status: int) -> None:
    app, _, observer = make_app()
    response = app.handle_event(event)
    assert response.status == status
    problem(response)
    assert observer.rejections[0].status == status


class Exploding(FakeRuntime):
    def prepare(self, action: str, data: dict[str, Any]) -> object:
        raise RuntimeError("bug with payload words")


def test_handler_bug_is_a_500_without_details() -> None:
    observer = RecordingObserver()
    app = Application(runtime=Exploding(), authenticator=Authenticator(), observer=observer)
    response = app.handle(post(envelope()))
    assert response.status == 500
    body = problem(response)
    assert body == {
        "errorType": "InternalError",
        "errorMessage": "internal error in the handler (RuntimeError)",
    }


def test_buffered_result_shape() -> None:
    app, _, observer = make_app()
    result = buffered_result(app.handle(post(envelope(words=["a"]))))
    assert result["statusCode"] == 200
    assert result["isBase64Encoded"] is False
    assert result["cookies"] == []
    assert result["headers"] == {"content-type": wire.RESPONSE_CONTENT_TYPE}
    assert result["body"].encode() == wire.session_line("s-1", "stream", {"word": "a"}) + wire.end_line("s-1")
    assert len(observer.finished) == 1


def test_buffered_result_falls_back_to_base64_for_binary() -> None:
    response = HttpResponse(status=200, headers={}, body=iter((b"\xff\x00",)))
    result = buffered_result(response)
    assert result["isBase64Encoded"] is True
    assert base64.b64decode(result["body"]) == b"\xff\x00"


def test_a_lone_surrogate_in_the_event_body_text_is_a_400_not_a_500() -> None:
    app, runtime, _ = make_app()
    event = {
        "rawPath": "/invoke",
        "requestContext": {"http": {"method": "POST"}, "requestId": "r-1"},
        "body": '{"event": "request", "session_id": "s\udc80"}',
    }
    response = app.handle_event(event)
    assert response.status == 400
    assert problem(response) == {
        "errorType": "InvalidRequestError",
        "errorMessage": "request body is not UTF-8 encoded JSON",
    }
    assert runtime.started == []
