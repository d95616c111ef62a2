"""Inputs and outputs of the deployer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from dify_lambda.packaging.spec import UrlAuth
from dify_lambda.wire import ALIAS_NAME

__all__ = [
    "DeployOptions",
    "DeployResult",
    "DeployedFunction",
    "RemoveResult",
    "RollbackResult",
    "UrlAuth",
]

DeployStatus = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True, slots=True)
class DeployOptions:
    """How to deploy one artifact.

    ``url_auth="NONE"`` needs a shared secret (the handler refuses to start without one): put
    ``DIFY_LAMBDA_SECRET`` (or ``_SECRET_ARN`` / ``_SECRET_PARAMETER``) in ``environment``, or
    leave it out and the deployer keeps the function's current secret or generates one.
    """

    #: Default: the build's ``--function-name``, else one derived from the plugin (infra.naming).
    name: str | None = None
    #: Default: the build's (its ``--url-auth``).
    url_auth: UrlAuth | None = None
    #: Caller ARNs granted ``lambda:InvokeFunctionUrl`` and ``lambda:InvokeFunction`` (AWS_IAM).
    principals: tuple[str, ...] = ()
    #: Execution role; when unset the deployer creates ``dify-lambda-<function>`` (if allowed).
    role_arn: str | None = None
    create_role: bool = True
    #: Extra environment, applied over the build's.
    environment: Mapping[str, str] = field(default_factory=dict)
    memory_mb: int | None = None
    timeout_s: int | None = None
    #: Name the function per checksum (the connector's choice) instead of per version.
    per_checksum_name: bool = False
    #: Generate a new secret even when the function already has one (NONE auth).
    rotate_secret: bool = False
    #: Keep only this many newest published versions (never the one ``live`` points at).
    keep: int | None = None


@dataclass(frozen=True, slots=True)
class DeployResult:
    """What a deploy did and where the function answers."""

    status: DeployStatus
    function_name: str
    function_arn: str
    version: str
    previous_version: str | None
    url: str
    url_auth: UrlAuth
    plugin_id: str
    unique_identifier: str
    checksum: str
    providers: tuple[str, ...] = ()
    #: The path-prefix secret for NONE URLs (never printed by the CLI).
    secret: str | None = field(default=None, repr=False)
    #: What the deploy did, one line per step (empty when unchanged).
    steps: tuple[str, ...] = ()
    #: Old versions deleted by ``keep``.
    pruned: tuple[str, ...] = ()

    @property
    def alias_arn(self) -> str:
        return f"{self.function_arn}:{ALIAS_NAME}"

    @property
    def endpoint(self) -> str:
        """The URL a caller that signs nothing uses: ``<url>/<secret>`` for NONE, else the URL."""
        base = self.url.rstrip("/")
        return f"{base}/{self.secret}" if self.url_auth == "NONE" and self.secret else base


@dataclass(frozen=True, slots=True)
class DeployedFunction:
    """One managed function as ``ls``, ``instances`` and route publication see it."""

    function_name: str
    function_arn: str
    plugin_id: str
    unique_identifier: str
    checksum: str
    providers: tuple[str, ...]
    url_auth: str
    alias_version: str | None
    url: str | None
    secret: str | None = field(default=None, repr=False)

    @property
    def version(self) -> str:
        """Plugin version, read from the unique identifier ``author/name:version@checksum``."""
        head = self.unique_identifier.partition("@")[0]
        return head.partition(":")[2]

    @property
    def endpoint(self) -> str | None:
        if self.url is None:
            return None
        base = self.url.rstrip("/")
        return f"{base}/{self.secret}" if self.url_auth == "NONE" and self.secret else base


@dataclass(frozen=True, slots=True)
class RemoveResult:
    """What ``rm`` removed."""

    function_name: str
    plugin_id: str
    url: str | None
    role_removed: str | None


@dataclass(frozen=True, slots=True)
class RollbackResult:
    function_name: str
    from_version: str
    to_version: str
