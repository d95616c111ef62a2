"""The seam between infra and the packaging builder.

Infra code depends on :class:`Builder` (a callable), never on the builder's internals: the
connector and the ``deploy`` command get :func:`packaging_builder` by default, tests inject a fast
fake that writes a small zip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dify_lambda.infra.artifact import BuiltArtifact, Progress, settings_from_template
from dify_lambda.infra.errors import DeployError
from dify_lambda.packaging.build import REPORT_FILE, TEMPLATE_FILE

__all__ = [
    "BuildRequest",
    "Builder",
    "artifact_from_build",
    "load_build_output",
    "load_template_file",
    "packaging_builder",
]


@dataclass(frozen=True, slots=True)
class BuildRequest:
    """One build: the validated package (a ``PluginPackage``), where to write, and the URL auth.

    Secrets never go through the builder: the deployer puts them in the function environment.
    """

    package: Any
    out_dir: Path
    url_auth: str = "AWS_IAM"


class Builder(Protocol):
    def __call__(self, request: BuildRequest, progress: Progress) -> BuiltArtifact: ...


def _template_of(result: Any) -> Mapping[str, Any]:
    template = getattr(result, "template", None)
    if isinstance(template, Mapping):
        return template
    if isinstance(template, str | Path):
        return load_template_file(Path(template))
    return {}


def load_template_file(path: Path) -> Mapping[str, Any]:
    """Read the builder's ``template.yaml`` (short-form intrinsics allowed)."""
    from dify_lambda.packaging.sam import load_template

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeployError(f"{path}: cannot read the template ({exc.strerror or exc})") from None
    return load_template(text, str(path))


def load_build_output(out_dir: Path) -> BuiltArtifact:
    """A :class:`BuiltArtifact` from a ``dify-lambda build`` output directory.

    Reads ``build-report.json`` (identity), ``template.yaml`` (function settings) and the artifact.
    """
    report_path = out_dir / REPORT_FILE
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeployError(f"{report_path}: cannot read the build report ({exc.strerror or exc})") from None
    except json.JSONDecodeError:
        raise DeployError(f"{report_path}: the build report is not JSON") from None
    missing = [k for k in ("plugin_id", "version", "checksum", "artifact") if not report.get(k)]
    if missing:
        raise DeployError(f"{report_path}: the build report lacks {', '.join(missing)}")
    artifact = out_dir / str(report["artifact"])
    if not artifact.is_file():
        raise DeployError(f"{artifact}: the artifact named by the build report does not exist")
    return BuiltArtifact(
        path=artifact,
        plugin_id=str(report["plugin_id"]),
        version=str(report["version"]),
        checksum=str(report["checksum"]),
        providers=tuple(str(p) for p in report.get("providers") or ()),
        settings=settings_from_template(load_template_file(out_dir / TEMPLATE_FILE)),
    )


def artifact_from_build(result: Any, package: Any) -> BuiltArtifact:
    """Map the builder's result plus the package identity onto what the deployer needs."""
    providers = tuple(str(getattr(p, "name", p)) for p in getattr(package, "providers", ()))
    return BuiltArtifact(
        path=Path(result.artifact),
        plugin_id=package.plugin_id,
        version=str(package.manifest.version),
        checksum=package.checksum,
        providers=providers,
        settings=settings_from_template(_template_of(result)),
    )


def packaging_builder(
    *,
    arch: str | None = None,
    python: str | None = None,
    memory_mb: int | None = None,
    cache_dir: Path | None = None,
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
        )
        result = packaging_build.build(request.package, request.out_dir, options, progress=progress)
        return artifact_from_build(result, request.package)

    return run
