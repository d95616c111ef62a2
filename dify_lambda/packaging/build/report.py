"""``build-report.json``: what was built, from what, how big, and how long it took.

``function`` records the resolved :class:`~dify_lambda.packaging.spec.FunctionSpec`: ``dify-lambda
deploy`` creates the function from it. :data:`REPORT_SCHEMA` changes whenever a reader of the
report would misread an older one; readers refuse any other value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from dify_lambda.packaging.layout import REPORT_FILE
from dify_lambda.packaging.spec import FunctionSpec

__all__ = ["REPORT_FILE", "REPORT_SCHEMA", "BuildReport", "CompileStatus", "Dependency", "Sizes"]

#: 2: the function settings moved into ``function`` (a FunctionSpec); ``code_uri`` is ``artifact``.
REPORT_SCHEMA = 2


@dataclass(frozen=True, slots=True)
class Dependency:
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class Sizes:
    """Bytes. ``unzipped`` is the sum of file sizes Lambda counts against its 250 MB limit."""

    unzipped: int
    zipped: int
    plugin: int
    dependencies: int
    runtime: int
    #: Top-level contributors, largest first (name, bytes).
    largest: tuple[tuple[str, int], ...] = ()
    #: Data files shipped beside the code (tiktoken's encoding files).
    data: int = 0


@dataclass(frozen=True, slots=True)
class CompileStatus:
    """``compiled``, ``partial`` or ``skipped`` for the dependency tree and for plugin + runtime."""

    dependencies: str
    plugin_and_runtime: str
    interpreter: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BuildReport:
    plugin_id: str
    unique_identifier: str
    version: str
    providers: tuple[str, ...]
    checksum: str
    python: str
    function: FunctionSpec
    artifact: str
    artifact_sha256: str
    sizes: Sizes
    requirements_source: str
    requirements: tuple[str, ...]
    dependencies: tuple[Dependency, ...]
    cache_hit: bool
    cache_key: str
    build_seconds: float
    compile: CompileStatus
    pruned_paths: int
    pruned_bytes: int
    notes: tuple[str, ...] = ()
    steps: tuple[tuple[str, float], ...] = field(default=())
    #: The dependency resolver used (``uv`` or ``pip``).
    resolver: str = "uv"
    #: ``name==version`` of every dependency built from an sdist on the build machine: only packages
    #: the operator named with ``--allow-sdist`` (their build backend ran there). Empty by default.
    built_from_source: tuple[str, ...] = ()
    #: Why ``memory_mb`` has its value.
    memory_reason: str = ""
    #: The resolved ``dify_plugin`` version (checked against the handler's range).
    sdk_version: str = ""
    #: ``{"status": "shipped"|"disabled"|"not needed", "encodings", "dir", "source", "bytes"}``.
    tiktoken: dict[str, Any] = field(default_factory=dict)
    #: The smoke init: ``{"status": "passed"|"skipped", "note", "seconds", "sdk_version", "providers"}``.
    smoke: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # Through JSON once so tuples come back as lists: the dict equals what the file holds.
        data: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        data["schema"] = REPORT_SCHEMA
        data["sizes"]["largest"] = [{"name": n, "bytes": b} for n, b in self.sizes.largest]
        data["steps"] = [{"step": n, "seconds": s} for n, s in self.steps]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
