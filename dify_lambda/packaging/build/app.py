"""The SAM application files of a build: ``template.yaml`` and ``samconfig.toml``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dify_lambda.packaging.build.options import BuildOptions, Target
from dify_lambda.packaging.layout import SAMCONFIG_FILE, TEMPLATE_FILE
from dify_lambda.packaging.sam import (
    FunctionSpec,
    deep_merge,
    load_template,
    render_sam,
    render_samconfig,
    stack_name,
    to_yaml,
)

__all__ = [
    "ApplicationFiles",
    "function_environment",
    "function_spec",
    "render_application",
    "write_application",
]


@dataclass(frozen=True, slots=True)
class ApplicationFiles:
    template: dict[str, Any]
    template_yaml: str
    samconfig_toml: str


def function_spec(
    package: Any, target: Target, options: BuildOptions, code_uri: str, tiktoken_cache_dir: str | None = None
) -> FunctionSpec:
    """The :class:`FunctionSpec` of ``package`` built for ``target``."""
    return FunctionSpec(
        code_uri=code_uri,
        runtime=target.runtime,
        architecture=target.arch,
        memory_mb=target.memory_mb,
        timeout=target.timeout,
        plugin_id=package.plugin_id,
        unique_identifier=package.unique_identifier,
        checksum=package.checksum,
        providers=tuple(p.name for p in package.providers),
        url_auth_default=target.url_auth,
        snapstart=options.snapstart,
        function_name=options.function_name,
        environment=dict(options.extra_environment),
        tiktoken_cache_dir=tiktoken_cache_dir,
    )


def render_application(
    package: Any,
    target: Target,
    options: BuildOptions,
    code_uri: str,
    *,
    tiktoken_cache_dir: str | None = None,
) -> ApplicationFiles:
    """Render, apply the overlay (``--template-overlay``, merged last) and serialize."""
    template = render_sam(function_spec(package, target, options, code_uri, tiktoken_cache_dir))
    if options.template_overlay is not None:
        overlay_path = Path(options.template_overlay)
        try:
            text = overlay_path.read_text("utf-8")
        except OSError as exc:
            from dify_lambda.errors import BuildError

            raise BuildError(f"--template-overlay {overlay_path}: cannot read ({exc.strerror})") from None
        template = deep_merge(template, load_template(text, f"--template-overlay {overlay_path}"))
    return ApplicationFiles(template, to_yaml(template), render_samconfig(stack_name(package.plugin_id)))


def function_environment(template: dict[str, Any]) -> dict[str, str]:
    """The literal (string) environment variables of the template's function, overlay included."""
    for resource in template.get("Resources", {}).values():
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Function":
            props = resource.get("Properties") or {}
            variables = (props.get("Environment") or {}).get("Variables") or {}
            return {str(k): v for k, v in variables.items() if isinstance(v, str)}
    return {}


def write_application(files: ApplicationFiles, out_dir: Path) -> tuple[Path, Path]:
    template = out_dir / TEMPLATE_FILE
    samconfig = out_dir / SAMCONFIG_FILE
    template.write_text(files.template_yaml, "utf-8")
    samconfig.write_text(files.samconfig_toml, "utf-8")
    return template, samconfig
