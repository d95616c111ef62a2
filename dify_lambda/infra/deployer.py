"""Create or update one plugin function, publish a version and serve it from the ``live`` alias.

Steps: name → role → code (inline or S3) → create/update → wait → publish → alias → URL →
permissions. A deploy whose checksum tag, code hash and configuration already match changes
nothing (status ``unchanged``). A failed first deploy deletes what it created; a failed update
leaves the alias on the previous version, so callers keep being served.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from dify_lambda.infra import access, inventory, versions
from dify_lambda.infra.artifact import BuiltArtifact, Progress, no_progress
from dify_lambda.infra.aws import AwsClients, error_code
from dify_lambda.infra.code import DIRECT_UPLOAD_LIMIT, CodeSource, discard_code, prepare_code
from dify_lambda.infra.errors import DeployError
from dify_lambda.infra.models import DeployedFunction, DeployOptions, DeployResult, RollbackResult
from dify_lambda.infra.naming import function_name, validate_function_name
from dify_lambda.infra.role import delete_role, ensure_role
from dify_lambda.wire import ALIAS_NAME, TAG_AUTH, TAG_CHECKSUM, identity_tags

__all__ = ["Deployer"]

SECRET_VARIABLES = ("DIFY_LAMBDA_SECRET", "DIFY_LAMBDA_SECRET_ARN", "DIFY_LAMBDA_SECRET_PARAMETER")
#: IAM is eventually consistent: a fresh role may not be assumable by Lambda for a few seconds.
_ROLE_NOT_READY = "InvalidParameterValueException"


def plugin_tags(artifact: BuiltArtifact, auth: str) -> dict[str, str]:
    """The tags that identify a plugin function (wire.TAG_*)."""
    identity = identity_tags(
        plugin_id=artifact.plugin_id,
        unique_identifier=artifact.unique_identifier,
        checksum=artifact.checksum,
        providers=artifact.providers,
    )
    return {**identity, TAG_AUTH: auth}


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
        if options.name:
            return validate_function_name(options.name)
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

    def deploy(
        self, artifact: BuiltArtifact, options: DeployOptions | None = None, progress: Progress = no_progress
    ) -> DeployResult:
        """Create or update the function for ``artifact`` and point ``live`` at a new version."""
        options = options or DeployOptions()
        name = self.name_for(artifact, options)
        progress(f"deploying {artifact.unique_identifier} as {name}")
        current = self._get_function(name)
        config = self._desired_config(artifact, options, current)
        tags = plugin_tags(artifact, options.url_auth)
        sha = artifact.code_sha256()
        if current is not None and self._matches(current, sha, config, tags):
            unchanged = self._unchanged_result(name, current, artifact, options, config)
            if unchanged is not None:
                progress(f"{name} is unchanged (checksum {artifact.checksum[:12]}, same code and settings)")
                return unchanged
        created_role = created_function = False
        source: CodeSource | None = None
        try:
            role_arn = options.role_arn or (current or {}).get("Configuration", {}).get("Role")
            if not role_arn:
                if not options.create_role:
                    raise DeployError(f"no execution role for {name}: pass --role-arn or allow creating one")
                role_arn, created_role = ensure_role(self.clients.iam, name)
                if created_role:
                    progress(f"created execution role for {name}")
            source = prepare_code(
                self.clients.s3,
                self.clients.sts,
                artifact,
                name,
                region=self.clients.region,
                bucket=self.bucket,
                create_bucket=self.create_bucket,
                limit=self.direct_upload_limit,
                progress=progress,
            )
            if current is None:
                progress(f"creating function {name} ({artifact.size / 1048576:.1f} MiB)")
                self._create(name, role_arn, source, config, tags, retry_role=created_role)
                created_function = True
            else:
                self._update(
                    name,
                    current=current,
                    sha=sha,
                    role_arn=role_arn,
                    source=source,
                    config=config,
                    tags=tags,
                    progress=progress,
                )
            self._wait(name, "creation" if created_function else "update", progress)
            version = self.lam.publish_version(FunctionName=name, Description=artifact.unique_identifier)[
                "Version"
            ]
            self._wait(name, f"version {version}", progress, qualifier=version)
            previous = self._point_alias(name, version)
            progress(f"published version {version}; alias {ALIAS_NAME} -> {version}")
            url = access.ensure_url(self.lam, name, options.url_auth, progress)
            access.ensure_permissions(self.lam, name, options.url_auth, options.principals, progress)
        except Exception as exc:
            if created_function:
                self._delete_quietly(name)
            if created_role:
                delete_role(self.clients.iam, name)
            if isinstance(exc, DeployError):
                raise
            raise DeployError(f"deploying {name} failed ({error_code(exc) or type(exc).__name__})") from exc
        finally:
            if source is not None:
                discard_code(self.clients.s3, source)
        return DeployResult(
            status="created" if created_function else "updated",
            function_name=name,
            function_arn=self._function_arn(name),
            version=version,
            previous_version=previous,
            url=url,
            url_auth=options.url_auth,
            plugin_id=artifact.plugin_id,
            unique_identifier=artifact.unique_identifier,
            checksum=artifact.checksum,
            providers=artifact.providers,
            secret=config["Environment"]["Variables"].get("DIFY_LAMBDA_SECRET"),
        )

    def _desired_config(
        self, artifact: BuiltArtifact, options: DeployOptions, current: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        settings = artifact.settings
        env = dict(settings.environment)
        env.update(options.environment)
        env["DIFY_LAMBDA_URL_AUTH"] = options.url_auth
        if options.url_auth == "NONE":
            if not any(env.get(v) for v in SECRET_VARIABLES):
                # Keep the function's secret across redeploys (callers hold it); rotate on request.
                old = ((current or {}).get("Configuration", {}).get("Environment") or {}).get(
                    "Variables"
                ) or {}
                env["DIFY_LAMBDA_SECRET"] = (
                    old.get("DIFY_LAMBDA_SECRET") if not options.rotate_secret else None
                ) or secrets.token_urlsafe(32)
        elif "DIFY_LAMBDA_SECRET" not in options.environment:
            # A path secret left over from NONE auth would keep working as a credential: drop it.
            env.pop("DIFY_LAMBDA_SECRET", None)
        return {
            "Runtime": settings.runtime,
            "Handler": settings.handler,
            "MemorySize": options.memory_mb or settings.memory_mb,
            "Timeout": options.timeout_s or settings.timeout_s,
            "Architectures": [settings.architecture],
            "Environment": {"Variables": env},
        }

    @staticmethod
    def _matches(
        current: Mapping[str, Any], sha: str, config: Mapping[str, Any], tags: Mapping[str, str]
    ) -> bool:
        cfg = current["Configuration"]
        if (
            cfg.get("CodeSha256") != sha
            or (current.get("Tags") or {}).get(TAG_CHECKSUM) != tags[TAG_CHECKSUM]
        ):
            return False
        if any((current.get("Tags") or {}).get(k) != v for k, v in tags.items()):
            return False
        keys = ("Runtime", "Handler", "MemorySize", "Timeout", "Architectures")
        if any(cfg.get(k) != config[k] for k in keys):
            return False
        env = (cfg.get("Environment") or {}).get("Variables") or {}
        return bool(env == config["Environment"]["Variables"])

    def _unchanged_result(
        self,
        name: str,
        current: Mapping[str, Any],
        artifact: BuiltArtifact,
        options: DeployOptions,
        config: Mapping[str, Any],
    ) -> DeployResult | None:
        """The result for an identical redeploy, or None when alias/URL/permissions need repair."""
        described = self.describe(name)
        if described is None or described.alias_version is None or described.url is None:
            return None
        wanted = {s.sid for s in access.desired_statements(options.url_auth, options.principals)}
        if access.current_sids(self.lam, name) != wanted:
            return None
        return DeployResult(
            status="unchanged",
            function_name=name,
            function_arn=current["Configuration"]["FunctionArn"],
            version=described.alias_version,
            previous_version=described.alias_version,
            url=described.url,
            url_auth=options.url_auth,
            plugin_id=artifact.plugin_id,
            unique_identifier=artifact.unique_identifier,
            checksum=artifact.checksum,
            providers=artifact.providers,
            secret=config["Environment"]["Variables"].get("DIFY_LAMBDA_SECRET"),
        )

    def _create(
        self,
        name: str,
        role_arn: str,
        source: CodeSource,
        config: Mapping[str, Any],
        tags: Mapping[str, str],
        *,
        retry_role: bool,
    ) -> None:
        attempts = self.role_retries if retry_role else 1
        for attempt in range(attempts):
            try:
                self.lam.create_function(
                    FunctionName=name,
                    Role=role_arn,
                    Code=source.lambda_args(),
                    Publish=False,
                    PackageType="Zip",
                    Tags=dict(tags),
                    **config,
                )
                return
            except Exception as exc:
                if error_code(exc) != _ROLE_NOT_READY or attempt == attempts - 1:
                    raise
                self.sleep(self.poll_interval)

    def _update(
        self,
        name: str,
        *,
        current: Mapping[str, Any],
        sha: str,
        role_arn: str,
        source: CodeSource,
        config: Mapping[str, Any],
        tags: Mapping[str, str],
        progress: Progress,
    ) -> None:
        cfg = current["Configuration"]
        if cfg.get("CodeSha256") != sha or cfg.get("Architectures") != config["Architectures"]:
            progress(f"updating code of {name}")
            self.lam.update_function_code(
                FunctionName=name, Architectures=config["Architectures"], **source.lambda_args()
            )
            self._wait(name, "code update", progress)
        settings = {k: v for k, v in config.items() if k != "Architectures"}
        progress(f"updating configuration of {name}")
        self.lam.update_function_configuration(FunctionName=name, Role=role_arn, **settings)
        self.lam.tag_resource(Resource=cfg["FunctionArn"], Tags=dict(tags))

    def _point_alias(self, name: str, version: str) -> str | None:
        try:
            previous: str = self.lam.get_alias(FunctionName=name, Name=ALIAS_NAME)["FunctionVersion"]
        except self.lam.exceptions.ResourceNotFoundException:
            self.lam.create_alias(FunctionName=name, Name=ALIAS_NAME, FunctionVersion=version)
            return None
        if previous != version:
            self.lam.update_alias(FunctionName=name, Name=ALIAS_NAME, FunctionVersion=version)
        return previous

    def _wait(self, name: str, what: str, progress: Progress, *, qualifier: str | None = None) -> None:
        versions.wait_ready(
            self.lam,
            name,
            what,
            progress,
            qualifier=qualifier,
            sleep=self.sleep,
            interval=self.poll_interval,
            max_polls=self.max_polls,
        )

    def _get_function(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.lam.get_function(FunctionName=name)
        except self.lam.exceptions.ResourceNotFoundException:
            return None
        return found

    def _function_arn(self, name: str) -> str:
        arn: str = self.lam.get_function_configuration(FunctionName=name)["FunctionArn"]
        return arn

    # --- rollback and removal ------------------------------------------------------------------

    def rollback(self, name: str, progress: Progress = no_progress) -> RollbackResult:
        """Point ``live`` at the newest published version older than its current one."""
        return versions.rollback(self.lam, validate_function_name(name), progress)

    def delete(self, name: str, *, remove_role: bool = False) -> None:
        """Delete the function (versions, alias and URL go with it) and optionally its role."""
        self._delete_quietly(name)
        if remove_role:
            delete_role(self.clients.iam, name)

    def _delete_quietly(self, name: str) -> None:
        with contextlib.suppress(self.lam.exceptions.ResourceNotFoundException):
            self.lam.delete_function(FunctionName=name)
