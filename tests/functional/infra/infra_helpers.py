"""Helpers for infra tests: moto config, small artifacts, a fake builder, a connector runner."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import zipfile
from pathlib import Path
from typing import Any

from dify_lambda.infra.artifact import BuiltArtifact, Progress
from dify_lambda.infra.aws import AwsClients
from dify_lambda.infra.builder import BuildRequest
from dify_lambda.infra.connector.server import ConnectorServer, make_server
from dify_lambda.infra.connector.service import ConnectorSettings, LaunchService
from dify_lambda.infra.deployer import Deployer
from dify_lambda.packaging.build.report import REPORT_FILE, REPORT_SCHEMA
from dify_lambda.packaging.spec import RUNTIME_ENVIRONMENT, FunctionSpec

REGION = "us-east-1"
MOTO_CONFIG: Any = {"lambda": {"use_docker": False}, "iam": {"load_aws_managed_policies": True}}
API_KEY = "test-connector-key-0123456789"

#: The function the builder's report records (what the deployer creates).
SPEC = FunctionSpec(
    runtime="python3.12",
    architecture="arm64",
    memory_mb=512,
    timeout=300,
    environment={**RUNTIME_ENVIRONMENT, "PLUGIN_LOG_LEVEL": "INFO"},
)


def write_build_output(directory: Path, artifact: BuiltArtifact) -> Path:
    """``directory`` as ``dify-lambda build`` leaves it for ``artifact``: the zip and the report's
    deploy part (written through the builder's own BuildReport would need a real build)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "artifact.zip").write_bytes(artifact.path.read_bytes())
    report = {
        "schema": REPORT_SCHEMA,
        "plugin_id": artifact.plugin_id,
        "version": artifact.version,
        "checksum": artifact.checksum,
        "providers": list(artifact.providers),
        "artifact": "artifact.zip",
        "function": json.loads(json.dumps(dataclasses.asdict(artifact.spec))),
    }
    (directory / REPORT_FILE).write_text(json.dumps(report))
    return directory


class SleepCounter:
    """An injected sleep that records instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def zip_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in sorted(files.items()):
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def make_artifact(
    directory: Path,
    *,
    plugin_id: str = "acme/tiny",
    version: str = "0.0.1",
    checksum: str = "ab" * 32,
    providers: tuple[str, ...] = ("tiny",),
    content: bytes = b"print('v1')\n",
    spec: FunctionSpec = SPEC,
) -> BuiltArtifact:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{checksum[:12]}-{len(content)}.zip"
    path.write_bytes(zip_bytes({"dify_lambda/__init__.py": b"", "plugin/main.py": content}))
    return BuiltArtifact(
        path=path,
        plugin_id=plugin_id,
        version=version,
        checksum=checksum,
        providers=providers,
        spec=spec,
    )


class FakeBuilder:
    """Stands in for the packaging builder: a small zip derived from the package, :data:`SPEC`."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.calls: list[str] = []
        self.fail_with = fail_with

    def __call__(self, request: BuildRequest, progress: Progress) -> BuiltArtifact:
        package = request.package
        self.calls.append(package.checksum)
        progress("resolving dependencies (fake)")
        if self.fail_with is not None:
            raise self.fail_with
        path = request.out_dir / "artifact.zip"
        path.write_bytes(
            zip_bytes(
                {"dify_lambda/__init__.py": b"", **{f"plugin/{k}": v for k, v in package.files().items()}}
            )
        )
        progress("zipped artifact (fake)")
        return BuiltArtifact(
            path=path,
            plugin_id=package.plugin_id,
            version=str(package.manifest.version),
            checksum=package.checksum,
            providers=tuple(p.name for p in package.providers),
            spec=SPEC,
        )


class RunningConnector:
    def __init__(self, server: ConnectorServer, service: LaunchService, builder: FakeBuilder) -> None:
        self.server = server
        self.service = service
        self.builder = builder
        self.url = server.url


def start_connector(
    aws: AwsClients,
    builder: Any,
    *,
    settings: ConnectorSettings | None = None,
    max_package_bytes: int = 8 * 1024 * 1024,
    work_root: Path | None = None,
    read_timeout_s: float = 30.0,
) -> tuple[ConnectorServer, LaunchService, threading.Thread]:
    service = LaunchService(Deployer(aws, sleep=SleepCounter()), builder, settings, work_root=work_root)
    server = make_server(
        "127.0.0.1",
        0,
        service,
        api_key=API_KEY,
        max_package_bytes=max_package_bytes,
        read_timeout_s=read_timeout_s,
    )
    thread = threading.Thread(target=server.serve_forever, name="connector", daemon=True)
    thread.start()
    return server, service, thread


class FailingLambda:
    """Delegates to the real (moto) client but fails one operation, like a throttled API would.

    Works for any client (IAM too); ``FailingClient`` is the same class under a neutral name.
    """

    def __init__(self, real: Any, fail_on: str) -> None:
        self._real = real
        self._fail_on = fail_on

    def __getattr__(self, name: str) -> Any:
        if name == self._fail_on:

            def fail(**_kwargs: Any) -> Any:
                raise RuntimeError(f"injected failure in {name}")

            return fail
        return getattr(self._real, name)


FailingClient = FailingLambda


def with_failure(
    aws: AwsClients, *, lambda_fails: str | None = None, iam_fails: str | None = None
) -> AwsClients:
    """``aws`` with one Lambda and/or IAM operation failing."""
    return AwsClients(
        region=aws.region,
        lambda_=FailingLambda(aws.lambda_, lambda_fails) if lambda_fails else aws.lambda_,
        iam=FailingLambda(aws.iam, iam_fails) if iam_fails else aws.iam,
        s3=aws.s3,
        ssm=aws.ssm,
        sts=aws.sts,
    )
