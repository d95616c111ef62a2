"""Error leaves of the handler (branch :class:`dify_lambda.errors.HandlerError`).

Request errors carry the HTTP status to answer with; their class name is the ``errorType`` of the
JSON body (the Lambda error shape), so keep the names stable and descriptive.
"""

from __future__ import annotations

from dify_lambda.errors import AuthError, PluginLoadError, RequestError

__all__ = [
    "ForbiddenError",
    "HandlerConfigError",
    "InternalError",
    "InvalidRequestError",
    "MethodNotAllowedError",
    "PayloadTooLargeError",
    "RouteNotFoundError",
    "SecretUnavailableError",
    "UnauthorizedError",
    "UnknownActionError",
    "UnsupportedSdkError",
]


class HandlerConfigError(PluginLoadError):
    """A ``DIFY_LAMBDA_*`` environment variable is missing, invalid or contradictory (init fails)."""


class UnsupportedSdkError(PluginLoadError):
    """The installed ``dify_plugin`` version is outside the range this handler reproduces exactly."""


class SecretUnavailableError(PluginLoadError):
    """The shared secret could not be read from Secrets Manager or SSM."""


class InvalidRequestError(RequestError):
    """The event or the body is not a valid request, or a field has the wrong type (400)."""


class UnknownActionError(RequestError):
    """``data.type``/``data.action`` name nothing this handler serves (400)."""


class RouteNotFoundError(RequestError):
    """The path is neither ``/invoke`` nor ``/health`` (404)."""

    status = 404


class MethodNotAllowedError(RequestError):
    """The route exists but not for this HTTP method (405)."""

    status = 405

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


class PayloadTooLargeError(RequestError):
    """The request body exceeds ``DIFY_LAMBDA_MAX_BODY_BYTES`` (413)."""

    status = 413


class InternalError(RequestError):
    """A bug in the handler while routing (500); the message names only the exception class."""

    status = 500


class UnauthorizedError(AuthError):
    """The shared secret is missing or wrong (401)."""


class ForbiddenError(AuthError):
    """The caller's IAM principal is not on the allow-list (403)."""

    status = 403
