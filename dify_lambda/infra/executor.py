"""Carrying out a :class:`~dify_lambda.infra.plan.Plan`, undoing what this run created on failure.

Every resource the run creates (role, function, alias, URL, permission) is recorded with how to
remove it; when a later step fails, those are removed newest first and the error is raised. Updates
to an existing function are not undone: ``live`` only moves once the new version is published and
ready, so callers keep being served by the previous one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dify_lambda.infra import versions
from dify_lambda.infra.artifact import BuiltArtifact, Progress
from dify_lambda.infra.aws import AwsClients, error_code
from dify_lambda.infra.code import CodeSource, discard_code, prepare_code
from dify_lambda.infra.errors import DeployError
from dify_lambda.infra.plan import (
    AddPermission,
    AttachRolePolicy,
    CreateFunction,
    CreateRole,
    CreateUrl,
    Desired,
    Plan,
    PointAlias,
    PruneVersions,
    PublishVersion,
    RemovePermission,
    Step,
    TagFunction,
    UpdateCode,
    UpdateConfiguration,
    UpdateUrl,
)
from dify_lambda.infra.role import attach_policy, create_role, delete_role
from dify_lambda.packaging.spec import INVOKE_MODE
from dify_lambda.wire import ALIAS_NAME

__all__ = ["Executor", "Outcome"]

#: IAM is eventually consistent: a fresh role may not be assumable by Lambda for a few seconds.
_ROLE_NOT_READY = "InvalidParameterValueException"


@dataclass(slots=True)
class Outcome:
    """What running a plan produced."""

    role_arn: str | None = None
    version: str | None = None
    url: str | None = None
    pruned: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Undo:
    what: str
    action: Callable[[], object]


class Executor:
    """Runs the steps of one plan against AWS."""

    def __init__(
        self,
        clients: AwsClients,
        *,
        code: Callable[[], CodeSource],
        sleep: Callable[[float], None],
        poll_interval: float,
        max_polls: int,
        role_retries: int,
        progress: Progress,
    ) -> None:
        self.clients = clients
        self._code = code
        self.sleep = sleep
        self.poll_interval = poll_interval
        self.max_polls = max_polls
        self.role_retries = role_retries
        self.progress = progress
        self._undo: list[_Undo] = []
        self._source: CodeSource | None = None
        self._created_role = False

    @property
    def lam(self) -> Any:
        return self.clients.lambda_

    def run(self, plan: Plan, desired: Desired) -> Outcome:
        out = Outcome(role_arn=plan.role_arn)
        try:
            for step in plan.steps:
                self._run(step, desired, out)
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, DeployError) or not isinstance(exc, Exception):
                raise
            operation = getattr(exc, "operation_name", None)
            where = f": {operation}" if operation else ""
            raise DeployError(
                f"deploying {desired.name} failed{where} ({error_code(exc) or type(exc).__name__})"
            ) from exc
        finally:
            if self._source is not None:
                discard_code(self.clients.s3, self._source)
        return out

    def _rollback(self) -> None:
        for undo in reversed(self._undo):
            # Best effort: a failure here must not hide the error that caused the cleanup.
            with contextlib.suppress(Exception):
                undo.action()
                self.progress(f"removed {undo.what} (created by this failed run)")
        self._undo.clear()

    def _source_once(self) -> CodeSource:
        if self._source is None:
            self._source = self._code()
        return self._source

    def _run(self, step: Step, desired: Desired, out: Outcome) -> None:
        name = desired.name
        iam = self.clients.iam
        if isinstance(step, CreateRole):
            out.role_arn = create_role(iam, name)
            self._created_role = True
            self._undo.append(_Undo(f"role {step.role}", lambda: delete_role(iam, name)))
            attach_policy(iam, name)
            self.progress(f"created execution role {step.role}")
        elif isinstance(step, AttachRolePolicy):
            attach_policy(iam, name)
            self.progress(f"attached the missing execution policy to role {step.role}")
        elif isinstance(step, CreateFunction):
            self._create(desired, out)
            self._undo.append(_Undo(f"function {name}", lambda: self.lam.delete_function(FunctionName=name)))
            self._wait(name, "creation")
        elif isinstance(step, UpdateCode):
            self.progress(f"updating code of {name}")
            self.lam.update_function_code(
                FunctionName=name,
                Architectures=list(desired.config.architectures),
                **self._source_once().lambda_args(),
            )
            self._wait(name, "code update")
        elif isinstance(step, UpdateConfiguration):
            self.progress(f"updating configuration of {name}")
            settings = {k: v for k, v in desired.config.lambda_args().items() if k != "Architectures"}
            self.lam.update_function_configuration(FunctionName=name, Role=out.role_arn, **settings)
            self._wait(name, "configuration update")
        elif isinstance(step, TagFunction):
            arn = self.lam.get_function_configuration(FunctionName=name)["FunctionArn"]
            self.lam.tag_resource(Resource=arn, Tags=dict(desired.tags))
        elif isinstance(step, PublishVersion):
            out.version = self.lam.publish_version(FunctionName=name, Description=desired.description)[
                "Version"
            ]
            self._wait(name, f"version {out.version}", qualifier=out.version)
            self.progress(f"published version {out.version}")
        elif isinstance(step, PointAlias):
            self._point_alias(name, step, out)
        elif isinstance(step, CreateUrl):
            out.url = self.lam.create_function_url_config(
                FunctionName=name, Qualifier=ALIAS_NAME, AuthType=step.auth, InvokeMode=INVOKE_MODE
            )["FunctionUrl"]
            self._undo.append(
                _Undo(
                    "function URL",
                    lambda: self.lam.delete_function_url_config(FunctionName=name, Qualifier=ALIAS_NAME),
                )
            )
            self.progress(f"created function URL ({step.auth}) on alias {ALIAS_NAME}")
        elif isinstance(step, UpdateUrl):
            out.url = self.lam.update_function_url_config(
                FunctionName=name, Qualifier=ALIAS_NAME, AuthType=step.auth, InvokeMode=INVOKE_MODE
            )["FunctionUrl"]
            self.progress(f"updated function URL to {step.auth}")
        elif isinstance(step, RemovePermission):
            with contextlib.suppress(self.lam.exceptions.ResourceNotFoundException):
                self.lam.remove_permission(FunctionName=name, StatementId=step.sid, Qualifier=ALIAS_NAME)
            self.progress(f"removed permission {step.sid}")
        elif isinstance(step, AddPermission):
            self._add_permission(name, step)
        elif isinstance(step, PruneVersions):
            for version in step.versions:
                with contextlib.suppress(self.lam.exceptions.ResourceNotFoundException):
                    self.lam.delete_function(FunctionName=name, Qualifier=version)
                out.pruned.append(version)
            self.progress(
                f"deleted old version{'s' if len(step.versions) > 1 else ''} {', '.join(step.versions)}"
            )

    def _create(self, desired: Desired, out: Outcome) -> None:
        if out.role_arn is None:
            raise DeployError(f"no execution role for {desired.name}")
        attempts = self.role_retries if self._created_role else 1
        source = self._source_once()
        self.progress(f"creating function {desired.name}")
        for attempt in range(attempts):
            try:
                self.lam.create_function(
                    FunctionName=desired.name,
                    Role=out.role_arn,
                    Code=source.lambda_args(),
                    Publish=False,
                    PackageType="Zip",
                    Tags=dict(desired.tags),
                    **desired.config.lambda_args(),
                )
                return
            except Exception as exc:
                if error_code(exc) != _ROLE_NOT_READY or attempt == attempts - 1:
                    raise
                self.sleep(self.poll_interval)

    def _point_alias(self, name: str, step: PointAlias, out: Outcome) -> None:
        version = step.version or out.version
        if version is None:
            raise DeployError(f"{name}: no version to point {ALIAS_NAME} at")
        if step.create:
            self.lam.create_alias(FunctionName=name, Name=ALIAS_NAME, FunctionVersion=version)
            self._undo.append(
                _Undo(
                    f"alias {ALIAS_NAME}", lambda: self.lam.delete_alias(FunctionName=name, Name=ALIAS_NAME)
                )
            )
        else:
            self.lam.update_alias(FunctionName=name, Name=ALIAS_NAME, FunctionVersion=version)
        out.version = version
        self.progress(f"alias {ALIAS_NAME} -> {version}")

    def _add_permission(self, name: str, step: AddPermission) -> None:
        statement = step.statement
        try:
            self.lam.add_permission(
                FunctionName=name, Qualifier=ALIAS_NAME, **statement.add_permission_args()
            )
        except self.lam.exceptions.ResourceConflictException:
            return  # added concurrently by another deploy of the same function
        self._undo.append(
            _Undo(
                f"permission {statement.sid}",
                lambda: self.lam.remove_permission(
                    FunctionName=name, StatementId=statement.sid, Qualifier=ALIAS_NAME
                ),
            )
        )
        self.progress(f"granted {statement.action} to {statement.principal}")

    def _wait(self, name: str, what: str, *, qualifier: str | None = None) -> None:
        versions.wait_ready(
            self.lam,
            name,
            what,
            self.progress,
            qualifier=qualifier,
            sleep=self.sleep,
            interval=self.poll_interval,
            max_polls=self.max_polls,
        )


def code_provider(
    clients: AwsClients, artifact: BuiltArtifact, name: str, **kwargs: Any
) -> Callable[[], CodeSource]:
    """Reads (or uploads) the artifact only when a step needs the code."""

    def provide() -> CodeSource:
        return prepare_code(clients.s3, clients.sts, artifact, name, region=clients.region, **kwargs)

    return provide
