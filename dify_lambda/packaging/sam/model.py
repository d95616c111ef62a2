"""The SAM application of one plugin function, as a frozen value (no YAML, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dify_lambda import wire

__all__ = ["DEFAULT_LOGICAL_ID", "HANDLER", "FunctionSpec"]

HANDLER = wire.HANDLER
DEFAULT_LOGICAL_ID = "PluginFunction"


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """Everything the template says about the function.

    ``code_uri`` is relative to the template's directory. ``environment`` holds extra literal
    variables, applied after the contract's own ones.
    """

    code_uri: str
    runtime: str
    architecture: str
    memory_mb: int
    timeout: int
    plugin_id: str
    unique_identifier: str
    checksum: str
    providers: tuple[str, ...]
    url_auth_default: str = "AWS_IAM"
    snapstart: bool = False
    function_name: str | None = None
    logical_id: str = DEFAULT_LOGICAL_ID
    handler: str = HANDLER
    tiktoken_cache_dir: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
