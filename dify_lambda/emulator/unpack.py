"""Unpacking an artifact zip for ``serve``: safely, and once per content (a cache keyed by sha256).

A cache entry ``<cache root>/serve/<sha256>`` holds the unpacked tree of the zip whose sha256 it is
named after. It is populated atomically: the zip is unpacked into a temporary sibling directory,
checked, and renamed into place, so an entry that exists is complete. Two ``serve`` starting at once
both unpack; the first rename wins and the other discards its copy. Entries are never modified
afterwards (workers run with ``PYTHONDONTWRITEBYTECODE=1``, and ``/var/task`` is read-only on Lambda
too); deleting the ``serve`` directory is always safe while no ``serve`` runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from dify_lambda import wire
from dify_lambda.emulator.errors import ServeTargetError
from dify_lambda.errors import UnsafePackageError

__all__ = ["SERVE_CACHE_DIR", "cached_unpack", "safe_extract", "sha256_of"]

#: The sub-directory of the dify-lambda cache root (``--cache-dir``, shared with ``build``).
SERVE_CACHE_DIR = "serve"
#: Unpacked artifacts kept in the cache (each is the artifact's full unzipped size); older entries go
#: once they have not been used for an hour (a ``serve`` started within that hour keeps its own).
KEEP_ENTRIES = 8
IDLE_BEFORE_EVICTION_S = 3600.0


def sha256_of(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise ServeTargetError(f"{path}: cannot read ({exc.strerror or exc})") from None


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a zip refusing absolute paths, ``..``, symlinks and oversize content; keep mode bits."""
    try:
        zf = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ServeTargetError(f"{archive}: not a readable zip ({exc})") from None
    with zf:
        total = 0
        for info in zf.infolist():
            name = PurePosixPath(info.filename)
            if name.is_absolute() or ".." in name.parts or "\\" in info.filename:
                raise UnsafePackageError(f"{archive}: entry {info.filename!r} escapes the artifact root")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafePackageError(f"{archive}: entry {info.filename!r} is a symbolic link")
            total += info.file_size
            if total > wire.MAX_UNZIPPED_BYTES:  # Lambda's limit: refused as Lambda would
                raise UnsafePackageError(f"{archive}: more than {wire.MAX_UNZIPPED_BYTES} bytes unzipped")
        for info in zf.infolist():
            target = dest.joinpath(*PurePosixPath(info.filename).parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)


def cached_unpack(archive: Path, cache_root: Path, check: Callable[[Path], None]) -> tuple[Path, str]:
    """The cache entry of ``archive`` (unpacked now if missing) and its sha256.

    ``check(tree)`` validates a fresh extraction before it is published; it raises to refuse it.
    Raises :class:`OSError` when the cache directory cannot be written (the caller falls back).
    """
    digest = sha256_of(archive)
    entry = cache_root / SERVE_CACHE_DIR / digest
    if not entry.is_dir():
        _publish(archive, entry, check)
    os.utime(entry)  # the entry's mtime is its last use
    _evict(entry.parent, entry)
    return entry, digest


def _publish(archive: Path, entry: Path, check: Callable[[Path], None]) -> None:
    """Unpack ``archive`` beside ``entry``, check it, and rename it into place."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{entry.name[:16]}-", dir=entry.parent))
    try:
        scratch.chmod(0o755)  # mkdtemp's 0700 would differ from an unzipped /var/task
        safe_extract(archive, scratch)
        check(scratch)
        try:
            scratch.rename(entry)
        except OSError:
            if not entry.is_dir():
                raise
            # Another serve published the same content first: use theirs.
            shutil.rmtree(scratch, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _evict(parent: Path, current: Path) -> None:
    """Remove entries beyond the :data:`KEEP_ENTRIES` most recently used that sat idle for an hour."""
    now = time.time()
    entries = []
    for child in parent.iterdir():
        if child.name.startswith(".") or child == current:  # an unpack in progress, or this one
            continue
        try:
            entries.append((child.stat().st_mtime, child))
        except OSError:
            continue
    entries.sort(reverse=True)
    for used, child in entries[KEEP_ENTRIES - 1 :]:
        if now - used > IDLE_BEFORE_EVICTION_S:
            shutil.rmtree(child, ignore_errors=True)
