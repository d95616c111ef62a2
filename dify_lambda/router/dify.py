"""Dify integration: answer Dify's plugin dispatch calls from the router instead of the daemon.

Dify's ``BasePluginClient._stream_request`` (``core.plugin.impl.base``, from Dify 1.3.1;
``BasePluginManager`` in ``core.plugin.manager.base`` up to Dify 1.3.0) yields the daemon's envelope
lines as strings and the host parses them (docs/dify-integration.md §7). :func:`install` replaces
that method with a wrapper that, for ``POST plugin/<tenant>/dispatch/<model path>`` calls whose
``X-Plugin-ID`` is routed and whose body has exactly the shape the router knows
(:func:`routable_body`), yields the same lines built from the router's events
(:func:`envelope_lines`); every other call goes to the original method (the daemon) unchanged, so a
request shape added by a newer Dify (e.g. hosted-quota calls carrying ``redirect``) keeps working.

Error lines follow the daemon exactly:

- plugin ``error`` event ``E`` → ``{"code":-500,"message":json({"error_type":"PluginInvokeError",
  "message":json(E),"args":null}),"data":null}``, ``E`` carrying ``message`` and ``args.description``
  (newer hosts read the first, older ones the second);
- Lambda refusals → the same, inner ``PluginRuntimeError`` with ``args`` ``status_code``/``request_id``;
- other router failures (stream cut, timeouts, bad lines, too large) → inner ``PluginDaemonInnerError``;
- connection failures, and calls refused while every deployment cools down after one → single-encoded
  ``PluginDaemonInnerError`` "Request to Plugin Daemon Service failed", which the host raises as
  ``PluginDaemonInnerError(-500, ...)``, as for a daemon outage.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dify_lambda import wire
from dify_lambda.router.errors import (
    AllDeploymentsCoolingDownError,
    FirstEventTimeoutError,
    InvocationError,
    LambdaError,
    NoRouteError,
    PluginInvokeError,
    RetryableError,
    RouterError,
    RouteSourceError,
    StreamInterruptedError,
)
from dify_lambda.router.events import EndEvent, ErrorEvent, StreamEvent

if TYPE_CHECKING:
    from dify_lambda.router.client import Router

__all__ = [
    "BASE_CLIENTS",
    "TRANSPORT_FAILED",
    "Installation",
    "daemon_error_line",
    "envelope_lines",
    "install",
    "install_from_env",
    "invoke_error_line",
    "routable_body",
    "success_line",
]

logger = logging.getLogger(__name__)

TRANSPORT_FAILED = "Request to Plugin Daemon Service failed"
#: (module, class) holding ``_stream_request``: Dify >= 1.3.1 first, then the 1.0-1.3.0 layout.
BASE_CLIENTS = (
    ("core.plugin.impl.base", "BasePluginClient"),
    ("core.plugin.manager.base", "BasePluginManager"),
)
_DISPATCH_RE = re.compile(r"^/?plugin/(?P<tenant>[^/]+)/dispatch/(?P<path>.+?)/?$")
_MARK = "__dify_lambda_original__"
#: The newest host's first-token gate (``first_token_timeout_ctx``, ``FirstTokenTimeoutError``).
FIRST_TOKEN_MODULE = "core.plugin.impl.first_token_timeout"  # noqa: S105 - a module name


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def success_line(data: Any) -> str:
    return _dumps({"code": 0, "message": "success", "data": data})


def invoke_error_line(error_type: str, message: str, args: Mapping[str, Any] | None = None) -> str:
    """A session error, double-encoded as the daemon does (outer ``PluginInvokeError``)."""
    inner_args = dict(args or {})
    inner_args.setdefault("description", message)
    inner = {"args": inner_args, "error_type": error_type, "message": message}
    outer = {"message": _dumps(inner), "error_type": "PluginInvokeError", "args": None}
    return _dumps({"code": -500, "message": _dumps(outer), "data": None})


def daemon_error_line(error_type: str, message: str) -> str:
    """A daemon-level error, single-encoded (the host maps ``error_type`` by class name)."""
    return _dumps(
        {
            "code": -500,
            "message": _dumps({"message": message, "error_type": error_type, "args": None}),
            "data": None,
        }
    )


def _error_to_line(exc: RouterError) -> str:
    if isinstance(exc, PluginInvokeError):
        return invoke_error_line(exc.error_type, exc.error_message, exc.error_args)
    if isinstance(exc, LambdaError):
        args: dict[str, Any] = {"status_code": exc.status}
        if exc.request_id:
            args["request_id"] = exc.request_id
        return invoke_error_line("PluginRuntimeError", str(exc), args)
    if isinstance(exc, AllDeploymentsCoolingDownError) and exc.connect:
        # The same error as the connection failure that started the cooldown (host special-cases it).
        return daemon_error_line("PluginDaemonInnerError", TRANSPORT_FAILED)
    if isinstance(exc, RetryableError):
        if exc.connect:
            return daemon_error_line("PluginDaemonInnerError", TRANSPORT_FAILED)
        args = {"status_code": exc.status or 0}
        if exc.request_id:
            args["request_id"] = exc.request_id
        what = exc.error_type or f"status {exc.status}"
        return invoke_error_line("PluginRuntimeError", f"Plugin runtime request failed: {what} ({exc})", args)
    if type(exc) is StreamInterruptedError and exc.delivered == 0:  # a 200 whose body had no event
        return invoke_error_line(
            "PluginRuntimeError",
            "Plugin runtime request failed: no valid session response",
            {"status_code": 200},
        )
    if isinstance(exc, NoRouteError):
        return daemon_error_line("PluginNotFoundError", str(exc))
    if isinstance(exc, InvocationError):
        return invoke_error_line("PluginDaemonInnerError", str(exc))
    return daemon_error_line("PluginDaemonInternalServerError", str(exc))


def envelope_lines(
    router: Router,
    dispatch_path: str,
    *,
    plugin_id: str,
    tenant_id: str | None,
    payload: Mapping[str, Any],
    first_token_timeout: float | None = None,
    first_token_error: Callable[[str], BaseException] | None = None,
) -> Iterator[str]:
    """Daemon envelope lines (no ``data:`` prefix) for one host dispatch call; lazy.

    ``first_token_timeout`` (seconds) narrows the router's first-event timeout, as the newest
    host's ``first_token_timeout_ctx`` does for the daemon's read timeout; when it expires,
    ``first_token_error(message)`` is raised (the host's ``FirstTokenTimeoutError``).
    """
    spec = wire.ACTIONS_BY_DISPATCH_PATH.get(dispatch_path)
    if spec is None:
        yield daemon_error_line(
            "PluginDaemonNotFoundError", f"dispatch path {dispatch_path!r} is not a model action"
        )
        return
    data = payload.get("data")
    if not isinstance(data, dict):
        yield daemon_error_line("PluginDaemonBadRequestError", "request body has no 'data' object")
        return
    user_id = payload.get("user_id")
    is_llm = spec.action == "invoke_llm"
    timeouts = None
    if first_token_timeout is not None and first_token_timeout > 0:
        timeouts = replace(router.timeouts, first_event=min(router.timeouts.first_event, first_token_timeout))
    try:
        events = router.invoke(
            plugin_id,
            spec.action,
            data,
            user_id=str(user_id) if user_id is not None else "",  # what the daemon sends when absent
            tenant_id=tenant_id,
            timeout=timeouts,
            raise_errors=False,
        )
        for event in events:
            if isinstance(event, StreamEvent):
                item = event.data
                if is_llm and isinstance(item, dict):
                    item = {**item, "prompt_messages": []}
                yield success_line(item)
            elif isinstance(event, ErrorEvent):
                yield invoke_error_line(event.error_type, event.message, event.args)
                return
            elif isinstance(event, EndEvent):
                return
    except FirstEventTimeoutError as exc:
        if timeouts is not None and first_token_error is not None:
            raise first_token_error(
                f"The first token was not received within {first_token_timeout}s."
            ) from exc
        yield _error_to_line(exc)
    except RouterError as exc:
        yield _error_to_line(exc)


@dataclass
class Installation:
    """Handle returned by :func:`install`; :meth:`uninstall` restores Dify's method."""

    target: type
    original: Callable[..., Any]
    router: Router

    def uninstall(self) -> None:
        if getattr(self.target.__dict__.get("_stream_request"), _MARK, None) is self.original:
            self.target._stream_request = self.original  # type: ignore[attr-defined]


def _find_target(modules: Iterable[tuple[str, str]]) -> type:
    tried = []
    for module_name, class_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            tried.append(module_name)
            continue
        target = getattr(module, class_name, None)
        if isinstance(target, type) and "_stream_request" in target.__dict__:
            return target
        tried.append(f"{module_name}.{class_name}")
    raise RouterError(f"Dify's plugin client was not found (tried {', '.join(tried)}); is this the Dify API?")


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


#: Top-level keys of a model dispatch body as every supported Dify sends it.
_BODY_KEYS = frozenset({"user_id", "data"})
#: ``data`` keys that send a call to Dify's own path: the router writes the first three itself (an
#: action field must not override them); ``redirect`` marks newer Dify's hosted-quota calls.
_RESERVED_DATA_KEYS = frozenset({"user_id", "type", "action", "redirect"})


def routable_body(dispatch_path: str, data: Any) -> Mapping[str, Any] | None:
    """The decoded body when the router fully understands it, else None (the call goes to the daemon).

    Understood: a JSON object with only ``user_id`` (a string, or absent) and ``data`` (an object whose
    ``credentials``, when present, is an object and whose ``model_type`` matches the action). Anything
    else, in particular a ``redirect`` field (newer Dify's hosted-quota calls, whose real credentials
    travel there while ``credentials`` is empty), is left to Dify's own path.
    """
    spec = wire.ACTIONS_BY_DISPATCH_PATH.get(dispatch_path)
    if spec is None:
        return None
    body: Any = data
    if isinstance(data, bytes | str):
        try:
            body = json.loads(data)
        except ValueError:
            return None
    if not isinstance(body, Mapping) or not _BODY_KEYS.issuperset(body):
        return None
    user_id, fields = body.get("user_id"), body.get("data")
    if not isinstance(fields, Mapping) or (user_id is not None and not isinstance(user_id, str)):
        return None
    if _RESERVED_DATA_KEYS.intersection(fields):
        return None
    if "credentials" in fields and not isinstance(fields["credentials"], Mapping):
        return None
    model_type = fields.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        return None
    if spec.model_type is not None and model_type not in (None, spec.model_type):
        return None
    return body


def _first_token_gate() -> tuple[float | None, Callable[[str], BaseException] | None]:
    """The host's first-token timeout for this call, if this Dify has the gate and it is set."""
    module = sys.modules.get(FIRST_TOKEN_MODULE)
    if module is None:
        return None, None
    ctx = getattr(module, "first_token_timeout_ctx", None)
    value = ctx.get() if ctx is not None else None
    if not isinstance(value, int | float) or value <= 0:
        return None, None
    error_cls = getattr(module, "FirstTokenTimeoutError", None)
    return float(value), error_cls


def install(
    router: Router,
    plugin_ids: Iterable[str] | None = None,
    *,
    targets: Iterable[tuple[str, str]] = BASE_CLIENTS,
) -> Installation:
    """Route Dify's model dispatch calls for ``plugin_ids`` through ``router``.

    ``plugin_ids`` defaults to the route table's plugin ids, re-read on every call (so a refreshed
    table takes effect). Calling ``install`` again replaces the previous installation.
    """
    target = _find_target(targets)
    current = target.__dict__["_stream_request"]
    original: Callable[..., Any] = getattr(current, _MARK, current)
    fixed = frozenset(plugin_ids) if plugin_ids is not None else None

    def routed(plugin_id: str | None) -> bool:
        if not plugin_id:
            return False
        if fixed is not None:
            return plugin_id in fixed
        try:
            return plugin_id in router.plugin_ids
        except RouterError:
            logger.exception("dify-lambda route table unavailable; sending %s to the daemon", plugin_id)
            return False

    def _stream_request(  # noqa: PLR0917 - Dify's signature
        self: Any,
        method: str,
        path: str,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        files: Any = None,
    ) -> Iterator[str]:
        match = _DISPATCH_RE.match(path) if method.upper() == "POST" and not params and not files else None
        plugin_id = _header(headers, "X-Plugin-ID")
        if match and match.group("path") in wire.ACTIONS_BY_DISPATCH_PATH and routed(plugin_id):
            payload = routable_body(match.group("path"), data)
            if payload is not None:
                assert plugin_id is not None
                gate, gate_error = _first_token_gate()
                return envelope_lines(
                    router,
                    match.group("path"),
                    plugin_id=plugin_id,
                    tenant_id=match.group("tenant"),
                    payload=payload,
                    first_token_timeout=gate,
                    first_token_error=gate_error,
                )
        result: Iterator[str] = original(self, method, path, params, headers, data, files)
        return result

    setattr(_stream_request, _MARK, original)
    _stream_request.__doc__ = original.__doc__
    target._stream_request = _stream_request  # type: ignore[attr-defined]
    logger.info("dify-lambda router installed on %s.%s", target.__module__, target.__name__)
    return Installation(target, original, router)


_ENV_LOCK = threading.Lock()


#: How long start-up may wait for the first route table before Dify carries on with the daemon.
DEFAULT_ROUTES_TIMEOUT_S = 10.0


def _default_ssm_client() -> Any:
    # botocore, not boto3: the base install (inside Dify) has only botocore; same credential chain.
    import botocore.session
    from botocore.config import Config

    # Bounded: an endpoint that never answers fails the read instead of holding the caller.
    config = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 2})
    return botocore.session.get_session().create_client("ssm", config=config)


def _first_load(cache: Any, timeout: float) -> None:
    """``cache.get()`` within ``timeout`` seconds, in a daemon thread (a greenlet under gevent).

    The loader is left to finish or fail on its own when the time is up; the caller moves on.
    """
    errors: list[BaseException] = []

    def load() -> None:
        try:
            cache.get()
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=load, name="dify-lambda-routes", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise RouteSourceError(f"route table not loaded within {timeout:g} s (DIFY_LAMBDA_ROUTES_TIMEOUT)")
    if errors:
        raise errors[0]


def install_from_env(
    environ: Mapping[str, str] | None = None, *, ssm_client: Callable[[], Any] = _default_ssm_client
) -> Installation | None:
    """Install from environment variables; None when ``DIFY_LAMBDA_ROUTES`` is unset.

    - ``DIFY_LAMBDA_ROUTES``: path of the route table (YAML or JSON), or ``ssm:<parameter name>``
      (read with botocore's default credential chain and region);
    - ``DIFY_LAMBDA_ROUTER_PLUGINS``: comma-separated plugin ids to route (default: all in the table);
    - ``DIFY_LAMBDA_ROUTES_REFRESH``: seconds between route table reloads (default 60);
    - ``DIFY_LAMBDA_ROUTES_TIMEOUT``: seconds the first load may take (default 10); past it this
      raises and the host keeps the daemon.
    """
    env = os.environ if environ is None else environ
    path = env.get(wire.ENV_ROUTES, "").strip()
    if not path:
        return None
    from dify_lambda.router.client import Router
    from dify_lambda.router.sources import RouteCache, route_loader

    try:
        refresh = float(env.get(wire.ENV_ROUTES_REFRESH, "60"))
    except ValueError:
        raise RouterError("DIFY_LAMBDA_ROUTES_REFRESH must be a number of seconds") from None
    try:
        timeout = float(env.get(wire.ENV_ROUTES_TIMEOUT, str(DEFAULT_ROUTES_TIMEOUT_S)))
    except ValueError:
        timeout = -1.0
    if not 0 < timeout < float("inf"):
        raise RouterError("DIFY_LAMBDA_ROUTES_TIMEOUT must be a positive number of seconds")
    plugins = [p.strip() for p in env.get(wire.ENV_ROUTER_PLUGINS, "").split(",") if p.strip()]
    with _ENV_LOCK:
        cache = RouteCache(route_loader(path, ssm_client=ssm_client), refresh_seconds=refresh)
        _first_load(cache, timeout)  # fail at startup, not on the first call, when the table is bad
        return install(Router(cache), plugins or None)
