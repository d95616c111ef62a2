"""The function a build produces (:func:`function_spec`) and its SAM application files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dify_lambda.packaging.build.options import BuildOptions, Target
from dify_lambda.packaging.layout import SAMCONFIG_FILE, TEMPLATE_FILE
from dify_lambda.packaging.sam import (
    deep_merge,
    load_template,
    render_sam,
    render_samconfig,
    stack_name,
    to_yaml,
)
from dify_lambda.packaging.spec import RUNTIME_ENVIRONMENT, FunctionSpec

__all__ = ["ApplicationFiles", "function_spec", "render_application", "write_application"]


@dataclass(frozen=True, slots=True)
class ApplicationFiles:
    template: dict[str, Any]
    template_yaml: str
    samconfig_toml: str


def function_spec(
    target: Target, options: BuildOptions, tiktoken_cache_dir: str | None = None
) -> FunctionSpec:
    """The function built for ``target``: the runtime contract, tiktoken's data, then ``--env``."""
    tiktoken = {"TIKTOKEN_CACHE_DIR": tiktoken_cache_dir} if tiktoken_cache_dir else {}
    return FunctionSpec(
        runtime=target.runtime,
        architecture=target.arch,
        memory_mb=target.memory_mb,
        timeout=target.timeout,
        url_auth=target.url_auth,
        environment={**RUNTIME_ENVIRONMENT, **tiktoken, **dict(sorted(options.extra_environment.items()))},
        snapstart=options.snapstart,
        function_name=options.function_name,
    )


def render_application(
    package: Any, spec: FunctionSpec, options: BuildOptions, code_uri: str
) -> ApplicationFiles:
    """Render, apply the overlay (``--template-overlay``, merged last) and serialize."""
    template = render_sam(spec, package.identity, tuple(p.name for p in package.providers), code_uri)
    if options.template_overlay is not None:
        overlay_path = Path(options.template_overlay)
        try:
            text = overlay_path.read_text("utf-8")
        except OSError as exc:
            from dify_lambda.errors import BuildError

            raise BuildError(f"--template-overlay {overlay_path}: cannot read ({exc.strerror})") from None
        template = deep_merge(template, load_template(text, f"--template-overlay {overlay_path}"))
    return ApplicationFiles(template, to_yaml(template), render_samconfig(stack_name(package.plugin_id)))


def write_application(files: ApplicationFiles, out_dir: Path) -> tuple[Path, Path]:
    template = out_dir / TEMPLATE_FILE
    samconfig = out_dir / SAMCONFIG_FILE
    template.write_text(files.template_yaml, "utf-8")
    samconfig.write_text(files.samconfig_toml, "utf-8")
    return template, samconfig
