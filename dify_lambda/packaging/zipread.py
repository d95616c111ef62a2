"""Decode a zip archive without trusting anything in it, and write one deterministically.

Every entry name is checked before anything is read; entries are inflated in bounded chunks and the
bytes actually produced are counted against the caps (header sizes are only a first, cheap check).
Directory entries are accepted when harmless and then dropped, as the daemon's decoder does.
"""

from __future__ import annotations

import bisect
import io
import re
import stat
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from dify_lambda.packaging.errors import PackageTooLargeError, UnsafePackageError
from dify_lambda.packaging.limits import ReadLimits, five_largest

__all__ = ["FIXED_DATE_TIME", "ZipContents", "check_entry_name", "read_zip", "write_zip"]

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
#: What ``os.fsdecode`` makes of bytes that are not UTF-8 (surrogateescape).
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_NAME_CHARS = 1024
_CHUNK = 64 * 1024
_SUPPORTED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


@dataclass(frozen=True, slots=True)
class ZipContents:
    """File entries in archive order, their bytes, and the archive comment."""

    order: tuple[str, ...]
    files: dict[str, bytes]
    comment: bytes


def check_entry_name(name: str) -> str | None:
    """Why ``name`` is unsafe as a relative ``/`` path inside a package, or None when it is fine.

    A trailing ``/`` (a directory entry) is allowed; everything else must be a plain relative path.
    """
    if not name:
        return "empty entry name"
    if len(name) > _MAX_NAME_CHARS:
        return f"entry name longer than {_MAX_NAME_CHARS} characters"
    if _CONTROL.search(name):
        return "control character in entry name"
    if _SURROGATE.search(name):
        return "undecodable bytes in entry name"
    if "\\" in name:
        return "backslash in entry name (Windows path trick)"
    if name.startswith("/") or _DRIVE.match(name):
        return "absolute path"
    parts = name.removesuffix("/").split("/")
    if ".." in parts:
        return "path traversal ('..')"
    if "." in parts or "" in parts:
        return "non-canonical path ('.' or empty segment)"
    return None


def _entry_kind(info: zipfile.ZipInfo) -> str | None:
    """'symlink' / 'special file' for Unix modes that are not plain files or directories."""
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind in (0, stat.S_IFREG, stat.S_IFDIR):
        return None
    return "symlink" if kind == stat.S_IFLNK else "special file"


def _open_archive(data: bytes, name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UnsafePackageError(f"{name}: not a zip archive") from None
    except (OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise UnsafePackageError(f"{name}: unreadable zip archive ({type(exc).__name__})") from None


def _check_infos(infos: list[zipfile.ZipInfo], name: str, limits: ReadLimits) -> None:
    if len(infos) > limits.max_entries:
        raise PackageTooLargeError(f"{name}: {len(infos)} entries, over the limit of {limits.max_entries}")
    seen: set[str] = set()
    for info in infos:
        entry = info.orig_filename
        problem = check_entry_name(entry)
        if problem:
            raise UnsafePackageError(f"{name}: unsafe entry {entry!r}: {problem}")
        if entry in seen:
            raise UnsafePackageError(f"{name}: duplicate entry {entry!r}")
        seen.add(entry)
        kind = _entry_kind(info)
        if kind:
            raise UnsafePackageError(f"{name}: {kind} entry {entry!r} is not allowed")
        if info.flag_bits & 0x41:  # bit 0: encrypted, bit 6: strong encryption
            raise UnsafePackageError(f"{name}: encrypted entry {entry!r} is not allowed")
        if info.compress_type not in _SUPPORTED_METHODS:
            raise UnsafePackageError(
                f"{name}: entry {entry!r} uses compression method {info.compress_type} (only stored/deflate)"
            )
        if entry.endswith("/") and info.file_size:
            raise UnsafePackageError(f"{name}: directory entry {entry!r} carries data")
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_uncompressed_bytes:
        raise PackageTooLargeError(
            f"{name}: {declared} bytes uncompressed, "
            f"over the limit of {limits.max_uncompressed_bytes} bytes; "
            f"largest files: {five_largest((i.orig_filename, i.file_size) for i in infos)}"
        )
    files = {i.orig_filename for i in infos if not i.orig_filename.endswith("/")}
    for info in infos:
        if info.orig_filename.endswith("/") and info.orig_filename[:-1] in files:
            raise UnsafePackageError(
                f"{name}: {info.orig_filename[:-1]!r} is both a file and a directory entry"
            )
    # An entry inside a file: in sorted order the names under "f/" start at bisect(names, "f/").
    # (Joining every prefix of every name is quadratic: 10,000 names 400 levels deep took a minute.)
    names = sorted(files)
    for entry in names:
        below = entry + "/"
        i = bisect.bisect_left(names, below)
        if i < len(names) and names[i].startswith(below):
            raise UnsafePackageError(f"{name}: entry {names[i]!r} is inside {entry!r}, a file")


def _inflate(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, limits: ReadLimits, total: int) -> bytes:
    entry = info.orig_filename
    buf = bytearray()
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(_CHUNK):
                buf += chunk
                if total + len(buf) > limits.max_uncompressed_bytes:
                    raise PackageTooLargeError(
                        f"{name}: inflates past the limit of {limits.max_uncompressed_bytes} bytes "
                        f"at entry {entry!r} (header sizes understated)"
                    )
                if len(buf) > limits.max_entry_bytes:
                    raise PackageTooLargeError(
                        f"{name}: entry {entry!r} exceeds the per-entry limit "
                        f"of {limits.max_entry_bytes} bytes"
                    )
                ratio = len(buf) / max(info.compress_size, 1)
                if len(buf) > limits.ratio_floor_bytes and ratio > limits.max_ratio:
                    raise UnsafePackageError(
                        f"{name}: entry {entry!r} looks like a zip bomb "
                        f"(compression ratio over {limits.max_ratio:g}:1)"
                    )
    except zipfile.BadZipFile as exc:
        raise UnsafePackageError(f"{name}: entry {entry!r} is corrupt ({exc})") from None
    except (zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise UnsafePackageError(f"{name}: entry {entry!r} is corrupt ({type(exc).__name__})") from None
    return bytes(buf)


def read_zip(data: bytes, name: str, limits: ReadLimits) -> ZipContents:
    """Check and inflate every entry of a zip held in memory."""
    with _open_archive(data, name) as zf:
        infos = zf.infolist()
        _check_infos(infos, name, limits)
        order: list[str] = []
        files: dict[str, bytes] = {}
        total = 0
        for info in infos:
            if info.orig_filename.endswith("/"):
                continue
            content = _inflate(zf, info, name, limits, total)
            total += len(content)
            order.append(info.orig_filename)
            files[info.orig_filename] = content
        return ZipContents(order=tuple(order), files=files, comment=zf.comment)


def write_zip(entries: Iterable[tuple[str, bytes]], comment: bytes = b"") -> bytes:
    """A deflate zip of ``entries`` in the given order; fixed timestamps and 0644 modes, so the
    same entries always give the same bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, content in entries:
            info = zipfile.ZipInfo(path, date_time=FIXED_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the mode below is meaningful everywhere
            info.external_attr = 0o100644 << 16
            zf.writestr(info, content)
        zf.comment = comment
    return out.getvalue()
