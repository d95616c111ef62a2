"""Which requirements a build installs, and the cache key they map to (pure).

Sources, in order (the first present wins): the plugin's ``requirements.txt``; else its ``uv.lock``
(the locked non-dev closure, read by :mod:`dify_lambda.packaging.requirements`); else
``pyproject.toml`` ``[project].dependencies``. The runtime's own requirements (derived from what
``dify_lambda/handlers`` imports) are appended.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from dify_lambda.errors import DependencyResolutionError
from dify_lambda.packaging import requirements as plugin_requirements

__all__ = [
    "CACHE_SCHEMA",
    "RequirementSet",
    "cache_key",
    "combined",
    "normalize_lines",
    "select_requirements",
]

#: Bump when the layout or the processing of cached dependency trees changes.
CACHE_SCHEMA = "deps-v3"


@dataclass(frozen=True, slots=True)
class RequirementSet:
    """Requirement lines (canonical PEP 508) and the file they came from."""

    source: str
    lines: tuple[str, ...]


def normalize_lines(text: str | bytes, source: str = "requirements.txt") -> tuple[str, ...]:
    """Every requirement of ``text`` in canonical form; anything but a PEP 508 requirement is refused."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return plugin_requirements.parse_requirements_text(data, source)


def select_requirements(read: Callable[[str], bytes | None]) -> RequirementSet:
    """Pick the plugin's requirement source; ``read(name)`` returns a root file's bytes or None."""
    req = read("requirements.txt")
    if req is not None:
        return RequirementSet("requirements.txt", normalize_lines(req, "requirements.txt"))
    pyproject = read("pyproject.toml")
    lock = read("uv.lock")
    if lock is not None:
        text = plugin_requirements.requirements_from_uv_lock(
            plugin_requirements.decode_text(lock, "uv.lock"), plugin_requirements.project_name(pyproject)
        )
        return RequirementSet("uv.lock", normalize_lines(text, "uv.lock (derived)"))
    if pyproject is not None:
        lines = plugin_requirements.pyproject_dependencies(
            plugin_requirements.decode_text(pyproject, "pyproject.toml")
        )
        return RequirementSet("pyproject.toml", lines)
    raise DependencyResolutionError(
        "the plugin has no requirements.txt, uv.lock or pyproject.toml: "
        "nothing says which dify_plugin to install"
    )


def combined(plugin: Iterable[str], runtime: Iterable[str]) -> tuple[str, ...]:
    """Plugin lines first, then runtime lines (canonical form) not already present."""
    lines: list[str] = list(plugin)
    for raw in runtime:
        line = plugin_requirements.parse_requirement(raw, "runtime requirement")
        if line is not None and line not in lines:
            lines.append(line)
    return tuple(lines)


def cache_key(lines: Iterable[str], python: str, arch: str, extra: Mapping[str, str] | None = None) -> str:
    """Stable key of (normalized requirements, Python, architecture); line order does not matter."""
    payload = {
        "schema": CACHE_SCHEMA,
        "requirements": sorted({" ".join(line.split()) for line in lines}),
        "python": python,
        "arch": arch,
        "extra": dict(sorted((extra or {}).items())),
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:32]
