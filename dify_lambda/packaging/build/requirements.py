"""Which requirements a build installs, and the cache key they map to (pure).

Sources, in order (the first present wins): the plugin's ``requirements.txt``; else its ``uv.lock``
(the locked non-dev closure, read by :mod:`dify_lambda.packaging.requirements`); else
``pyproject.toml`` ``[project].dependencies``. The runtime's own requirements (derived from what
``dify_lambda/handlers`` imports) are appended.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
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
CACHE_SCHEMA = "deps-v2"
#: pip options that would change where packages come from or bypass the platform flags.
_FORBIDDEN_OPTIONS = (
    "-e",
    "--editable",
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--no-binary",
)


@dataclass(frozen=True, slots=True)
class RequirementSet:
    """Requirement lines (normalized) and the file they came from."""

    source: str
    lines: tuple[str, ...]


def normalize_lines(text: str, source: str = "requirements.txt") -> tuple[str, ...]:
    """Strip comments and blanks, collapse whitespace; reject options that escape the build's control."""
    out: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        option = line.split()[0].split("=", 1)[0]
        if option in _FORBIDDEN_OPTIONS:
            raise DependencyResolutionError(
                f"{source}:{number}: option {option} is not supported by the Lambda build; list plain "
                "requirements (private packages: --find-links on the build command)"
            )
        out.append(" ".join(line.split()))
    return tuple(out)


def _project_name(pyproject: bytes | None) -> str | None:
    if pyproject is None:
        return None
    try:
        name = tomllib.loads(pyproject.decode("utf-8")).get("project", {}).get("name")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return name if isinstance(name, str) else None


def select_requirements(read: Callable[[str], bytes | None]) -> RequirementSet:
    """Pick the plugin's requirement source; ``read(name)`` returns a root file's bytes or None."""
    req = read("requirements.txt")
    if req is not None:
        return RequirementSet("requirements.txt", normalize_lines(req.decode("utf-8")))
    pyproject = read("pyproject.toml")
    lock = read("uv.lock")
    if lock is not None:
        text = plugin_requirements.requirements_from_uv_lock(lock.decode("utf-8"), _project_name(pyproject))
        return RequirementSet("uv.lock", normalize_lines(text, "uv.lock"))
    if pyproject is not None:
        text = plugin_requirements.requirements_from_pyproject(pyproject.decode("utf-8"))
        return RequirementSet("pyproject.toml", normalize_lines(text, "pyproject.toml"))
    raise DependencyResolutionError(
        "the plugin has no requirements.txt, uv.lock or pyproject.toml: "
        "nothing says which dify_plugin to install"
    )


def combined(plugin: Iterable[str], runtime: Iterable[str]) -> tuple[str, ...]:
    """Plugin lines first, then runtime lines not already present verbatim."""
    lines: list[str] = list(plugin)
    lines.extend(line for line in runtime if line not in lines)
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
