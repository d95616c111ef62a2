"""Collect the files of a plugin source directory, as the packager would put them in a package.

Applies ``.difyignore`` (or ``.gitignore`` when there is no ``.difyignore``) plus fixed exclusions
(``.git/``, ``__pycache__/``, ``.venv/``, ``*.difypkg``). Symlinks are never followed: a symlink that
is not ignored is an error, so a package never picks up files from outside the directory. The one
exception is a symlinked ``.difyignore`` / ``.gitignore`` at the root: it is read through the link
(as the official packager does) and left out of the package.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dify_lambda.packaging.errors import PackageError, PackageTooLargeError, UnsafePackageError
from dify_lambda.packaging.ignore import IgnoreRules
from dify_lambda.packaging.limits import DEFAULT_LIMITS, MIB, ReadLimits, five_largest
from dify_lambda.packaging.zipread import check_entry_name

__all__ = ["ALWAYS_EXCLUDED", "IGNORE_FILES", "SourceFiles", "collect_directory", "load_ignore_rules"]

ALWAYS_EXCLUDED = IgnoreRules.parse(".git/\n__pycache__/\n.venv/\n*.difypkg\n")


@dataclass(frozen=True, slots=True)
class SourceFiles:
    """Files of a plugin directory in sorted path order, and which ignore file applied."""

    files: dict[str, bytes]
    ignore_file: str | None


#: Largest ignore file read; far above any real one (a generated Python .gitignore is ~4 KB).
_MAX_IGNORE_FILE_BYTES = 1 * MIB
IGNORE_FILES = (".difyignore", ".gitignore")


def _read_ignore_file(path: Path) -> bytes | None:
    """The file's bytes, following a symlink, or None when it is missing, dangling or not a file.

    The official packager reads the ignore file with ``os.ReadFile`` (a symlink is followed, since
    the ignore file itself is never packaged) and falls back to ``.gitignore`` when that fails.
    O_NONBLOCK keeps a FIFO from blocking the open; it is then refused as not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        data = fh.read(_MAX_IGNORE_FILE_BYTES + 1)
    if len(data) > _MAX_IGNORE_FILE_BYTES:
        raise PackageError(f"{path}: ignore file over {_MAX_IGNORE_FILE_BYTES} bytes")
    return data


def load_ignore_rules(root: Path) -> tuple[IgnoreRules, str | None]:
    """``.difyignore`` if readable, else ``.gitignore``, else no rules."""
    for candidate in IGNORE_FILES:
        data = _read_ignore_file(root / candidate)
        if data is not None:
            text = data.decode("utf-8", errors="replace")
            return IgnoreRules.parse(text, where=str(root / candidate)), candidate
    return IgnoreRules(), None


def _read_nofollow(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def collect_directory(
    root: str | os.PathLike[str],
    *,
    limits: ReadLimits = DEFAULT_LIMITS,
    exclude: Iterable[str | os.PathLike[str]] = (),
    size_hint: str = "",
) -> SourceFiles:
    """Walk ``root`` and return the files to package; ``exclude`` lists absolute paths to skip."""
    base = Path(root)
    if not base.is_dir():
        raise PackageError(f"{base}: not a directory")
    rules, ignore_file = load_ignore_rules(base)
    rules = ALWAYS_EXCLUDED + rules
    skipped = {os.path.realpath(p) for p in exclude}
    found: list[tuple[str, Path, int]] = []

    def walk(directory: Path, prefix: str) -> None:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = prefix + entry.name
            st = entry.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            if rules.ignored(rel, is_dir) or (os.path.realpath(entry.path) in skipped and not is_dir):
                continue
            problem = check_entry_name(rel)
            if problem:
                raise UnsafePackageError(f"{base}: file {rel!r} cannot be packaged: {problem}")
            if stat.S_ISLNK(st.st_mode):
                if rel in IGNORE_FILES:  # read above through the link, never packaged
                    continue
                raise UnsafePackageError(
                    f"{base}: symlink {rel!r} is not allowed (ignore it or copy the target)"
                )
            if is_dir:
                walk(Path(entry.path), rel + "/")
            elif stat.S_ISREG(st.st_mode):
                found.append((rel, Path(entry.path), st.st_size))
            else:
                raise UnsafePackageError(f"{base}: special file {rel!r} is not allowed")

    walk(base, "")
    if len(found) > limits.max_entries:
        raise PackageTooLargeError(f"{base}: {len(found)} files, over the limit of {limits.max_entries}")
    total = sum(size for _, _, size in found)
    if total > limits.max_uncompressed_bytes:
        raise PackageTooLargeError(
            f"{base}: {total} bytes uncompressed, over the limit of {limits.max_uncompressed_bytes} bytes"
            f"{size_hint}; largest files: {five_largest((rel, size) for rel, _, size in found)}"
        )
    files = {rel: _read_nofollow(path) for rel, path, _ in sorted(found)}
    return SourceFiles(files=files, ignore_file=ignore_file)
