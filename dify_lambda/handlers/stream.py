"""The streaming Runtime API loop: ``python -m dify_lambda.handlers.stream`` (started by the exec wrapper).

Init: build the application (``DIFY_LAMBDA_APP_FACTORY=module:function`` overrides the default
``dify_lambda.handlers.app:application_from_env``; a seam for tests and extensions), run the
SnapStart hooks when ``AWS_LAMBDA_INITIALIZATION_TYPE`` is ``snap-start``, then serve invocations
one at a time, forever. Each response is streamed (docs/wire-protocol.md §6): a failure before the first
byte goes to ``/error``, a failure after it ends the stream with the error trailers. A failed
invocation never stops the loop; an init failure posts ``/init/error`` and exits non-zero.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from dify_lambda.handlers.http import HttpResponse
from dify_lambda.handlers.runtime_api import (
    INIT_ERROR_PATH,
    RESTORE_ERROR_PATH,
    ErrorInfo,
    Invocation,
    ResponseWriter,
    RuntimeApiClient,
    RuntimeApiError,
    encode_prelude,
    invocation_path,
)

__all__ = [
    "APP_FACTORY_ENV",
    "DEFAULT_APP_FACTORY",
    "Application",
    "load_application",
    "main",
    "register_after_restore",
    "register_before_snapshot",
    "run_loop",
    "serve_invocation",
]

APP_FACTORY_ENV = "DIFY_LAMBDA_APP_FACTORY"
DEFAULT_APP_FACTORY = "dify_lambda.handlers.app:application_from_env"
TRACE_ENV = "_X_AMZN_TRACE_ID"

Hook = tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]
_before_snapshot: list[Hook] = []
_after_restore: list[Hook] = []


class Application(Protocol):
    """What the loop needs from the application core (``dify_lambda.handlers.app``)."""

    def handle_event(self, event: dict[str, Any]) -> HttpResponse: ...


def register_before_snapshot(func: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Built-in SnapStart hook registry, used when ``snapshot_restore_py`` is not installed."""
    _before_snapshot.append((func, args, kwargs))


def register_after_restore(func: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    _after_restore.append((func, args, kwargs))


def _hooks() -> tuple[list[Hook], list[Hook]]:
    before, after = list(_before_snapshot), list(_after_restore)
    try:
        import snapshot_restore_py as srp
    except ImportError:
        return before, after
    return before + list(srp.get_before_snapshot()), after + list(srp.get_after_restore())


def load_application(env: Mapping[str, str]) -> Application:
    """Import and call the app factory named by ``DIFY_LAMBDA_APP_FACTORY`` (or the default)."""
    spec = env.get(APP_FACTORY_ENV, "").strip() or DEFAULT_APP_FACTORY
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{APP_FACTORY_ENV} must be module:function, got {spec[:200]!r}")
    factory = getattr(importlib.import_module(module_name), attr)
    app: Application = factory()
    return app


def _report(message: str) -> None:
    # Lambda ships stderr to CloudWatch; keep it one line per problem.
    print(f"dify-lambda stream: {message}", file=sys.stderr, flush=True)


def _close_body(body: Iterator[bytes]) -> None:
    close = getattr(body, "close", None)
    if callable(close):
        try:
            close()
        except Exception as exc:  # a generator's cleanup must not break the loop
            _report(f"closing the response body failed: {type(exc).__name__}")


def serve_invocation(client: RuntimeApiClient, app: Application, invocation: Invocation) -> None:
    """Answer one invocation; never raises for an application failure."""
    try:
        event = invocation.event()
        if not isinstance(event, dict):
            raise TypeError("the invocation event is not a JSON object")
        response = app.handle_event(event)
    except Exception as exc:
        error = ErrorInfo.from_exception(exc, category="Function")
        client.post_error(invocation_path(invocation.request_id, "error"), error)
        return
    writer = client.response_writer(invocation.request_id)
    try:
        writer.start(encode_prelude(response.status, response.headers, response.cookies))
        for chunk in response.body:
            writer.write(chunk)
    except RuntimeApiError:
        raise
    except OSError as exc:
        # The Runtime API connection broke: nothing more can be delivered for this invocation.
        _report(f"streaming the response failed: {exc}")
    except Exception as exc:
        error = ErrorInfo.from_exception(exc, category="Function")
        if writer.started:
            _finish(writer, error)
        else:
            client.post_error(invocation_path(invocation.request_id, "error"), error)
    else:
        _finish(writer, None)
    finally:
        writer.close()
        _close_body(response.body)
        response.close()


def _finish(writer: ResponseWriter, error: ErrorInfo | None) -> None:
    try:
        status = writer.finish(error)
    except (OSError, RuntimeApiError) as exc:
        _report(f"ending the response failed: {exc}")
        return
    if status >= 300:
        _report(f"the Runtime API rejected the response with status {status}")


def run_loop(client: RuntimeApiClient, app: Application, *, max_invocations: int | None = None) -> None:
    """Serve invocations until the Runtime API goes away (or ``max_invocations``, for tests)."""
    served = 0
    while max_invocations is None or served < max_invocations:
        invocation = client.next_invocation()
        trace_id = invocation.headers.get("lambda-runtime-trace-id")
        if trace_id:
            os.environ[TRACE_ENV] = trace_id
        else:
            os.environ.pop(TRACE_ENV, None)
        serve_invocation(client, app, invocation)
        served += 1


def _snapstart(client: RuntimeApiClient) -> bool:
    before, _ = _hooks()
    try:
        # Before-checkpoint hooks run in reverse order of registration, as awslambdaric does.
        for func, args, kwargs in reversed(before):
            func(*args, **kwargs)
    except Exception as exc:
        client.post_error(INIT_ERROR_PATH, ErrorInfo.from_exception(exc, category="Runtime"))
        return False
    client.restore_next()
    _, after = _hooks()
    try:
        for func, args, kwargs in after:
            func(*args, **kwargs)
    except Exception as exc:
        client.post_error(RESTORE_ERROR_PATH, ErrorInfo.from_exception(exc, category="Runtime"))
        return False
    return True


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    address = env.get("AWS_LAMBDA_RUNTIME_API", "").strip()
    if not address:
        _report("AWS_LAMBDA_RUNTIME_API is not set")
        return 2
    try:
        client = RuntimeApiClient(address)
    except RuntimeApiError as exc:
        _report(str(exc))
        return 2
    try:
        app = load_application(env)
    except Exception as exc:
        error = ErrorInfo.from_exception(exc, category="Runtime")
        _report(f"init failed: {error.error_type}: {error.message}")
        client.post_error(INIT_ERROR_PATH, error)
        return 1
    try:
        if env.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start" and not _snapstart(client):
            return 1
        run_loop(client, app)
    except RuntimeApiError as exc:
        _report(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    # Run the imported module, not ``__main__``: hooks and the context registered by the
    # application through ``dify_lambda.handlers.stream`` must land in the module that runs.
    sys.exit(importlib.import_module("dify_lambda.handlers.stream").main())
