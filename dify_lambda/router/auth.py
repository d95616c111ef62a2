"""Request authentication for function URLs: SigV4 (``iam``) and the shared secret header (``secret``).

botocore is imported lazily, on the first signed request, so importing the router stays cheap.
Requests are signed immediately before each send (signatures expire after ~5 minutes) and
re-signed on every retry.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from dify_lambda import wire
from dify_lambda.router.errors import InvalidRouteTableError
from dify_lambda.router.routes import Deployment

__all__ = ["SigV4Signer", "auth_headers", "default_credentials"]

SIGNING_SERVICE = "lambda"


def default_credentials() -> Any:
    """Credentials from the standard botocore chain (env, profile, container, instance role...).

    Returns botocore's (possibly refreshable) credentials object; the signer freezes it per request.
    """
    import botocore.session

    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise InvalidRouteTableError(
            "a route uses auth 'iam' but no AWS credentials were found (botocore credential chain)"
        )
    return credentials


class SigV4Signer:
    """Signs function URL requests with SigV4 (service ``lambda``), credentials resolved once, lazily."""

    def __init__(self, credentials: Callable[[], Any] = default_credentials) -> None:
        self._provider = credentials
        self._credentials: Any = None
        self._lock = threading.Lock()

    def _frozen(self) -> Any:
        if self._credentials is None:
            with self._lock:
                if self._credentials is None:
                    self._credentials = self._provider()
        creds = self._credentials
        return creds.get_frozen_credentials() if hasattr(creds, "get_frozen_credentials") else creds

    def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, region: str
    ) -> dict[str, str]:
        """The headers to add (``Authorization``, ``X-Amz-Date``, maybe ``X-Amz-Security-Token``)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(self._frozen(), SIGNING_SERVICE, region).add_auth(request)
        added = {}
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            value = request.headers.get(name)
            if value is not None:
                added[name] = str(value)
        return added


def _secret_value(deployment: Deployment) -> str:
    if deployment.secret is not None:
        return deployment.secret.get_secret_value()
    name = deployment.secret_env or ""
    value = os.environ.get(name)
    if not value:
        raise InvalidRouteTableError(
            f"deployment {deployment.url}: environment variable {name!r} (secret_env) is not set or empty"
        )
    return value


def auth_headers(
    deployment: Deployment,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    signer: SigV4Signer,
) -> dict[str, str]:
    """Authentication headers for one request to ``deployment``."""
    if deployment.auth == "secret":
        return {wire.SECRET_HEADER: _secret_value(deployment)}
    if deployment.auth == "iam":
        assert deployment.region, "validated by Deployment"
        return signer.sign(method, url, headers, body, deployment.region)
    return {}
