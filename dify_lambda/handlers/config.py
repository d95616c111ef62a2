"""Handler configuration, read once at init from the ``DIFY_LAMBDA_*`` environment variables.

The variables and their defaults are the contract in docs/architecture.md. Reading is pure (it takes
the environment as a mapping) so unit tests need no process environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from dify_lambda import wire
from dify_lambda.handlers.errors import HandlerConfigError

__all__ = ["DEFAULT_MAX_BODY_BYTES", "SECRET_MAX_AGE_SECONDS", "HandlerConfig", "SecretSourceKind", "UrlAuth"]

DEFAULT_MAX_BODY_BYTES = wire.FUNCTION_URL_MAX_REQUEST_BYTES
#: How long a secret read from Secrets Manager/SSM is cached before it is read again (rotation).
SECRET_MAX_AGE_SECONDS = 300


class UrlAuth(StrEnum):
    AWS_IAM = "AWS_IAM"
    NONE = "NONE"


class SecretSourceKind(StrEnum):
    ENV = wire.ENV_SECRET
    SECRETS_MANAGER = wire.ENV_SECRET_ARN
    SSM = wire.ENV_SECRET_PARAMETER


@dataclass(frozen=True, slots=True)
class HandlerConfig:
    """Everything the application core needs from the environment."""

    plugin_root: Path
    url_auth: UrlAuth
    allowed_principals: tuple[str, ...]
    #: Which secret source is configured (at most one), and its value: the secret itself for
    #: ENV, else the secret id / parameter name (left out of ``repr``).
    secret_source: SecretSourceKind | None
    secret_ref: str = field(repr=False)
    max_body_bytes: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> HandlerConfig:
        """Read and validate the configuration; raises :class:`HandlerConfigError` naming the variable."""
        env = os.environ if env is None else env
        return cls(
            plugin_root=_plugin_root(env, cwd),
            url_auth=_url_auth(env),
            allowed_principals=_principals(env),
            secret_source=(source := _secret_source(env)),
            secret_ref=env[source.value].strip() if source is not None else "",
            max_body_bytes=_max_body(env),
        )._checked()

    def _checked(self) -> HandlerConfig:
        if self.url_auth is UrlAuth.NONE and self.secret_source is None:
            raise HandlerConfigError(
                "DIFY_LAMBDA_URL_AUTH=NONE requires a shared secret: set one of DIFY_LAMBDA_SECRET, "
                "DIFY_LAMBDA_SECRET_ARN or DIFY_LAMBDA_SECRET_PARAMETER"
            )
        if self.url_auth is UrlAuth.NONE and self.allowed_principals:
            raise HandlerConfigError(
                "DIFY_LAMBDA_ALLOWED_PRINCIPALS needs DIFY_LAMBDA_URL_AUTH=AWS_IAM: "
                "a NONE URL carries no caller identity"
            )
        return self


def _plugin_root(env: Mapping[str, str], cwd: Path | None) -> Path:
    explicit = env.get(wire.ENV_PLUGIN_ROOT, "").strip()
    if explicit:
        return Path(explicit)
    task_root = env.get("LAMBDA_TASK_ROOT", "").strip()
    if task_root:
        return Path(task_root) / "plugin"
    return cwd if cwd is not None else Path.cwd()


def _url_auth(env: Mapping[str, str]) -> UrlAuth:
    raw = env.get(wire.ENV_URL_AUTH, "").strip() or UrlAuth.AWS_IAM.value
    try:
        return UrlAuth(raw.upper())
    except ValueError:
        raise HandlerConfigError(f"DIFY_LAMBDA_URL_AUTH must be AWS_IAM or NONE, got {raw[:40]!r}") from None


def _principals(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get(wire.ENV_ALLOWED_PRINCIPALS, "")
    principals = tuple(p.strip() for p in raw.split(",") if p.strip())
    for principal in principals:
        if not principal.startswith("arn:") or principal.count(":") < 5:
            raise HandlerConfigError(
                f"DIFY_LAMBDA_ALLOWED_PRINCIPALS entry {principal[:200]!r} is not an ARN "
                "(expected arn:<partition>:iam::<account>:user/... or :role/...)"
            )
    return principals


def _secret_source(env: Mapping[str, str]) -> SecretSourceKind | None:
    configured = [kind for kind in SecretSourceKind if env.get(kind.value, "").strip()]
    if len(configured) > 1:
        names = ", ".join(kind.value for kind in configured)
        raise HandlerConfigError(f"set only one shared-secret source, found {names}")
    return configured[0] if configured else None


def _max_body(env: Mapping[str, str]) -> int:
    raw = env.get(wire.ENV_MAX_BODY_BYTES, "").strip()
    if not raw:
        return DEFAULT_MAX_BODY_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise HandlerConfigError(f"DIFY_LAMBDA_MAX_BODY_BYTES must be an integer, got {raw[:40]!r}") from None
    if value <= 0:
        raise HandlerConfigError(f"DIFY_LAMBDA_MAX_BODY_BYTES must be positive, got {value}")
    return value
