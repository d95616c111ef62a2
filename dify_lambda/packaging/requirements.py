"""Generate ``requirements.txt`` for a plugin that only ships ``pyproject.toml`` / ``uv.lock``.

Order of preference (the first that applies is used and reported):

1. ``uv export --frozen ...`` when ``uv`` is available (``$UV_PATH`` or ``PATH``), as the official
   packager does;
2. our own reading of ``uv.lock``: the packages reachable from the project through its non-dev
   dependencies (extras followed per edge), pinned, with environment markers combined along the path;
3. ``[project].dependencies`` of ``pyproject.toml`` as written (unpinned).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dify_lambda.packaging.errors import PackageError

__all__ = [
    "UV_EXPORT_ARGS",
    "GeneratedRequirements",
    "UvExporter",
    "find_uv",
    "generate_requirements",
    "requirements_from_pyproject",
    "requirements_from_uv_lock",
    "uv_exporter",
]

UV_EXPORT_ARGS = (
    "export",
    "--frozen",
    "--format",
    "requirements.txt",
    "--no-group",
    "dev",
    "--no-emit-project",
    "--no-hashes",
    "--no-header",
    "--no-annotate",
)
#: Runs ``uv export`` in a directory and returns its stdout.
UvExporter = Callable[[Path], bytes]
_MAX_CONDITIONS = 8


@dataclass(frozen=True, slots=True)
class GeneratedRequirements:
    content: bytes
    #: ``"uv export"``, ``"uv.lock"`` or ``"pyproject.toml [project].dependencies"``.
    source: str


def find_uv() -> str | None:
    return os.environ.get("UV_PATH") or shutil.which("uv")


def uv_exporter(uv: str) -> UvExporter:
    """An exporter running the given ``uv`` binary."""

    def run(root: Path) -> bytes:
        proc = subprocess.run([uv, *UV_EXPORT_ARGS], cwd=root, capture_output=True, timeout=300, check=False)
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise PackageError(
                f"uv export failed in {root}: {tail[-1] if tail else f'exit {proc.returncode}'}"
            )
        return proc.stdout

    return run


def _is_project(pkg: Mapping[str, Any]) -> bool:
    source = pkg.get("source", {})
    return bool(source.get("editable") == "." or source.get("virtual") == ".")


def _requirement_line(pkg: Mapping[str, Any]) -> str | None:
    name, version, source = pkg["name"], pkg.get("version"), pkg.get("source", {})
    if "git" in source:
        return f"{name} @ git+{source['git']}"
    if "url" in source:
        return f"{name} @ {source['url']}"
    for local in ("path", "directory", "editable"):
        if local in source:
            return f"./{source[local]}".replace("/./", "/")
    if "virtual" in source:
        return None
    return f"{name}=={version}" if version else name


def _marker(conditions: set[frozenset[str]]) -> str:
    if frozenset() in conditions:
        return ""
    clauses = []
    for conj in sorted(conditions, key=sorted):
        parts = sorted(conj)
        clauses.append(parts[0] if len(parts) == 1 else " and ".join(f"({p})" for p in parts))
    if len(clauses) == 1:
        return clauses[0]
    return " or ".join(f"({c})" for c in clauses)


def requirements_from_uv_lock(text: str, project: str | None = None) -> str:
    """Pinned requirements of the project's non-dev dependency closure in a ``uv.lock``."""
    try:
        lock = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PackageError(f"uv.lock: invalid TOML ({exc})") from None
    packages: list[dict[str, Any]] = lock.get("package", [])
    by_name: dict[str, list[dict[str, Any]]] = {}
    for pkg in packages:
        by_name.setdefault(pkg["name"], []).append(pkg)
    roots = [p for p in packages if _is_project(p)] or [p for p in packages if p["name"] == project]
    if not roots:
        raise PackageError("uv.lock: the project itself is not in the lock file")
    root_keys = {(p["name"], p.get("version")) for p in roots}

    def resolve(dep: Mapping[str, Any]) -> dict[str, Any] | None:
        candidates = by_name.get(dep["name"], [])
        if "version" in dep:
            candidates = [c for c in candidates if c.get("version") == dep["version"]] or candidates
        return candidates[0] if candidates else None

    reached: dict[tuple[str, str | None], set[frozenset[str]]] = {}
    seen: set[tuple[tuple[str, str | None], frozenset[str], frozenset[str]]] = set()
    work: list[tuple[dict[str, Any], frozenset[str], frozenset[str]]] = [
        (r, frozenset(), frozenset()) for r in roots
    ]
    while work:
        pkg, extras, conj = work.pop()
        key = (pkg["name"], pkg.get("version"))
        if (key, extras, conj) in seen:
            continue
        seen.add((key, extras, conj))
        if key not in root_keys:
            conditions = reached.setdefault(key, set())
            if any(c <= conj for c in conditions):
                continue  # already reached under a weaker condition
            conditions.add(conj)
            if len(conditions) > _MAX_CONDITIONS:
                conditions.clear()
                conditions.add(frozenset())
        edges = list(pkg.get("dependencies", []))
        for extra in sorted(extras):
            edges.extend(pkg.get("optional-dependencies", {}).get(extra, []))
        for dep in edges:
            target = resolve(dep)
            if target is None:
                continue
            marker = dep.get("marker")
            work.append((target, frozenset(dep.get("extra", [])), conj | {marker} if marker else conj))
    lines = []
    for key in sorted(reached, key=lambda k: (k[0].lower(), k[1] or "")):
        pkg = next(p for p in by_name[key[0]] if p.get("version") == key[1])
        line = _requirement_line(pkg)
        if line is None:
            continue
        marker = _marker(reached[key])
        lines.append(f"{line} ; {marker}" if marker else line)
    return "".join(f"{line}\n" for line in lines)


def requirements_from_pyproject(text: str) -> str:
    """``[project].dependencies`` one per line, as written."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PackageError(f"pyproject.toml: invalid TOML ({exc})") from None
    deps = doc.get("project", {}).get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise PackageError("pyproject.toml: [project].dependencies must be a list of strings")
    return "".join(f"{d}\n" for d in deps)


def _project_name(files: Mapping[str, bytes]) -> str | None:
    try:
        name = tomllib.loads(files["pyproject.toml"].decode()).get("project", {}).get("name")
    except (KeyError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return name if isinstance(name, str) else None


def generate_requirements(
    root: Path, files: Mapping[str, bytes], *, exporter: UvExporter | None
) -> GeneratedRequirements | None:
    """``requirements.txt`` contents for ``files`` (the packaged set), or None when not needed."""
    if "requirements.txt" in files or "pyproject.toml" not in files:
        return None
    if "uv.lock" in files:
        if exporter is not None:
            return GeneratedRequirements(exporter(root), "uv export")
        text = requirements_from_uv_lock(files["uv.lock"].decode("utf-8"), _project_name(files))
        return GeneratedRequirements(text.encode(), "uv.lock")
    text = requirements_from_pyproject(files["pyproject.toml"].decode("utf-8"))
    return GeneratedRequirements(text.encode(), "pyproject.toml [project].dependencies")
