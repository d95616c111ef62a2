"""Access control for the function URL (issue #4 item 6).

Rules, applied to every route (``/invoke`` and ``/health``) before routing:

* **Shared secret** (mandatory with ``DIFY_LAMBDA_URL_AUTH=NONE``, enforced in any mode when one is
  configured). Sent either in the ``X-Dify-Lambda-Secret`` header or as the first path segment
  (``/<secret>/invoke``), because the unmodified Dify daemon can send no extra header but keeps the
  URL path it was given. When the header is present it alone decides. Compared in constant time;
  401 when missing or wrong. The secret (and so any path holding it) is never logged.
* **IAM allow-list** (``DIFY_LAMBDA_ALLOWED_PRINCIPALS``, AWS_IAM only). Lambda has already
  authenticated the SigV4 signature; the handler then requires
  ``requestContext.authorizer.iam.userArn`` to match an entry (403 otherwise):

  - an exact ARN match;
  - an assumed-role session ``arn:<p>:sts::<acct>:assumed-role/<Role>/<session>`` matches the role
    ``arn:<p>:iam::<acct>:role/[<path>/]<Role>`` and ``arn:<p>:sts::<acct>:assumed-role/<Role>``
    (any session of that role);
  - ``arn:<p>:iam::<acct>:root`` allows every principal of that account (IAM's own meaning).

  Partition and account always have to match. With an empty allow-list every caller Lambda
  authorized is accepted, including direct ``Invoke`` calls that carry no URL identity.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from dify_lambda import wire
from dify_lambda.handlers.errors import ForbiddenError, UnauthorizedError
from dify_lambda.handlers.http import HttpRequest
from dify_lambda.handlers.secrets import SecretSource

__all__ = ["Authenticator", "principal_allowed"]

_SECRET_HEADER = wire.SECRET_HEADER.lower()


@dataclass(frozen=True, slots=True)
class _Arn:
    partition: str
    service: str
    account: str
    resource: str


def _parse_arn(value: str) -> _Arn | None:
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    return _Arn(partition=parts[1], service=parts[2], account=parts[4], resource=parts[5])


def principal_allowed(caller_arn: str, allowed: Sequence[str]) -> bool:
    """True when ``caller_arn`` matches an allow-list entry (rules in the module docstring)."""
    if caller_arn in allowed:
        return True
    caller = _parse_arn(caller_arn)
    if caller is None:
        return False
    session_role = None
    if caller.service == "sts" and caller.resource.startswith("assumed-role/"):
        pieces = caller.resource.split("/")
        session_role = pieces[1] if len(pieces) >= 3 else None
    for entry in allowed:
        want = _parse_arn(entry)
        if want is None or want.partition != caller.partition or want.account != caller.account:
            continue
        if want.service == "iam" and want.resource == "root":
            return True
        if session_role is None:
            continue
        if want.service == "iam" and want.resource.startswith("role/"):
            if want.resource.rsplit("/", 1)[-1] == session_role:
                return True
        elif want.service == "sts" and want.resource == f"assumed-role/{session_role}":
            return True
    return False


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


class Authenticator:
    """Checks one request and returns the route path (secret prefix removed)."""

    def __init__(self, *, allowed_principals: Sequence[str] = (), secret: SecretSource | None = None) -> None:
        self._allowed = tuple(allowed_principals)
        self._secret = secret

    def authenticate(self, request: HttpRequest) -> str:
        """Raise :class:`UnauthorizedError`/:class:`ForbiddenError`, else return the route path."""
        path = request.path or "/"
        if self._secret is not None:
            path = self._check_secret(request, path, self._secret.current())
        if self._allowed:
            self._check_principal(request)
        return path

    @staticmethod
    def _check_secret(request: HttpRequest, path: str, expected: str) -> str:
        header = request.headers.get(_SECRET_HEADER)
        if header is not None:
            if not _same(header, expected):
                raise UnauthorizedError(f"the {wire.SECRET_HEADER} header does not match the shared secret")
            return path
        first, sep, rest = path.lstrip("/").partition("/")
        if first and _same(unquote(first), expected):
            return "/" + rest if sep else "/"
        raise UnauthorizedError(
            f"missing or wrong shared secret: send the {wire.SECRET_HEADER} header or call /<secret>/invoke"
        )

    def _check_principal(self, request: HttpRequest) -> None:
        iam = request.iam or {}
        caller = iam.get("userArn")
        if not isinstance(caller, str) or not caller:
            raise ForbiddenError(
                "no caller identity (requestContext.authorizer.iam.userArn) although "
                "DIFY_LAMBDA_ALLOWED_PRINCIPALS is set; the function URL must use AuthType AWS_IAM"
            )
        if not principal_allowed(caller, self._allowed):
            raise ForbiddenError(f"caller {caller} is not in DIFY_LAMBDA_ALLOWED_PRINCIPALS")
