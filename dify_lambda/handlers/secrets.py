"""Where the shared secret of an ``AuthType: NONE`` URL comes from.

Three sources (docs/architecture.md): the ``DIFY_LAMBDA_SECRET`` value itself, a Secrets Manager
secret (``DIFY_LAMBDA_SECRET_ARN``) or an SSM SecureString (``DIFY_LAMBDA_SECRET_PARAMETER``). The
AWS sources go through Powertools Parameters, which caches the value for
:data:`~dify_lambda.handlers.config.SECRET_MAX_AGE_SECONDS` so a rotated secret is picked up
without a redeploy. boto3 and Powertools Parameters are imported only when such a source is
configured; tests inject a provider instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from dify_lambda.handlers.config import SECRET_MAX_AGE_SECONDS, HandlerConfig, SecretSourceKind
from dify_lambda.handlers.errors import SecretUnavailableError

__all__ = ["ParameterProvider", "ParameterSecret", "SecretSource", "StaticSecret", "secret_from_config"]

# A child of the Powertools logger (service "dify-lambda"), so these lines are JSON too.
_log = logging.getLogger("dify-lambda.secrets")


class SecretSource(Protocol):
    """Gives the current shared secret (cheap: called once per request)."""

    def current(self) -> str: ...


class ParameterProvider(Protocol):
    """The part of a Powertools ``SecretsProvider``/``SSMProvider`` used here."""

    def get(self, name: str, max_age: int | None = None, **options: Any) -> Any: ...


class StaticSecret:
    """A secret given directly in the environment."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise SecretUnavailableError("the shared secret is empty")
        self._value = value

    def current(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "StaticSecret(<hidden>)"


class ParameterSecret:
    """A secret read through a Powertools parameter provider, cached by the provider.

    The first read happens at construction (init fails if it fails). Later refreshes that fail
    keep serving the last good value and log the failure (without the value), so a transient
    AWS API error does not turn every request into a 401.
    """

    __slots__ = ("_last", "_max_age", "_name", "_options", "_provider", "_what")

    def __init__(
        self,
        provider: ParameterProvider,
        name: str,
        *,
        what: str,
        max_age: int = SECRET_MAX_AGE_SECONDS,
        options: dict[str, Any] | None = None,
    ) -> None:
        self._provider = provider
        self._name = name
        self._what = what
        self._max_age = max_age
        self._options = options or {}
        try:
            self._last = self._fetch()
        except SecretUnavailableError:
            raise
        except Exception as exc:  # any provider/botocore failure is an init failure
            raise SecretUnavailableError(
                f"cannot read the shared secret from {what} {name!r}: {type(exc).__name__}"
            ) from exc

    def _fetch(self) -> str:
        value = self._provider.get(self._name, max_age=self._max_age, **self._options)
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("utf-8")
        if not isinstance(value, str) or not value:
            raise SecretUnavailableError(f"{self._what} {self._name!r} holds no non-empty string secret")
        return value

    def current(self) -> str:
        try:
            self._last = self._fetch()
        except Exception as exc:
            _log.warning(
                "refreshing the shared secret failed; using the cached value",
                extra={"secret_source": self._what, "error_type": type(exc).__name__},
            )
        return self._last

    def __repr__(self) -> str:
        return f"ParameterSecret({self._what}, {self._name!r})"


ProviderFactory = Callable[[SecretSourceKind], ParameterProvider]


def _default_provider(kind: SecretSourceKind) -> ParameterProvider:
    # Imported lazily: boto3 + Powertools Parameters cost ~150 ms and are only needed here.
    from aws_lambda_powertools.utilities import parameters

    if kind is SecretSourceKind.SECRETS_MANAGER:
        return parameters.SecretsProvider()
    return parameters.SSMProvider()


def secret_from_config(
    config: HandlerConfig, *, provider_factory: ProviderFactory | None = None
) -> SecretSource | None:
    """Build the configured secret source (None when no secret is configured)."""
    kind = config.secret_source
    if kind is None:
        return None
    if kind is SecretSourceKind.ENV:
        return StaticSecret(config.secret_ref)
    provider = (provider_factory or _default_provider)(kind)
    if kind is SecretSourceKind.SECRETS_MANAGER:
        return ParameterSecret(provider, config.secret_ref, what="Secrets Manager secret")
    return ParameterSecret(provider, config.secret_ref, what="SSM parameter", options={"decrypt": True})
