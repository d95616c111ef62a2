"""Create or update one plugin function, publish a version and serve it from the ``live`` alias.

A deploy reads what exists (:mod:`~dify_lambda.infra.observe`), states what it wants
(:func:`desired_state`), lets the pure planner decide the steps (:mod:`~dify_lambda.infra.plan`)
and runs them (:mod:`~dify_lambda.infra.executor`). ``plan`` alone is the dry run. A failed run
removes what it created; a failed update leaves ``live`` on the previous version.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from dify_lambda import wire
from dify_lambda.infra import access, inventory, versions
from dify_lambda.infra.artifact import BuiltArtifact, Progress, no_progress
from dify_lambda.infra.aws import AwsClients, error_code
from dify_lambda.infra.code import DIRECT_UPLOAD_LIMIT
from dify_lambda.infra.errors import DeployError
from dify_lambda.infra.executor import Executor, code_provider
from dify_lambda.infra.models import (
    DeployedFunction,
    DeployOptions,
    DeployResult,
    RemoveResult,
    RollbackResult,
)
from dify_lambda.infra.naming import function_name, role_name, validate_function_name
from dify_lambda.infra.observe import observe
from dify_lambda.infra.plan import Desired, FunctionConfig, Plan, RemoteState, plan
from dify_lambda.infra.role import delete_role, role_state
from dify_lambda.wire import TAG_AUTH

__all__ = ["Deployer", "desired_state", "plugin_tags"]

SECRET_VARIABLES = wire.SECRET_ENVS


def plugin_tags(artifact: BuiltArtifact, auth: str) -> dict[str, str]:
    """The tags that identify a plugin function (wire.TAG_*)."""
    return {**artifact.identity.tags(artifact.providers), TAG_AUTH: auth}


def desired_environment(
    artifact: BuiltArtifact,
    options: DeployOptions,
    current: Mapping[str, str],
    new_secret: Callable[[], str],
) -> dict[str, str]:
    """The function's environment: the build's, the options', and the NONE-auth path secret."""
    env = {**artifact.spec.environment, **options.environment}
    env[wire.ENV_URL_AUTH] = auth = options.url_auth or artifact.spec.url_auth
    if auth == "NONE":
        if not any(env.get(v) for v in SECRET_VARIABLES):
            # Keep the function's secret across redeploys (callers hold it); rotate on request.
            kept = None if options.rotate_secret else current.get(wire.ENV_SECRET)
            env[wire.ENV_SECRET] = kept or new_secret()
    elif wire.ENV_SECRET not in options.environment:
        # A path secret left over from NONE auth would keep working as a credential: drop it.
        env.pop(wire.ENV_SECRET, None)
    return env


def desired_state(
    name: str,
    artifact: BuiltArtifact,
    options: DeployOptions,
    remote: RemoteState,
    *,
    new_secret: Callable[[], str] = lambda: secrets.token_urlsafe(32),
) -> Desired:
    """What ``name`` should look like for ``artifact`` deployed with ``options``."""
    spec, auth = artifact.spec, options.url_auth or artifact.spec.url_auth
    current_env = remote.latest.config.environment if remote.latest is not None else {}
    config = FunctionConfig(
        runtime=spec.runtime,
        handler=spec.handler,
        memory_mb=options.memory_mb or spec.memory_mb,
        timeout_s=options.timeout_s or spec.timeout,
        architectures=(spec.architecture,),
        environment=desired_environment(artifact, options, current_env, new_secret),
    )
    return Desired(
        name=name,
        code_sha256=artifact.code_sha256(),
        config=config,
        tags=plugin_tags(artifact, auth),
        url_auth=auth,
        statements=tuple(access.desired_statements(auth, options.principals)),
        description=artifact.unique_identifier,
        role_arn=options.role_arn,
        create_role=options.create_role,
        keep=options.keep,
    )


class Deployer:
    """Deploys built artifacts with injected boto3 clients.

    ``sleep`` and the poll settings are injectable so tests never wait (moto is immediate).
    """

    def __init__(
        self,
        clients: AwsClients,
        *,
        bucket: str | None = None,
        create_bucket: bool = True,
        direct_upload_limit: int = DIRECT_UPLOAD_LIMIT,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval: float = 2.0,
        max_polls: int = 150,
        role_retries: int = 10,
    ) -> None:
        self.clients = clients
        self.bucket = bucket
        self.create_bucket = create_bucket
        self.direct_upload_limit = direct_upload_limit
        self.sleep = sleep
        self.poll_interval = poll_interval
        self.max_polls = max_polls
        self.role_retries = role_retries

    @property
    def lam(self) -> Any:
        return self.clients.lambda_

    # --- names and lookups ---------------------------------------------------------------------

    def name_for(self, artifact: BuiltArtifact, options: DeployOptions) -> str:
        name = options.name or artifact.spec.function_name
        if name:
            return validate_function_name(name)
        return function_name(
            artifact.plugin_id, artifact.version, artifact.checksum, with_checksum=options.per_checksum_name
        )

    def describe(self, name: str) -> DeployedFunction | None:
        return inventory.describe(self.clients.lambda_, name)

    def list_deployed(self) -> list[DeployedFunction]:
        return inventory.list_deployed(self.clients.lambda_)

    def find_by_checksum(self, checksum: str) -> DeployedFunction | None:
        return inventory.find_by_checksum(self.clients.lambda_, checksum)

    # --- deploy --------------------------------------------------------------------------------

    def plan(self, artifact: BuiltArtifact, options: DeployOptions | None = None) -> tuple[Plan, Desired]:
        """Read the current state and decide the steps, changing nothing (``deploy --dry-run``)."""
        options = options or DeployOptions()
        name = self.name_for(artifact, options)
        try:
            remote = observe(self.lam, self.clients.iam, name, check_role=not options.role_arn)
        except ClientError as exc:
            raise DeployError(
                f"reading the state of {name} failed: {exc.operation_name} ({error_code(exc)})"
            ) from exc
        desired = desired_state(name, artifact, options, remote)
        return plan(desired, remote), desired

    def deploy(
        self, artifact: BuiltArtifact, options: DeployOptions | None = None, progress: Progress = no_progress
    ) -> DeployResult:
        """Bring the function for ``artifact`` to the desired state and point ``live`` at it."""
        options = options or DeployOptions()
        the_plan, desired = self.plan(artifact, options)
        name = desired.name
        progress(f"deploying {artifact.unique_identifier} as {name}")
        if not the_plan.steps:
            progress(f"{name} is unchanged (live is at a version with the same code and settings)")
        executor = Executor(
            self.clients,
            code=code_provider(
                self.clients,
                artifact,
                name,
                bucket=self.bucket,
                create_bucket=self.create_bucket,
                limit=self.direct_upload_limit,
                progress=progress,
            ),
            sleep=self.sleep,
            poll_interval=self.poll_interval,
            max_polls=self.max_polls,
            role_retries=self.role_retries,
            progress=progress,
        )
        outcome = executor.run(the_plan, desired)
        described = self.describe(name)
        version = outcome.version or (described.alias_version if described else None)
        url = outcome.url or (described.url if described else None)
        if version is None or url is None or described is None:
            raise DeployError(f"{name}: the alias or the function URL is missing after the deploy")
        return DeployResult(
            status=the_plan.status,  # type: ignore[arg-type]
            function_name=name,
            function_arn=described.function_arn,
            version=version,
            previous_version=the_plan.previous_version,
            url=url,
            url_auth=desired.url_auth,
            plugin_id=artifact.plugin_id,
            unique_identifier=artifact.unique_identifier,
            checksum=artifact.checksum,
            providers=artifact.providers,
            secret=desired.config.environment.get(wire.ENV_SECRET),
            steps=tuple(the_plan.describe()),
            pruned=tuple(outcome.pruned),
        )

    # --- rollback and removal ------------------------------------------------------------------

    def rollback(self, name: str, progress: Progress = no_progress) -> RollbackResult:
        """Point ``live`` at the newest published version older than its current one."""
        return versions.rollback(self.lam, validate_function_name(name), progress)

    def remove(self, name: str, *, progress: Progress = no_progress) -> RemoveResult:
        """Delete a managed function (versions, alias, URL and permissions go with it) and its role
        when dify-lambda created it. A function without the managed tag is refused."""
        validate_function_name(name)
        found = self.describe(name)
        if found is None:
            if self._get_function(name) is not None:
                raise DeployError(f"function {name} is not managed by dify-lambda: not removing it")
            raise DeployError(f"function {name} does not exist")
        configured = (self._get_function(name) or {}).get("Configuration", {}).get("Role", "")
        # Only the role named for this function can be ours; a role given with --role-arn is not looked at.
        ours = str(configured).rsplit("/", 1)[-1] == role_name(name)
        role = role_state(self.clients.iam, name) if ours else None
        self.lam.delete_function(FunctionName=name)
        progress(f"deleted function {name} with its versions, alias, URL and permissions")
        removed_role = None
        if role is not None and role.exists and role.managed:
            delete_role(self.clients.iam, name)
            removed_role = role.name
            progress(f"deleted execution role {role.name}")
        return RemoveResult(
            function_name=name, plugin_id=found.plugin_id, url=found.url, role_removed=removed_role
        )

    def delete(self, name: str, *, remove_role: bool = False) -> None:
        """Delete the function (versions, alias and URL go with it) and optionally its role."""
        with contextlib.suppress(self.lam.exceptions.ResourceNotFoundException):
            self.lam.delete_function(FunctionName=name)
        if remove_role:
            delete_role(self.clients.iam, name)

    def _get_function(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.lam.get_function(FunctionName=name)
        except self.lam.exceptions.ResourceNotFoundException:
            return None
        return found
