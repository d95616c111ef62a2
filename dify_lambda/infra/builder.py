"""The seam between infra and the packaging builder.

Infra code depends on :class:`Builder` (a callable), never on the builder's internals: the
connector and the ``deploy`` command get :func:`packaging_builder` by default, tests inject a fast
fake that writes a small zip. A finished build directory is read back by :func:`load_build_output`
from its ``build-report.json`` alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dify_lambda.infra.artifact import BuiltArtifact, Progress
from dify_lambda.infra.errors import BuildOutputError
from dify_lambda.packaging.build.report import REPORT_FILE, REPORT_SCHEMA
from dify_lambda.packaging.spec import FunctionSpec, UrlAuth

__all__ = ["BuildRequest", "Builder", "artifact_from_report", "load_build_output", "packaging_builder"]


@dataclass(frozen=True, slots=True)
class BuildRequest:
    """One build: the validated package (a ``PluginPackage``), where to write, and the URL auth.

    Secrets never go through the builder: the deployer puts them in the function environment.
    """

    package: Any
    out_dir: Path
    url_auth: UrlAuth = "AWS_IAM"


class Builder(Protocol):
    def __call__(self, request: BuildRequest, progress: Progress) -> BuiltArtifact: ...


class _DeployedPart(BaseModel):
    """The part of ``build-report.json`` a deploy reads (the rest is for people and ``serve``)."""

    model_config = ConfigDict(frozen=True)

    plugin_id: str = Field(min_length=1)
    version: str = Field(min_length=1)
    checksum: str = Field(min_length=1)
    providers: tuple[str, ...] = ()
    artifact: str = Field(min_length=1)
    function: FunctionSpec


def load_build_output(out_dir: Path) -> BuiltArtifact:
    """A :class:`BuiltArtifact` from a ``dify-lambda build`` output directory's report and artifact."""
    path = out_dir / REPORT_FILE
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BuildOutputError(f"{path}: cannot read the build report ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BuildOutputError(f"{path}: the build report is not JSON") from None
    artifact = artifact_from_report(report, out_dir, str(path))
    if not artifact.path.is_file():
        raise BuildOutputError(f"{artifact.path}: the artifact named by the build report does not exist")
    return artifact


def artifact_from_report(report: object, out_dir: Path, source: str) -> BuiltArtifact:
    """The artifact a parsed report describes (``source`` names it in errors).

    A report of another schema (an older dify-lambda wrote it) is refused: rebuilding is the fix.
    """
    if not isinstance(report, dict) or report.get("schema") != REPORT_SCHEMA:
        raise BuildOutputError(
            f"{source}: not a report of this dify-lambda's build (report schema {REPORT_SCHEMA}): "
            "rebuild with `dify-lambda build`, or deploy the .difypkg itself"
        )
    try:
        part = _DeployedPart.model_validate(report)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BuildOutputError(f"{source}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return BuiltArtifact(
        out_dir / part.artifact, part.plugin_id, part.version, part.checksum, part.function, part.providers
    )


def packaging_builder(
    *,
    arch: str | None = None,
    python: str | None = None,
    memory_mb: int | None = None,
    cache_dir: Path | None = None,
    smoke: bool = True,
) -> Builder:
    """A :class:`Builder` running ``dify_lambda.packaging.build.build`` (imported when first used)."""

    def run(request: BuildRequest, progress: Progress) -> BuiltArtifact:
        from dify_lambda.packaging import build as packaging_build

        options = packaging_build.BuildOptions(
            arch=arch,
            python=python,
            memory_mb=memory_mb,
            url_auth=request.url_auth,
            cache_dir=cache_dir,
            smoke=smoke,
        )
        result = packaging_build.build(request.package, request.out_dir, options, progress=progress)
        r = result.report
        return BuiltArtifact(result.artifact, r.plugin_id, r.version, r.checksum, r.function, r.providers)

    return run
