"""The router's errors, all under :class:`dify_lambda.errors.RouterError`.

::

    RouterError
    ├── InvalidRouteTableError       a route table (file, stack outputs, tags) is invalid; names the entry
    ├── RouteSourceError             a route source could not be read (file missing, AWS call failed)
    ├── NoRouteError                 no route for the plugin id (or every override is empty)
    └── InvocationError              one call failed; carries the call (.call) and delivered
        ├── PayloadTooLargeError         request envelope over the cap (daemon message format)
        ├── AllDeploymentsCoolingDownError  every deployment of the route is in cooldown
        ├── RetryableError               retryable failure (status / throttled / connect) with no attempt left
        ├── LambdaError                  Lambda refused the call (non-2xx, x-amzn-ErrorType, errorType body)
        ├── FirstEventTimeoutError       no event before the first-event timeout (or the total deadline)
        ├── MalformedEventError          a response line is not a valid event
        ├── PluginInvokeError            the plugin sent an ``error`` event (error_type, message, args)
        └── StreamInterruptedError       the stream broke after it started, or ended without ``end``
            └── IdleTimeoutError             no bytes for longer than the idle timeout

Retries and fail-over only happen before the first event (dify_lambda.router.policy); afterwards
the caller gets a typed error whose ``delivered`` says how many events it already received.
Messages never contain credentials, prompt text or payload contents.
"""

from __future__ import annotations

from typing import Any

from dify_lambda.errors import RouterError
from dify_lambda.router.call import CallInfo

__all__ = [
    "AllDeploymentsCoolingDownError",
    "FirstEventTimeoutError",
    "IdleTimeoutError",
    "InvalidRouteTableError",
    "InvocationError",
    "LambdaError",
    "MalformedEventError",
    "NoRouteError",
    "PayloadTooLargeError",
    "PluginInvokeError",
    "RetryableError",
    "RouteSourceError",
    "RouterError",
    "StreamInterruptedError",
]


class InvalidRouteTableError(RouterError):
    """A route table is invalid; the message names the source and the entry."""


class RouteSourceError(RouterError):
    """A route source (file, CloudFormation, Lambda tags) could not be read."""


class NoRouteError(RouterError):
    """No route (or no deployment) for the requested plugin id."""


class InvocationError(RouterError):
    """One call failed. ``call`` is the call as of the failing attempt (its ``url`` names the
    deployment); ``delivered`` counts the events the caller already received."""

    def __init__(self, message: str, *, call: CallInfo | None = None, delivered: int = 0) -> None:
        super().__init__(message)
        self.call = call
        self.delivered = delivered


class PayloadTooLargeError(InvocationError):
    """The request envelope exceeds the request cap (function URLs accept 6 MiB)."""

    def __init__(
        self,
        message: str,
        *,
        payload_bytes: int,
        max_request_bytes: int,
        item_index: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.payload_bytes = payload_bytes
        self.max_request_bytes = max_request_bytes
        self.item_index = item_index


class AllDeploymentsCoolingDownError(InvocationError):
    """Every deployment of the route is cooling down; ``retry_in`` is the shortest wait in seconds.

    ``kinds`` holds the failure kinds behind the cooldowns (``connect``, ``throttled``, ``auth``).
    """

    def __init__(
        self, message: str, *, retry_in: float, kinds: frozenset[str] = frozenset(), **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.retry_in = retry_in
        self.kinds = kinds

    @property
    def connect(self) -> bool:
        """True when every deployment cools down after a connection failure."""
        return self.kinds == {"connect"}


class RetryableError(InvocationError):
    """A retryable failure (``kind``: ``status``, ``throttled`` or ``connect``) and no attempt left."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status: int | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
        error_type: str = "",
        request_id: str = "",
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.attempts = attempts
        self.error_type = error_type
        self.request_id = request_id

    @property
    def throttled(self) -> bool:
        return self.kind == "throttled"

    @property
    def connect(self) -> bool:
        return self.kind == "connect"


class LambdaError(InvocationError):
    """Lambda answered with an error instead of the plugin's stream (the daemon's PluginRuntimeError)."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_type: str = "",
        request_id: str = "",
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.status = status
        self.error_type = error_type
        self.request_id = request_id


class FirstEventTimeoutError(InvocationError):
    """No event arrived within the first-event timeout (or the total deadline)."""


class MalformedEventError(InvocationError):
    """A response line is not a valid event (e.g. an HTML error page, or a line over 5 MiB)."""


class PluginInvokeError(InvocationError):
    """The plugin reported an error: its exception class name, message and args."""

    def __init__(
        self, message: str, *, error_type: str, args: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        super().__init__(f"{error_type}: {message}", **kw)
        self.error_type = error_type
        self.error_message = message
        self.error_args = dict(args or {})


class StreamInterruptedError(InvocationError):
    """The stream broke after it started (reset, timeout) or ended without ``end``."""

    def __init__(self, message: str, *, events: tuple[Any, ...] = (), **kw: Any) -> None:
        super().__init__(message, **kw)
        #: The stream payloads already delivered, when the router keeps them (``keep_delivered``).
        self.events = events


class IdleTimeoutError(StreamInterruptedError):
    """No bytes arrived for longer than the idle timeout after the stream started."""
