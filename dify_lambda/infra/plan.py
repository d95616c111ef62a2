"""Deciding what a deploy must do: a pure ``plan(desired, remote) -> Plan``, no AWS calls.

The deployer reads the remote state (:mod:`dify_lambda.infra.observe`), states what it wants
(:class:`Desired`), asks :func:`plan` for the steps and hands them to the executor
(:mod:`dify_lambda.infra.executor`). Every decision lives here so it can be tested without AWS:

- **unchanged** means ``live`` points at a published version whose code and configuration equal
  the desired ones, and the URL, permissions and tags are as wanted. Comparing with ``$LATEST``
  alone is not enough: after a rollback ``$LATEST`` holds the newer code while ``live`` does not.
- otherwise ``$LATEST`` is brought to the desired code and configuration, and ``live`` moves to a
  published version equal to it, publishing one first when none exists.
- the managed execution role is created when missing and repaired (policy attached) when it
  exists without its policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dify_lambda.infra.access import Statement
from dify_lambda.infra.errors import DeployError
from dify_lambda.infra.models import UrlAuth
from dify_lambda.packaging.spec import INVOKE_MODE

__all__ = [
    "AddPermission",
    "AttachRolePolicy",
    "CreateFunction",
    "CreateRole",
    "CreateUrl",
    "Desired",
    "FunctionConfig",
    "Plan",
    "PointAlias",
    "PruneVersions",
    "PublishVersion",
    "RemoteState",
    "RemovePermission",
    "RoleState",
    "Step",
    "TagFunction",
    "UpdateCode",
    "UpdateConfiguration",
    "UpdateUrl",
    "UrlState",
    "VersionState",
    "plan",
    "versions_to_prune",
]


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """The configuration fields the deployer owns (role aside)."""

    runtime: str
    handler: str
    memory_mb: int
    timeout_s: int
    architectures: tuple[str, ...]
    environment: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_lambda(cls, cfg: Mapping[str, Any]) -> FunctionConfig:
        """From a ``get_function_configuration`` / ``list_versions_by_function`` entry."""
        env = (cfg.get("Environment") or {}).get("Variables") or {}
        return cls(
            runtime=str(cfg.get("Runtime", "")),
            handler=str(cfg.get("Handler", "")),
            memory_mb=int(cfg.get("MemorySize", 0)),
            timeout_s=int(cfg.get("Timeout", 0)),
            architectures=tuple(cfg.get("Architectures") or ("x86_64",)),
            environment=dict(env),
        )

    def lambda_args(self) -> dict[str, Any]:
        """Arguments for ``create_function`` (``update_function_configuration`` drops Architectures)."""
        return {
            "Runtime": self.runtime,
            "Handler": self.handler,
            "MemorySize": self.memory_mb,
            "Timeout": self.timeout_s,
            "Architectures": list(self.architectures),
            "Environment": {"Variables": dict(self.environment)},
        }

    def same_settings(self, other: FunctionConfig) -> bool:
        """Equal apart from the architectures (which change with the code, not the configuration)."""
        return (
            self.runtime,
            self.handler,
            self.memory_mb,
            self.timeout_s,
            dict(self.environment),
        ) == (other.runtime, other.handler, other.memory_mb, other.timeout_s, dict(other.environment))


@dataclass(frozen=True, slots=True)
class VersionState:
    """``$LATEST`` or one published version."""

    version: str
    code_sha256: str
    config: FunctionConfig
    role: str | None = None


@dataclass(frozen=True, slots=True)
class RoleState:
    """The managed execution role ``dify-lambda-<function>``."""

    name: str
    arn: str | None = None
    has_policy: bool = False
    managed: bool = False

    @property
    def exists(self) -> bool:
        return self.arn is not None


@dataclass(frozen=True, slots=True)
class UrlState:
    url: str
    auth: str
    invoke_mode: str | None = None


@dataclass(frozen=True, slots=True)
class RemoteState:
    """What exists now for one function name (all empty when the function does not exist)."""

    name: str
    role: RoleState
    latest: VersionState | None = None
    function_arn: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    versions: tuple[VersionState, ...] = ()
    alias_version: str | None = None
    url: UrlState | None = None
    sids: frozenset[str] = frozenset()

    @property
    def exists(self) -> bool:
        return self.latest is not None

    def version(self, number: str | None) -> VersionState | None:
        return next((v for v in self.versions if v.version == number), None)


@dataclass(frozen=True, slots=True)
class Desired:
    """What the function should look like after the deploy."""

    name: str
    code_sha256: str
    config: FunctionConfig
    tags: Mapping[str, str]
    url_auth: UrlAuth
    statements: tuple[Statement, ...]
    description: str = ""
    #: An explicit execution role; None means "keep the function's, else the managed one".
    role_arn: str | None = None
    create_role: bool = True
    #: Keep only this many newest published versions (never the one ``live`` points at).
    keep: int | None = None


# --- steps -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateRole:
    role: str

    def describe(self) -> str:
        return f"create execution role {self.role} (logs only)"


@dataclass(frozen=True, slots=True)
class AttachRolePolicy:
    role: str

    def describe(self) -> str:
        return f"attach the basic execution policy to role {self.role} (it has none)"


@dataclass(frozen=True, slots=True)
class CreateFunction:
    def describe(self) -> str:
        return "create the function"


@dataclass(frozen=True, slots=True)
class UpdateCode:
    def describe(self) -> str:
        return "update the code"


@dataclass(frozen=True, slots=True)
class UpdateConfiguration:
    def describe(self) -> str:
        return "update the configuration"


@dataclass(frozen=True, slots=True)
class TagFunction:
    def describe(self) -> str:
        return "update the plugin identity tags"


@dataclass(frozen=True, slots=True)
class PublishVersion:
    def describe(self) -> str:
        return "publish a new version"


@dataclass(frozen=True, slots=True)
class PointAlias:
    """Point ``live`` at ``version``, or at the version published by this plan when None."""

    version: str | None
    create: bool
    previous: str | None = None

    def describe(self) -> str:
        target = self.version or "the new version"
        if self.create:
            return f"create alias live -> {target}"
        return f"move alias live {self.previous} -> {target}"


@dataclass(frozen=True, slots=True)
class CreateUrl:
    auth: str

    def describe(self) -> str:
        return f"create the function URL ({self.auth}, streaming)"


@dataclass(frozen=True, slots=True)
class UpdateUrl:
    auth: str

    def describe(self) -> str:
        return f"update the function URL to {self.auth}, streaming"


@dataclass(frozen=True, slots=True)
class AddPermission:
    statement: Statement

    def describe(self) -> str:
        return f"grant {self.statement.action} to {self.statement.principal}"


@dataclass(frozen=True, slots=True)
class RemovePermission:
    sid: str

    def describe(self) -> str:
        return f"remove permission {self.sid}"


@dataclass(frozen=True, slots=True)
class PruneVersions:
    versions: tuple[str, ...]

    def describe(self) -> str:
        return f"delete old version{'s' if len(self.versions) > 1 else ''} {', '.join(self.versions)}"


Step = (
    CreateRole
    | AttachRolePolicy
    | CreateFunction
    | UpdateCode
    | UpdateConfiguration
    | TagFunction
    | PublishVersion
    | PointAlias
    | CreateUrl
    | UpdateUrl
    | AddPermission
    | RemovePermission
    | PruneVersions
)


@dataclass(frozen=True, slots=True)
class Plan:
    """The ordered steps of one deploy, and what the function's role will be."""

    name: str
    steps: tuple[Step, ...]
    #: The role ARN to use; None when the plan creates the managed role.
    role_arn: str | None
    #: The version ``live`` points at before the plan runs.
    previous_version: str | None

    @property
    def status(self) -> str:
        if any(isinstance(s, CreateFunction) for s in self.steps):
            return "created"
        # Pruning old versions changes nothing about what live serves.
        return "updated" if any(not isinstance(s, PruneVersions) for s in self.steps) else "unchanged"

    def has(self, kind: type) -> bool:
        return any(isinstance(s, kind) for s in self.steps)

    def describe(self) -> list[str]:
        return [s.describe() for s in self.steps]


# --- the planner -------------------------------------------------------------------------------


def _role_steps(desired: Desired, remote: RemoteState) -> tuple[str | None, list[Step]]:
    if desired.role_arn:
        return desired.role_arn, []
    current = remote.latest.role if remote.latest is not None else None
    managed = remote.role
    if current and current != managed.arn:
        return current, []  # a role the user gave on an earlier deploy: theirs to look after
    if managed.exists:
        # Reusing our role: it must still carry its policy, else the function runs without logs.
        return managed.arn, [] if managed.has_policy else [AttachRolePolicy(managed.name)]
    if current:
        return current, []
    if not desired.create_role:
        raise DeployError(f"no execution role for {desired.name}: pass --role-arn or allow creating one")
    return None, [CreateRole(managed.name)]


def _matches(version: VersionState, desired: Desired, role_arn: str | None) -> bool:
    return (
        version.code_sha256 == desired.code_sha256
        and version.config.architectures == desired.config.architectures
        and version.config.same_settings(desired.config)
        and (role_arn is None or version.role == role_arn)
    )


def versions_to_prune(
    published: list[str], *, keep: int, live: str | None, publishing: bool
) -> tuple[str, ...]:
    """Published versions beyond the ``keep`` newest, never ``live``; a version about to be
    published counts as the newest."""
    if keep < 1:
        raise DeployError(f"--keep {keep}: keep at least 1 version")
    numbers = sorted((int(v) for v in published if v.isdigit()), reverse=True)
    kept = numbers[: max(keep - 1, 0)] if publishing else numbers[:keep]
    return tuple(str(n) for n in sorted(numbers) if n not in kept and str(n) != live)


def plan(desired: Desired, remote: RemoteState) -> Plan:
    """The steps that take ``remote`` to ``desired``; empty when nothing needs to change."""
    role_arn, steps = _role_steps(desired, remote)
    if remote.latest is None:
        steps += [CreateFunction(), PublishVersion(), PointAlias(None, create=True)]
        steps.append(CreateUrl(desired.url_auth))
        steps += [AddPermission(s) for s in desired.statements]
        return Plan(desired.name, tuple(steps), role_arn, None)

    latest = remote.latest
    if (
        latest.code_sha256 != desired.code_sha256
        or latest.config.architectures != desired.config.architectures
    ):
        steps.append(UpdateCode())
    if not latest.config.same_settings(desired.config) or (role_arn is not None and latest.role != role_arn):
        steps.append(UpdateConfiguration())
    if any(remote.tags.get(k) != v for k, v in desired.tags.items()):
        steps.append(TagFunction())

    live = remote.version(remote.alias_version)
    target: str | None
    if live is not None and _matches(live, desired, role_arn):
        target = live.version
    else:
        equal = [v for v in remote.versions if _matches(v, desired, role_arn)]
        if equal:
            target = max(equal, key=lambda v: int(v.version)).version
        else:
            steps.append(PublishVersion())
            target = None
        steps.append(PointAlias(target, create=remote.alias_version is None, previous=remote.alias_version))

    url = remote.url
    if url is None:
        steps.append(CreateUrl(desired.url_auth))
    elif url.auth != desired.url_auth or url.invoke_mode != INVOKE_MODE:
        steps.append(UpdateUrl(desired.url_auth))
    wanted = {s.sid: s for s in desired.statements}
    steps += [RemovePermission(sid) for sid in sorted(remote.sids - wanted.keys())]
    steps += [AddPermission(s) for sid, s in wanted.items() if sid not in remote.sids]

    if desired.keep is not None:
        old = versions_to_prune(
            [v.version for v in remote.versions], keep=desired.keep, live=target, publishing=target is None
        )
        if old:
            steps.append(PruneVersions(old))
    return Plan(desired.name, tuple(steps), role_arn, remote.alias_version)
