"""Plugin requirements: the PEP 508 gate every line passes, and ``requirements.txt`` generation.

Requirements are data, never instructions: what is accepted and refused is listed in docs/security.md
("Build-time trust model"). What the resolver reads is the canonical form the parser prints.

``requirements.txt`` for a plugin that ships only ``pyproject.toml`` / ``uv.lock`` comes from the first
that applies: ``uv export`` when ``uv`` is available (as the official packager does); our own reading
of ``uv.lock`` (the project's non-dev dependency closure, pinned, markers combined along the path);
``[project].dependencies`` as written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from dify_lambda.packaging.errors import PackageError, RequirementError

__all__ = [
    "MAX_LINE_CHARS",
    "MAX_REQUIREMENTS",
    "MAX_REQUIREMENTS_BYTES",
    "REQUIREMENT_SOURCES",
    "UV_EXPORT_ARGS",
    "GeneratedRequirements",
    "UvExporter",
    "decode_text",
    "find_uv",
    "generate_requirements",
    "parse_requirement",
    "parse_requirements_text",
    "project_name",
    "pyproject_dependencies",
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
#: The files :func:`generate_requirements` reads from a plugin's packaged set.
REQUIREMENT_SOURCES = ("requirements.txt", "pyproject.toml", "uv.lock")
#: Caps on one requirements source: far above any real plugin (official ones list under 100 lines).
MAX_REQUIREMENTS_BYTES = 256 * 1024
MAX_REQUIREMENTS = 1000
MAX_LINE_CHARS = 4096
#: pip's own comment rule: ``#`` at the start of a line or after whitespace (fixed width: linear time).
_COMMENT_RE = re.compile(r"(?:^|\s)#")
#: What pip and uv would read as an option or a comment inside the printed requirement.
_UNSAFE_IN_OUTPUT_RE = re.compile(r"(^|\s)-|#|\$")
_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,198}[A-Za-z0-9])?$")
_OPTIONS_HINT = (
    "indexes, links and constraints come from the build command "
    "(--index-url, --extra-index-url, --find-links)"
)


def _refuse(where: str, what: str) -> RequirementError:
    return RequirementError(f"{where}: {what}")


def parse_requirement(raw: str, where: str) -> str | None:
    """The canonical form of one requirements line, None for a blank or comment line.

    ``where`` names the line for messages (``requirements.txt:3``); the line's content never
    appears in a message, only the package name once it has parsed as a valid name.
    """
    if len(raw) > MAX_LINE_CHARS:
        raise _refuse(where, f"line longer than {MAX_LINE_CHARS} characters")
    comment = _COMMENT_RE.search(raw)
    line = (raw[: comment.start()] if comment else raw).strip()
    if not line:
        return None
    if line.endswith("\\"):
        raise _refuse(where, "line continuations are not accepted: write each requirement on one line")
    if line.startswith("-"):
        raise _refuse(where, f"pip options are not accepted in requirements: {_OPTIONS_HINT}")
    if any(ord(c) < 32 or ord(c) == 127 for c in line):
        raise _refuse(where, "control character in a requirement")
    if "$" in line:
        raise _refuse(where, "environment variable references are not accepted in requirements")
    try:
        req = Requirement(line)
    except (InvalidRequirement, RecursionError):  # deeply nested markers: refused, not a traceback
        if re.search(r"\s--?[A-Za-z]", line):
            what = "per-requirement options (such as --hash) are not accepted"
        elif line.startswith((".", "/", "~")) or "://" in line or "+" in line.split(";")[0]:
            what = "local paths, URLs and VCS references are not accepted: name a package and a version"
        else:
            what = "not a PEP 508 requirement (name[extras] specifier ; marker)"
        raise _refuse(where, what) from None
    if req.url is not None:
        raise _refuse(
            where,
            f"{req.name}: direct URL, VCS and path references are refused: name a version and let the "
            "build's package index provide it",
        )
    text = str(req)
    if _UNSAFE_IN_OUTPUT_RE.search(text):
        raise _refuse(where, f"{req.name}: a marker value holds characters pip would read as an option")
    return text


def parse_requirements_text(data: bytes, source: str) -> tuple[str, ...]:
    """Every requirement of a ``requirements.txt``-format file, canonical, in order."""
    if len(data) > MAX_REQUIREMENTS_BYTES:
        raise RequirementError(f"{source}: larger than {MAX_REQUIREMENTS_BYTES // 1024} KiB")
    text = decode_text(data, source)
    out: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = parse_requirement(raw, f"{source}:{number}")
        if line is not None:
            out.append(line)
        if len(out) > MAX_REQUIREMENTS:
            raise RequirementError(f"{source}: more than {MAX_REQUIREMENTS} requirements")
    return tuple(out)


def _safe_name(name: object) -> str:
    return name if isinstance(name, str) and _NAME_RE.match(name) else "(invalid name)"


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
        # Same gate as a hand-written requirements.txt: what the packager writes is what builds.
        parse_requirements_text(proc.stdout, "uv export")
        return proc.stdout

    return run


def _is_project(pkg: Mapping[str, Any]) -> bool:
    source = pkg.get("source", {})
    return bool(source.get("editable") == "." or source.get("virtual") == ".")


def _requirement_line(pkg: Mapping[str, Any]) -> str | None:
    name, version, source = pkg["name"], pkg.get("version"), pkg.get("source", {})
    for kind in ("git", "url", "path", "directory", "editable"):
        if kind in source:
            # Only registry packages are installed: the index is the operator's choice, not the lock's.
            raise RequirementError(
                f"uv.lock: package {_safe_name(name)} comes from a {kind} source; only packages "
                "from a package index are accepted"
            )
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
    try:
        return _uv_lock_closure(lock, project)
    except (KeyError, TypeError, AttributeError, ValueError):
        raise PackageError("uv.lock: unexpected structure (not a uv lock file)") from None


#: Bound on the closure walk over a hostile lock (real ones need a few hundred steps).
_MAX_WALK = 200_000


def _uv_lock_closure(lock: Mapping[str, Any], project: str | None) -> str:
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
    steps = 0
    while work:
        steps += 1
        if steps > _MAX_WALK:
            raise PackageError("uv.lock: dependency graph too large to walk")
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


def pyproject_dependencies(text: str) -> tuple[str, ...]:
    """``[project].dependencies``, each entry through :func:`parse_requirement`."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PackageError(f"pyproject.toml: invalid TOML ({exc})") from None
    project = doc.get("project", {})
    deps = project.get("dependencies", []) if isinstance(project, dict) else None
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise PackageError("pyproject.toml: [project].dependencies must be a list of strings")
    if len(deps) > MAX_REQUIREMENTS:
        raise RequirementError(f"pyproject.toml: more than {MAX_REQUIREMENTS} dependencies")
    out: list[str] = []
    for number, dep in enumerate(deps, 1):
        if "\n" in dep or "\r" in dep:
            raise RequirementError(f"pyproject.toml [project].dependencies entry {number}: line break")
        line = parse_requirement(dep, f"pyproject.toml [project].dependencies entry {number}")
        if line is not None:
            out.append(line)
    return tuple(out)


def requirements_from_pyproject(text: str) -> str:
    """``[project].dependencies`` one per line (canonical PEP 508 form)."""
    return "".join(f"{d}\n" for d in pyproject_dependencies(text))


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 text of a requirements source, or one line naming the source and line number."""
    if len(data) > MAX_REQUIREMENTS_BYTES * 16:
        raise RequirementError(f"{source}: larger than {MAX_REQUIREMENTS_BYTES * 16 // 1024} KiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        number = data[: exc.start].count(b"\n") + 1
        raise RequirementError(f"{source}:{number}: not UTF-8") from None


def project_name(pyproject: bytes | None) -> str | None:
    """``[project].name`` of a pyproject.toml, None when absent or unreadable."""
    if pyproject is None:
        return None
    try:
        project = tomllib.loads(pyproject.decode("utf-8")).get("project", {})
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    name = project.get("name") if isinstance(project, dict) else None
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
        text = requirements_from_uv_lock(
            decode_text(files["uv.lock"], "uv.lock"), project_name(files.get("pyproject.toml"))
        )
        parse_requirements_text(text.encode(), "uv.lock")
        return GeneratedRequirements(text.encode(), "uv.lock")
    text = requirements_from_pyproject(decode_text(files["pyproject.toml"], "pyproject.toml"))
    return GeneratedRequirements(text.encode(), "pyproject.toml [project].dependencies")
