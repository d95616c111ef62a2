"""The connector's work: look up and launch plugin functions, one per package checksum.

Launch = validate (H1's reader, file name vs package checksum, ``verified``) → build (injected
:class:`~dify_lambda.infra.builder.Builder`) → deploy (injected deployer, ``AuthType: NONE`` with
a random per-function secret as the first path segment, because the daemon signs nothing). It is
idempotent per checksum and serialised per checksum. The pipeline runs in a worker thread so the
stream can end with a ``failed`` line when the time budget runs out; the worker then aborts at its
next progress step and the deployer removes whatever this launch created.
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dify_lambda.errors import DifyLambdaError, PackageError
from dify_lambda.infra.artifact import BuiltArtifact, Progress
from dify_lambda.infra.builder import Builder, BuildRequest
from dify_lambda.infra.connector import protocol
from dify_lambda.infra.connector.protocol import Stage
from dify_lambda.infra.errors import ConnectorError, LaunchRefusedError
from dify_lambda.infra.models import DeployedFunction, DeployOptions, DeployResult
from dify_lambda.infra.naming import PackageFilename, function_name, parse_package_filename

__all__ = ["ConnectorSettings", "DeployerLike", "LaunchService", "PackageReader"]

logger = logging.getLogger(__name__)

#: Reads and validates package bytes; returns a ``PluginPackage``-like object.
PackageReader = Callable[[bytes, str], Any]


class DeployerLike(Protocol):
    def describe(self, name: str) -> DeployedFunction | None: ...

    def deploy(self, artifact: BuiltArtifact, options: DeployOptions, progress: Progress) -> DeployResult: ...


def default_reader(data: bytes, name: str) -> Any:
    from dify_lambda.packaging.reader import PluginPackage

    return PluginPackage.from_bytes(data, name=name)


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    allow_unverified: bool = False
    daemon_url: str | None = None
    role_arn: str | None = None
    #: Seconds the whole launch stream may take; the daemon cuts it at 240 s by default.
    launch_budget_s: float = 225.0


class _Cancelled(Exception):
    """Raised from a progress callback once the request side has given up on a launch."""


class LaunchService:
    """Instances lookup and launch, with injected deployer, builder and package reader."""

    def __init__(
        self,
        deployer: DeployerLike,
        builder: Builder,
        settings: ConnectorSettings | None = None,
        *,
        reader: PackageReader = default_reader,
        work_root: Path | None = None,
    ) -> None:
        self.deployer = deployer
        self.builder = builder
        self.settings = settings or ConnectorSettings()
        self.reader = reader
        self.work_root = work_root
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._workers: set[threading.Thread] = set()

    # --- lookup --------------------------------------------------------------------------------

    @staticmethod
    def function_name_for(parsed: PackageFilename) -> str:
        return function_name(parsed.plugin_id, parsed.version, parsed.checksum, with_checksum=True)

    def find(self, parsed: PackageFilename) -> DeployedFunction | None:
        """The ready function for this package (checksum tag matches, URL exists), else None."""
        found = self.deployer.describe(self.function_name_for(parsed))
        if (
            found is None
            or found.checksum != parsed.checksum
            or not found.endpoint
            or not found.alias_version
        ):
            return None
        return found

    def instances(self, filename: str) -> tuple[int, bytes]:
        """``GET /v1/runner/instances``: status and JSON body."""
        try:
            parsed = parse_package_filename(filename)
        except DifyLambdaError as exc:
            return 400, protocol.instances_body([], error=f"bad filename: {exc}")
        found = self.find(parsed)
        if found is None:
            return 200, protocol.instances_body([])
        item = protocol.instance_item(
            found.function_arn, found.function_name, found.endpoint or "", found.function_arn
        )
        return 200, protocol.instances_body([item])

    # --- launch --------------------------------------------------------------------------------

    def check_request(self, filename: str, verified: str | None) -> PackageFilename:
        """Validate what can be checked before the stream starts (raises LaunchRefusedError)."""
        try:
            parsed = parse_package_filename(filename)
        except DifyLambdaError as exc:
            raise LaunchRefusedError(f"bad context filename: {exc}") from None
        if verified is None:
            raise LaunchRefusedError("form field 'verified' is missing")
        if verified.strip().lower() not in ("true", "false"):
            raise LaunchRefusedError("form field 'verified' must be 'true' or 'false'")
        return parsed

    def launch(
        self, parsed: PackageFilename, data: bytes, verified: bool, emit: Callable[[bytes], None]
    ) -> None:
        """Run one launch, calling ``emit`` with each encoded line, the last one ``end`` or ``failed``."""
        lines: queue.Queue[bytes | None] = queue.Queue()
        cancelled = threading.Event()
        worker = threading.Thread(
            target=self._pipeline,
            args=(parsed, data, verified, lines, cancelled),
            name=f"launch-{parsed.checksum[:12]}",
            daemon=True,
        )
        deadline = time.monotonic() + self.settings.launch_budget_s
        with self._locks_guard:
            self._workers = {w for w in self._workers if w.is_alive()}
            self._workers.add(worker)
        worker.start()
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    cancelled.set()
                    emit(
                        protocol.chunk(
                            "end",
                            "failed",
                            f"launch did not finish within {self.settings.launch_budget_s:.0f} s",
                        )
                    )
                    return
                try:
                    line = lines.get(timeout=min(remaining, 1.0))
                except queue.Empty:
                    continue
                if line is None:
                    return
                emit(line)
        except BaseException:
            cancelled.set()  # the client went away: stop the worker at its next step
            raise

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for launch workers still running (e.g. cleaning up after a cancelled launch).

        Returns True when none is left. Used on shutdown, so no launch is cut off mid-deploy.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._locks_guard:
            workers = list(self._workers)
        for worker in workers:
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self._locks_guard:
            self._workers = {w for w in self._workers if w.is_alive()}
            return not self._workers

    def _lock(self, checksum: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(checksum, threading.Lock())

    def _pipeline(
        self,
        parsed: PackageFilename,
        data: bytes,
        verified: bool,
        lines: queue.Queue[bytes | None],
        cancelled: threading.Event,
    ) -> None:
        stage: list[Stage] = ["start"]

        def say(next_stage: Stage, message: str) -> None:
            if cancelled.is_set():
                raise _Cancelled
            stage[0] = next_stage
            lines.put(protocol.chunk(next_stage, "running", message))

        try:
            message = self._run(parsed, data, verified, say)
            lines.put(protocol.chunk("run", "success", message))
            lines.put(protocol.chunk("end", "success", "done"))
        except _Cancelled:
            logger.info("launch of %s cancelled", parsed)
        except DifyLambdaError as exc:
            lines.put(protocol.chunk(stage[0], "failed", _failure(exc)))
        except Exception:
            logger.exception("launch of %s failed unexpectedly", parsed)
            lines.put(
                protocol.chunk(stage[0], "failed", f"internal error during {stage[0]}; see the connector log")
            )
        finally:
            lines.put(None)

    def _run(
        self,
        parsed: PackageFilename,
        data: bytes,
        verified: bool,
        say: Callable[[Stage, str], None],
    ) -> str:
        """Validate, build and deploy; return the run-success message."""
        say("start", f"received {parsed.unique_identifier} ({len(data)} bytes)")
        if not verified and not self.settings.allow_unverified:
            raise LaunchRefusedError(
                "package is not verified (bad or missing signature); the connector refuses unverified "
                "packages unless started with --allow-unverified"
            )
        package = self.reader(data, str(parsed))
        if package.checksum != parsed.checksum:
            raise LaunchRefusedError(
                "the context filename's checksum does not match the package's own checksum"
            )
        if package.plugin_id != parsed.plugin_id or str(package.manifest.version) != parsed.version:
            raise LaunchRefusedError(
                "the context filename's author/name/version do not match the package manifest"
            )
        with self._lock(parsed.checksum):
            existing = self.find(parsed)
            if existing is not None:
                say("run", f"{existing.function_name} already serves this checksum")
                return protocol.run_success_message(
                    existing.endpoint or "", existing.function_name, existing.function_arn
                )
            with tempfile.TemporaryDirectory(prefix="dify-lambda-launch-", dir=self.work_root) as tmp:
                say("build", "building the Lambda artifact")
                artifact = self.builder(
                    BuildRequest(package=package, out_dir=Path(tmp), url_auth="NONE"),
                    lambda line: say("build", line),
                )
                say("run", "deploying the function")
                result = self.deployer.deploy(artifact, self._options(), lambda line: say("run", line))
        say("run", f"{result.function_name} is ready ({result.status})")
        return protocol.run_success_message(result.endpoint, result.function_name, result.function_arn)

    def _options(self) -> DeployOptions:
        env = {"DIFY_PLUGIN_DAEMON_URL": self.settings.daemon_url} if self.settings.daemon_url else {}
        return DeployOptions(
            url_auth="NONE",
            per_checksum_name=True,
            role_arn=self.settings.role_arn,
            environment=env,
        )


def _failure(exc: DifyLambdaError) -> str:
    if isinstance(exc, PackageError):
        return f"invalid package: {exc}"
    if isinstance(exc, ConnectorError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
