"""Conservative pruning of an installed dependency tree: drop what is never imported at runtime.

Rules (relative paths under the site-packages root, ``/`` separators):

1. never touch anything inside a ``*.dist-info`` directory (metadata is read at runtime);
2. drop the top-level ``bin/`` (console scripts whose shebang names the build machine's Python) and
   ``include/`` (C headers) directories that ``pip install --target`` creates;
3. drop every ``__pycache__`` directory and stray ``*.pyc`` (the compile step regenerates them);
3a. drop files the interpreter never loads: type stubs (``*.pyi``: read by type checkers only; a stub
   without its module is not importable) and compiled extensions' sources (``*.c``, ``*.cpp``, Cython's
   ``*.pyx``/``*.pxd``: read by compilers only). C headers (``*.h``) stay: cffi modules may read them
   at run time;
4. drop a directory named ``tests`` nested inside a package (depth >= 2, e.g. ``gevent/tests``), unless
   another file of that top-level package mentions it as a module (``<pkg>...tests`` or
   ``from .tests`` / ``from . import tests``) in code, comments aside: then something might import it
   and it stays. Files under ``tests``/``testing`` directories do not count as referrers (test
   runners such as ``gevent/testing`` are not imported by the library itself).

Singular ``test`` and ``testing`` directories are kept: some libraries import them at runtime.

After pruning, every ``*.dist-info/RECORD`` keeps only the rows of files still in the tree (and its own
row). pip lists the console scripts it wrote (``../../bin/NAME`` under ``--target``) with their hash, and
a script's shebang names the interpreter that ran pip, so those rows made the artifact depend on where
the build ran (two cache directories gave two SHA-256s).
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["PruneResult", "apply_prune", "filter_record", "prune_candidates", "references_tests_dir"]

_TOP_LEVEL_DROPS = frozenset({"bin", "include"})
#: Files no import reads (rule 3a): type stubs and the sources of compiled extensions.
_NEVER_LOADED_SUFFIXES = (".pyc", ".pyo", ".pyi", ".c", ".cpp", ".pyx", ".pxd")
_COMMENT_RE = re.compile(r"#[^\n]*")


@dataclass(frozen=True, slots=True)
class PruneResult:
    removed: tuple[str, ...]
    bytes_removed: int


def _is_dist_info(parts: tuple[str, ...]) -> bool:
    return any(p.endswith(".dist-info") for p in parts)


def prune_candidates(directories: Iterable[str], files: Iterable[str]) -> tuple[list[str], list[str]]:
    """Pure rule application: (directories to drop, files to drop), before the reference check.

    ``directories`` and ``files`` are relative POSIX paths. A directory inside a dropped directory
    is not listed again.
    """
    dirs: list[str] = []
    for rel in sorted(directories):
        parts = PurePosixPath(rel).parts
        if not parts or _is_dist_info(parts):
            continue
        if any(rel.startswith(d + "/") for d in dirs):
            continue
        name = parts[-1]
        top_level_drop = len(parts) == 1 and name in _TOP_LEVEL_DROPS
        if top_level_drop or name == "__pycache__" or (name == "tests" and len(parts) >= 2):
            dirs.append(rel)
    drop_files = [
        rel
        for rel in sorted(files)
        if rel.endswith(_NEVER_LOADED_SUFFIXES)
        and not _is_dist_info(PurePosixPath(rel).parts)
        and not any(rel.startswith(d + "/") for d in dirs)
    ]
    return dirs, drop_files


def references_tests_dir(tests_dir: str, sources: Mapping[str, str]) -> bool:
    """True when a source file outside ``tests_dir`` refers to it as an importable module."""
    dotted = tests_dir.replace("/", ".")
    patterns = [
        re.compile(r"\b" + re.escape(dotted) + r"\b"),
        re.compile(r"from\s+\.+tests\b"),
        re.compile(r"from\s+\.+\s+import\s+[^\n]*\btests\b"),
    ]
    parent = tests_dir.rsplit("/", 1)[0] + "/"
    for path, raw in sources.items():
        if {"tests", "testing"} & set(PurePosixPath(path).parts[:-1]):
            continue
        text = _COMMENT_RE.sub("", raw)
        if patterns[0].search(text):
            return True
        # Relative imports only matter from the tests directory's own parent package.
        same_package = path.startswith(parent) and path.count("/") == parent.count("/")
        if same_package and (patterns[1].search(text) or patterns[2].search(text)):
            return True
    return False


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _listing(root: Path) -> tuple[list[str], list[str]]:
    """(directories, files) under ``root`` as relative POSIX paths, in one walk."""
    directories: list[str] = []
    files: list[str] = []
    for current, dirs, names in os.walk(root):
        rel = Path(current).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        directories += [prefix + d for d in dirs]
        files += [prefix + n for n in names]
    return directories, files


def _package_sources(root: Path, top: str, files: list[str]) -> dict[str, str]:
    """The ``.py`` files of top-level package ``top`` that could refer to a tests directory.

    Every reference pattern names ``tests``: files without the word cannot match and are left out.
    """
    out: dict[str, str] = {}
    for rel in files:
        if rel.startswith(top + "/") and rel.endswith(".py"):
            text = (root / rel).read_text("utf-8", errors="replace")
            if "tests" in text:
                out[rel] = text
    return out


def apply_prune(root: Path) -> PruneResult:
    """Apply the rules to the tree at ``root`` in place."""
    directories, files = _listing(root)
    dirs, drop_files = prune_candidates(directories, files)
    removed: list[str] = []
    total = 0
    # Each package's sources are read once, however many tests directories it has (numpy: dozens).
    sources_of: dict[str, dict[str, str]] = {}
    for rel in dirs:
        if PurePosixPath(rel).name == "tests":
            top = rel.split("/", 1)[0]
            if top not in sources_of:
                sources_of[top] = _package_sources(root, top, files)
            if references_tests_dir(rel, sources_of[top]):
                continue
        path = root / rel
        if not path.exists():
            continue
        total += _size(path)
        shutil.rmtree(path)
        removed.append(rel + "/")
    for rel in drop_files:
        path = root / rel
        if path.exists():
            total += path.stat().st_size
            path.unlink()
            removed.append(rel)
    _rewrite_records(root)
    return PruneResult(removed=tuple(removed), bytes_removed=total)


def _tree_path(dist_info: str, row_path: str) -> str:
    """The tree-relative path a RECORD row names (RECORD paths are relative to the install root).

    Rows outside the root (``../../bin/x``: pip's ``--target`` scheme keeps scripts beside the library
    directory, then moves them to ``<target>/bin``) map to the same path inside the tree.
    """
    parent = posixpath.dirname(dist_info)
    path = posixpath.normpath(posixpath.join(parent, row_path) if parent else row_path)
    while path.startswith("../"):
        path = path[3:]
    return path


def filter_record(text: str, dist_info: str, exists: Callable[[str], bool]) -> str:
    """RECORD ``text`` of ``dist_info`` without the rows of files that no longer exist (pure).

    ``exists`` answers for tree-relative POSIX paths. The RECORD's own row always stays.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    own = posixpath.join(dist_info, "RECORD")
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        path = _tree_path(dist_info, row[0])
        if path == own or exists(path):
            writer.writerow(row)
    return out.getvalue()


def _rewrite_records(root: Path) -> None:
    for record in sorted(root.glob("*.dist-info/RECORD")):
        dist_info = record.parent.name
        text = record.read_text("utf-8")
        kept = filter_record(text, dist_info, lambda rel: (root / rel).is_file())
        if kept != text:
            # A new file renamed over the old one: the tree's files may be hard links into the
            # resolver's cache (deps.py), which must never change.
            fresh = record.with_name("RECORD.pruned")
            fresh.write_text(kept, "utf-8")
            fresh.replace(record)
