"""What the deployer needs from a build: the zip, the plugin identity and the function settings.

The builder (``dify_lambda.packaging.build``) produces a SAM template next to the artifact; the
deployer creates the same function through the API, so the settings are read from that template
(:func:`settings_from_template`) rather than restated here.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dify_lambda import wire

__all__ = [
    "DEFAULT_ENVIRONMENT",
    "BuiltArtifact",
    "FunctionSettings",
    "Progress",
    "code_sha256",
    "no_progress",
    "settings_from_template",
]

#: A progress callback: receives one short human-readable line per step.
Progress = Callable[[str], None]

HANDLER = wire.HANDLER
#: The runtime contract of docs/architecture.md; used when a template does not say otherwise.
DEFAULT_ENVIRONMENT: Mapping[str, str] = {
    "AWS_LAMBDA_EXEC_WRAPPER": f"{wire.LAMBDA_TASK_ROOT}/{wire.EXEC_WRAPPER}",
    wire.ENV_PLUGIN_ROOT: f"{wire.LAMBDA_TASK_ROOT}/{wire.PLUGIN_DIR}",
    "INSTALL_METHOD": "serverless",
}
_FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")


def no_progress(_line: str) -> None:
    """A progress callback that ignores everything."""


@dataclass(frozen=True, slots=True)
class FunctionSettings:
    """Runtime settings of the function, as the builder's template declares them."""

    runtime: str = "python3.12"
    architecture: str = "arm64"
    memory_mb: int = 1024
    timeout_s: int = 900
    handler: str = HANDLER
    environment: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ENVIRONMENT))


def code_sha256(path: Path) -> str:
    """Base64 SHA-256 of a file: the form Lambda reports as ``CodeSha256``."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


@dataclass(frozen=True, slots=True)
class BuiltArtifact:
    """A Lambda zip plus the identity of the plugin inside it."""

    path: Path
    plugin_id: str
    version: str
    checksum: str
    providers: tuple[str, ...] = ()
    settings: FunctionSettings = field(default_factory=FunctionSettings)

    @property
    def identity(self) -> wire.PluginIdentity:
        author, _, name = self.plugin_id.partition("/")
        return wire.PluginIdentity(author, name, self.version, self.checksum)

    @property
    def unique_identifier(self) -> str:
        return self.identity.unique_identifier

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def code_sha256(self) -> str:
        return code_sha256(self.path)


def _function_properties(template: Mapping[str, Any]) -> dict[str, Any]:
    resources = template.get("Resources") or {}
    for resource in resources.values():
        if isinstance(resource, dict) and resource.get("Type") in _FUNCTION_TYPES:
            props = resource.get("Properties") or {}
            return dict(props) if isinstance(props, dict) else {}
    return {}


def settings_from_template(template: Mapping[str, Any]) -> FunctionSettings:
    """Read Runtime, Architectures, MemorySize, Timeout, Handler and literal environment values.

    ``Globals.Function`` is applied first, then the first function resource. Values that are
    intrinsic functions (``Ref``, ``Sub``...) are skipped: the deployer sets those itself
    (``DIFY_LAMBDA_URL_AUTH`` for example).
    """
    merged: dict[str, Any] = {}
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    if isinstance(globals_fn, dict):
        merged.update(globals_fn)
    merged.update(_function_properties(template))
    env: dict[str, str] = dict(DEFAULT_ENVIRONMENT)
    for source in (globals_fn, merged):
        variables = ((source.get("Environment") or {}).get("Variables") or {}) if source else {}
        env.update({k: str(v) for k, v in variables.items() if isinstance(v, str | int | float | bool)})
    defaults = FunctionSettings()
    archs = merged.get("Architectures")
    return FunctionSettings(
        runtime=_literal(merged.get("Runtime"), defaults.runtime),
        architecture=_literal(archs[0] if isinstance(archs, list) and archs else None, defaults.architecture),
        memory_mb=_int(merged.get("MemorySize"), defaults.memory_mb),
        timeout_s=_int(merged.get("Timeout"), defaults.timeout_s),
        handler=_literal(merged.get("Handler"), defaults.handler),
        environment=env,
    )


def _literal(value: Any, default: str) -> str:
    return value if isinstance(value, str) and value else default


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
