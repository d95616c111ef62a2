"""A zip writer that takes already-deflated entries, byte-identical to :mod:`zipfile`'s output.

Why: a warm build's dependency tree is unchanged (it comes from the dependency cache), yet writing the
zip deflated every one of its files again and dominated the warm build. :func:`deflate` gives an
entry's CRC and compressed bytes exactly as ``zipfile.ZipFile.writestr`` computes them
(``zlib.compressobj(level, DEFLATED, -15)``, one ``compress`` and one ``flush``), :class:`DeflateCache`
keeps them beside the read-only cached tree, and :func:`write_deflated` lays out local headers, central
directory and end record as ``zipfile`` does for a new, seekable, non-ZIP64 archive (a unit test checks
byte equality with ``zipfile``). Archives needing ZIP64 (over 65,535 entries or 2 GiB) are refused: a
Lambda artifact is at most 250 MB unzipped, and the caller then falls back to :mod:`zipfile`.
"""

from __future__ import annotations

import hashlib
import json
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["DeflateCache", "Deflated", "ZipLayoutError", "deflate", "write_deflated"]

_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_MAX_ENTRIES = 0xFFFF
_MAX_OFFSET = (1 << 31) - 1


class ZipLayoutError(ValueError):
    """The archive would need ZIP64; write it with :mod:`zipfile` instead."""


@dataclass(frozen=True, slots=True)
class Deflated:
    crc: int
    size: int
    data: bytes


def deflate(raw: bytes, level: int) -> Deflated:
    """CRC-32 and raw-deflate bytes of ``raw``, as ``zipfile`` computes them for ZIP_DEFLATED."""
    co = zlib.compressobj(level, zlib.DEFLATED, -15)
    return Deflated(zlib.crc32(raw), len(raw), co.compress(raw) + co.flush())


def write_deflated(
    out: BinaryIO,
    items: Sequence[tuple[zipfile.ZipInfo, Callable[[], Deflated]]],
) -> None:
    """Write ``items`` (header template, its deflated content) as a complete zip to ``out``.

    Each ``ZipInfo`` carries name, date, ``create_system`` and ``external_attr``; sizes and CRC are
    filled in here. ``out`` must be positioned at 0 of an empty file.
    """
    if len(items) >= _MAX_ENTRIES:
        raise ZipLayoutError("more than 65,534 entries")
    central: list[bytes] = []
    offset = 0
    for info, content in items:
        body = content()
        info.compress_type = zipfile.ZIP_DEFLATED
        info.CRC, info.file_size, info.compress_size = body.crc, body.size, len(body.data)
        if offset > _MAX_OFFSET or info.file_size * 1.05 > _MAX_OFFSET:
            raise ZipLayoutError("entry or offset beyond 2 GiB")
        header = info.FileHeader(False)
        out.write(header)
        out.write(body.data)
        central.append(_central_record(info, offset))
        offset += len(header) + len(body.data)
    start = offset
    for record in central:
        out.write(record)
        offset += len(record)
    if offset > _MAX_OFFSET:
        raise ZipLayoutError("central directory beyond 2 GiB")
    out.write(_END.pack(b"PK\005\006", 0, 0, len(central), len(central), offset - start, start, 0))


def _central_record(info: zipfile.ZipInfo, offset: int) -> bytes:
    dt = info.date_time
    dosdate = (dt[0] - 1980) << 9 | dt[1] << 5 | dt[2]
    dostime = dt[3] << 11 | dt[4] << 5 | (dt[5] // 2)
    name = info.filename.encode("ascii") if info.filename.isascii() else info.filename.encode("utf-8")
    flags = info.flag_bits if info.filename.isascii() else info.flag_bits | 0x800
    return (
        _CENTRAL.pack(
            b"PK\001\002",
            info.create_version,
            info.create_system,
            info.extract_version,
            info.reserved,
            flags,
            info.compress_type,
            dostime,
            dosdate,
            info.CRC,
            info.compress_size,
            info.file_size,
            len(name),
            len(info.extra),
            len(info.comment),
            0,
            info.internal_attr,
            info.external_attr,
            offset,
        )
        + name
        + info.extra
        + info.comment
    )


class DeflateCache:
    """Deflated entries of one read-only tree, in ``<tree>/../deflate-<level>/``.

    Keyed by the entry's tree-relative path, size and modification time (the cached tree is never
    modified after it was renamed into place); a miss deflates and stores.
    """

    def __init__(self, tree: Path, level: int) -> None:
        self.tree = tree
        self.dir = tree.parent / f"deflate-{level}"
        self.level = level

    def _path(self, source: Path) -> Path | None:
        try:
            rel = source.relative_to(self.tree).as_posix()
            st = source.stat()
        except (ValueError, OSError):
            return None
        key = hashlib.sha256(json.dumps([rel, st.st_size, st.st_mtime_ns]).encode()).hexdigest()
        return self.dir / key[:2] / key

    def get(self, source: Path) -> Deflated:
        cached = self._path(source)
        if cached is not None:
            try:
                blob = cached.read_bytes()
                crc, size = struct.unpack_from("<LQ", blob)
                return Deflated(crc, size, blob[12:])
            except (OSError, struct.error):
                pass
        body = deflate(source.read_bytes(), self.level)
        if cached is not None:
            _store(cached, struct.pack("<LQ", body.crc, body.size) + body.data)
        return body


def _store(path: Path, blob: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as fh:
            fh.write(blob)
        Path(fh.name).replace(path)
    except OSError:
        pass  # a cache that cannot be written only costs time
