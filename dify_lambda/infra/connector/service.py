"""The connector's work: look up and launch plugin functions, one per package checksum.

Launch = validate (H1's reader, file name vs package checksum, ``verified``) → build (injected
:class:`~dify_lambda.infra.builder.Builder`) → deploy (injected deployer, ``AuthType: NONE`` with
a random per-function secret as the first path segment, because the daemon signs nothing). It is
idempotent per checksum and serialised per checksum. The pipeline runs in a worker thread so the
stream can end with a ``failed`` line when the time budget runs out; the worker then aborts at its
next progress step and the deployer removes whatever this launch created. :meth:`LaunchService.stop`
(SIGTERM/SIGINT) cancels every launch in flight the same way; a launch whose deploy already
finished completes. Each launch returns one outcome (``launched``, ``refused: ...``,
``failed: ...``) that the server logs as one line.
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
from dify_lambda.infra.naming import function_name, parse_package_filename
from dify_lambda.wire import PluginIdentity

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


#: Why a launch was cancelled; the stream's ``failed`` line and the log line say it.
SHUTTING_DOWN = "the connector is shutting down; the launch was stopped and rolled back"


class _Launch:
    """One launch in flight: its cancel flag, the reason, and its outcome once known."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.reason = ""
        self.outcome = ""

    def cancel(self, reason: str) -> None:
        if not self.cancelled.is_set():
            self.reason = reason
            self.cancelled.set()


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
        self._active: set[_Launch] = set()
        self._stopping = threading.Event()

    # --- lookup --------------------------------------------------------------------------------

    @staticmethod
    def function_name_for(parsed: PluginIdentity) -> str:
        return function_name(parsed.plugin_id, parsed.version, parsed.checksum, with_checksum=True)

    def find(self, parsed: PluginIdentity) -> DeployedFunction | None:
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

    def check_request(self, filename: str, verified: str | None) -> PluginIdentity:
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
        self, parsed: PluginIdentity, data: bytes, verified: bool, emit: Callable[[bytes], None]
    ) -> str:
        """Run one launch, calling ``emit`` with each encoded line, the last one ``end`` or ``failed``.

        Returns the outcome for the log: ``launched <function>``, ``refused: ...`` or ``failed: ...``.
        """
        lines: queue.Queue[bytes | None] = queue.Queue()
        job = _Launch()
        worker = threading.Thread(
            target=self._pipeline,
            args=(parsed, data, verified, lines, job),
            name=f"launch-{parsed.checksum[:12]}",
            daemon=True,
        )
        deadline = time.monotonic() + self.settings.launch_budget_s
        with self._locks_guard:
            if self._stopping.is_set():
                emit(protocol.chunk("start", "failed", SHUTTING_DOWN))
                return f"refused: {SHUTTING_DOWN}"
            self._workers = {w for w in self._workers if w.is_alive()}
            self._workers.add(worker)
            self._active.add(job)
        try:
            worker.start()
            while True:
                if self._stopping.is_set():
                    job.cancel(SHUTTING_DOWN)  # keep draining: the worker sends its failed line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    job.cancel("budget")
                    message = f"launch did not finish within {self.settings.launch_budget_s:.0f} s"
                    emit(protocol.chunk("end", "failed", message))
                    return f"failed: {message}"
                try:
                    line = lines.get(timeout=min(remaining, 0.2))
                except queue.Empty:
                    continue
                if line is None:
                    return job.outcome or "failed: the launch ended without an outcome"
                emit(line)
        except BaseException:
            job.cancel("disconnect")  # the client went away: stop the worker at its next step
            raise
        finally:
            with self._locks_guard:
                self._active.discard(job)

    def stop(self) -> int:
        """Refuse new launches and cancel those in flight (they roll back at their next step).

        Returns how many launches were in flight. Call :meth:`wait_idle` afterwards.
        """
        with self._locks_guard:
            self._stopping.set()
            active = list(self._active)
        for job in active:
            job.cancel(SHUTTING_DOWN)
        return len(active)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for launch workers still running (e.g. cleaning up after a cancelled launch).

        Returns True when none is left. Used on shutdown, so no launch is cut off mid-deploy.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._locks_guard:
            workers = list(self._workers)
        for worker in workers:
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        # The request threads then write the last line of their streams.
        while self._active and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.05)
        with self._locks_guard:
            self._workers = {w for w in self._workers if w.is_alive()}
            return not self._workers and not self._active

    def _lock(self, checksum: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(checksum, threading.Lock())

    def _pipeline(
        self,
        parsed: PluginIdentity,
        data: bytes,
        verified: bool,
        lines: queue.Queue[bytes | None],
        job: _Launch,
    ) -> None:
        stage: list[Stage] = ["start"]

        def say(next_stage: Stage, message: str) -> None:
            if job.cancelled.is_set():
                raise _Cancelled
            stage[0] = next_stage
            lines.put(protocol.chunk(next_stage, "running", message))

        try:
            function, message = self._run(parsed, data, verified, say)
            lines.put(protocol.chunk("run", "success", message))
            lines.put(protocol.chunk("end", "success", "done"))
            job.outcome = f"launched {function}"
        except _Cancelled:
            if job.reason == SHUTTING_DOWN:
                lines.put(protocol.chunk(stage[0], "failed", SHUTTING_DOWN))
                job.outcome = f"failed: {SHUTTING_DOWN}"
            else:
                logger.info("launch of %s cancelled (%s); rolled back", parsed, job.reason)
        except DifyLambdaError as exc:
            text = _failure(exc)
            lines.put(protocol.chunk(stage[0], "failed", text))
            refused = isinstance(exc, LaunchRefusedError | PackageError)
            job.outcome = f"{'refused' if refused else 'failed'}: {text}"
        except Exception:
            logger.exception("launch of %s failed unexpectedly", parsed)
            text = f"internal error during {stage[0]}; see the connector log"
            lines.put(protocol.chunk(stage[0], "failed", text))
            job.outcome = f"failed: {text}"
        finally:
            lines.put(None)

    def _run(
        self,
        parsed: PluginIdentity,
        data: bytes,
        verified: bool,
        say: Callable[[Stage, str], None],
    ) -> tuple[str, str]:
        """Validate, build and deploy; return the function name and the run-success message."""
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
                return existing.function_name, protocol.run_success_message(
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
        # The deploy is complete: this launch finishes even if a shutdown began meanwhile.
        message = protocol.run_success_message(result.endpoint, result.function_name, result.function_arn)
        return result.function_name, message

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
