"""The application core shared by every transport (streaming loop, buffered handler, emulator).

Routes (after :mod:`~dify_lambda.handlers.auth`): ``POST /invoke`` answers 200 with the SDK's event
lines, produced lazily by the plugin runtime; ``GET``/``HEAD /health``. Refusals are 4xx in the Lambda
error shape; where they deliberately differ from the SDK's own server is tabled in docs/handler.md
("Routes and answers").
"""

from __future__ import annotations

import base64
import logging
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

from dify_lambda import wire
from dify_lambda.errors import AuthError, RequestError
from dify_lambda.handlers.auth import Authenticator
from dify_lambda.handlers.config import HandlerConfig
from dify_lambda.handlers.dispatch import Invocation, Outcome, PluginRuntime, parse_envelope
from dify_lambda.handlers.errors import (
    InternalError,
    MethodNotAllowedError,
    PayloadTooLargeError,
    RouteNotFoundError,
)
from dify_lambda.handlers.http import HttpRequest, HttpResponse, from_function_url_event
from dify_lambda.handlers.observability import InvocationRecord, Observer, Rejection
from dify_lambda.wire import lambda_error_body

__all__ = ["Application", "application_from_env", "buffered_result"]

# A child of the Powertools logger (service "dify-lambda"), so these lines are JSON too.
_log = logging.getLogger("dify-lambda.app")

_STREAM_HEADERS = {"content-type": wire.RESPONSE_CONTENT_TYPE}


class Application:
    """Maps one :class:`HttpRequest` to one :class:`HttpResponse` for the loaded plugin."""

    def __init__(
        self,
        *,
        runtime: PluginRuntime,
        authenticator: Authenticator,
        observer: Observer,
        max_body_bytes: int = wire.FUNCTION_URL_MAX_REQUEST_BYTES,
        clock: Any = time.perf_counter,
    ) -> None:
        self._runtime = runtime
        self._auth = authenticator
        self._observer = observer
        self.max_body_bytes = max_body_bytes
        self._clock = clock

    def handle_event(self, event: Mapping[str, Any]) -> HttpResponse:
        """Handle a function URL (payload format 2.0) event."""
        try:
            request = from_function_url_event(event, max_body_bytes=self.max_body_bytes)
        except RequestError as exc:
            ctx = event.get("requestContext") if isinstance(event, Mapping) else None
            request_id = str(ctx.get("requestId") or "") if isinstance(ctx, Mapping) else ""
            return self._reject(request_id, exc, None)
        return self.handle(request)

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Authenticate, route and answer; never raises for a bad request."""
        action: str | None = None
        try:
            path = self._auth.authenticate(request)
            if path == wire.HEALTH_PATH:
                if request.method not in ("GET", "HEAD"):
                    raise MethodNotAllowedError("/health accepts GET only", allow="GET, HEAD")
                body = b"" if request.method == "HEAD" else wire.HEALTH_BODY
                return HttpResponse(status=200, headers=dict(_STREAM_HEADERS), body=iter((body,)))
            if path != wire.INVOKE_PATH:
                raise RouteNotFoundError("no such route: use POST /invoke or GET /health")
            if request.method != "POST":
                raise MethodNotAllowedError("/invoke accepts POST only", allow="POST")
            if len(request.body) > self.max_body_bytes:
                raise PayloadTooLargeError(
                    f"request body of {len(request.body)} bytes exceeds {self.max_body_bytes} bytes"
                )
            invocation = parse_envelope(request.body)
            action = invocation.action
            prepared = self._runtime.prepare(invocation.action, invocation.data)
        except (RequestError, AuthError) as exc:
            return self._reject(request.request_id, exc, action)
        except Exception as exc:  # a handler bug must not take the process down
            # Frames only: the exception message could quote the request.
            _log.error(
                "unexpected error while routing a request",
                extra={"error_type": type(exc).__name__, "frames": traceback.format_tb(exc.__traceback__)},
            )
            error = InternalError(f"internal error in the handler ({type(exc).__name__})")
            return self._reject(request.request_id, error, action)
        return self._stream(request.request_id, invocation, prepared)

    def _reject(self, request_id: str, exc: RequestError | AuthError, action: str | None) -> HttpResponse:
        name = type(exc).__name__
        self._observer.rejected(
            Rejection(request_id=request_id, status=exc.status, error_type=name, action=action)
        )
        headers = {"content-type": "application/json"}
        if isinstance(exc, MethodNotAllowedError):
            headers["allow"] = exc.allow
        body = iter((lambda_error_body(name, str(exc)),))
        return HttpResponse(status=exc.status, headers=headers, body=body)

    def _stream(self, request_id: str, invocation: Invocation, prepared: object) -> HttpResponse:
        clock = self._clock
        started = clock()
        outcome = Outcome()
        state: dict[str, Any] = {"events": 0, "first": None, "completed": False}

        def body() -> Iterator[bytes]:
            events = self._runtime.run(invocation, prepared, outcome)
            try:
                for chunk in events:
                    if state["first"] is None:
                        state["first"] = clock()
                    state["events"] += 1
                    yield chunk
                state["completed"] = True
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()

        def finished() -> None:
            first = state["first"]
            self._observer.invocation_finished(
                InvocationRecord(
                    request_id=request_id,
                    session_id=invocation.session_id,
                    action=invocation.action,
                    duration_ms=(clock() - started) * 1000,
                    time_to_first_event_ms=None if first is None else (first - started) * 1000,
                    events=state["events"],
                    error_type=outcome.error_type,
                    completed=state["completed"],
                )
            )

        return HttpResponse(status=200, headers=dict(_STREAM_HEADERS), body=body(), on_close=finished)


def buffered_result(response: HttpResponse) -> dict[str, Any]:
    """Drain ``response`` into the function URL / API Gateway 2.0 buffered result dict."""
    try:
        body = b"".join(response.body)
    finally:
        response.close()
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode("ascii"), True
    return {
        "statusCode": response.status,
        "headers": dict(response.headers),
        "body": text,
        "isBase64Encoded": is_base64,
        "cookies": list(response.cookies),
    }


def application_from_env(env: Mapping[str, str] | None = None) -> Application:
    """Build the application from ``DIFY_LAMBDA_*`` variables, loading the plugin (once per process).

    Raises :class:`~dify_lambda.errors.PluginLoadError` (or a leaf of it) when the configuration,
    the shared secret, the SDK or the plugin cannot be loaded.
    """
    from dify_lambda.handlers.observability import PowertoolsObserver
    from dify_lambda.handlers.plugin import SdkPluginRuntime
    from dify_lambda.handlers.secrets import secret_from_config

    started = time.perf_counter()
    config = HandlerConfig.from_env(env)
    secret = secret_from_config(config)
    runtime = SdkPluginRuntime.load(config.plugin_root)
    observer = PowertoolsObserver(runtime.plugin_id)
    observer.plugin_loaded(sdk_version=runtime.sdk_version, init_ms=(time.perf_counter() - started) * 1000)
    return Application(
        runtime=runtime,
        authenticator=Authenticator(allowed_principals=config.allowed_principals, secret=secret),
        observer=observer,
        max_body_bytes=config.max_body_bytes,
    )
