"""A zip writer that takes already-deflated entries, byte-identical to :mod:`zipfile`'s output.

Why: a warm build's dependency tree is unchanged (it comes from the dependency cache), yet writing the
zip deflated every one of its files again and dominated the warm build. :func:`deflate` gives an
entry's CRC and compressed bytes exactly as ``zipfile.ZipFile.writestr`` computes them
(``zlib.compressobj(level, DEFLATED, -15)``, one ``compress`` and one ``flush``), :class:`DeflatePack`
keeps them beside the read-only cached tree (one file, written by :func:`write_pack`), and
:func:`write_deflated` lays out local headers, central directory and end record as ``zipfile`` does
for a new, seekable, non-ZIP64 archive (a unit test checks byte equality with ``zipfile``). Archives
needing ZIP64 (over 65,535 entries or 2 GiB) are refused: a Lambda artifact is at most 250 MB
unzipped, and the caller then falls back to :mod:`zipfile`.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = [
    "PACK_NAME",
    "DeflatePack",
    "Deflated",
    "PackItem",
    "PackedEntry",
    "ZipLayoutError",
    "deflate",
    "write_deflated",
    "write_pack",
]

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


class Sink(Protocol):
    """Where :func:`write_deflated` writes: a binary file, or anything with its ``write``."""

    def write(self, data: bytes, /) -> int: ...


def write_deflated(
    out: Sink,
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


#: The pack beside a cached tree: ``<tree>/../deflate-<level>.pack`` and its index ``.json``.
PACK_NAME = "deflate-{level}.pack"


@dataclass(frozen=True, slots=True)
class PackedEntry:
    offset: int
    crc: int
    size: int
    length: int
    #: 1 for content that exists only in the pack (the tree's ``.pyc`` files, compile.py), else 0.
    only_here: int = 0


class DeflatePack:
    """Every file of one read-only tree deflated once, in one file beside it.

    Written by :func:`write_pack` while the tree is produced (before the dependency cache publishes
    it), so a warm build copies compressed bytes instead of deflating the tree again, and one file
    replaces thousands of small ones (creating and deleting many small files is what a disk pays
    most for). Keyed by the tree-relative path; an entry whose size no longer matches is deflated
    afresh (:meth:`get` returns None).
    """

    def __init__(self, tree: Path, index: dict[str, PackedEntry], data: Path) -> None:
        self.tree = tree
        self.index = index
        self.data = data
        self._fh: BinaryIO | None = None

    @classmethod
    def open(cls, tree: Path, level: int) -> DeflatePack | None:
        """The pack of ``tree`` at ``level``, or None when there is none (or it cannot be read)."""
        data = tree.parent / PACK_NAME.format(level=level)
        try:
            raw = json.loads(data.with_suffix(".json").read_text("utf-8"))
            index = {rel: PackedEntry(*map(int, row)) for rel, row in raw.items()}
        except (OSError, ValueError, TypeError):
            return None
        return cls(tree, index, data) if data.is_file() else None

    def _entry(self, source: Path, size: int) -> PackedEntry | None:
        # String prefix rather than Path.relative_to: this runs for every entry of every build.
        path, root = str(source), str(self.tree) + os.sep
        if not path.startswith(root):
            return None
        packed = self.index.get(path[len(root) :].replace(os.sep, "/"))
        return packed if packed is not None and packed.size == size else None

    def has(self, source: Path, size: int) -> bool:
        """True when the pack holds ``source`` (a file under the tree) at this size."""
        return self._entry(source, size) is not None

    def get(self, source: Path, size: int) -> Deflated | None:
        """The deflated ``source``, or None when the pack does not hold it at this size."""
        packed = self._entry(source, size)
        if packed is None:
            return None
        if self._fh is None:
            self._fh = self.data.open("rb")
        self._fh.seek(packed.offset)
        body = self._fh.read(packed.length)
        return Deflated(packed.crc, packed.size, body) if len(body) == packed.length else None

    def only_here(self) -> list[tuple[str, int]]:
        """``(tree-relative path, size)`` of the entries that exist in the pack only, sorted."""
        return sorted((rel, e.size) for rel, e in self.index.items() if e.only_here)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


#: What :func:`write_pack` takes: a file under the tree, or ``(tree-relative path, content)`` for
#: content that is not in the tree (it is then in the pack only).
PackItem = Path | tuple[str, bytes]


def write_pack(
    tree: Path, level: int, batches: Iterable[Sequence[PackItem]], workers: int | None = None
) -> int:
    """Deflate the items of ``batches`` into ``tree``'s pack; returns the pack's size.

    Batches are consumed one after the other, so a caller can hand over what exists now and, once
    another step has produced more, that (the dependency tree is deflated while its ``.pyc`` files
    are being compiled). Items are deflated on ``workers`` threads (zlib releases the GIL); each
    entry's bytes depend on its content only, so the pack holds the same entries whatever the
    thread count.
    """
    data = tree.parent / PACK_NAME.format(level=level)
    index: dict[str, list[int]] = {}
    offset = 0

    root = str(tree) + os.sep

    def one(item: PackItem) -> tuple[str, int, Deflated]:
        if isinstance(item, Path):
            path = str(item)
            if not path.startswith(root):
                raise ValueError(f"{path} is not under {tree}")
            return path[len(root) :].replace(os.sep, "/"), 0, deflate(item.read_bytes(), level)
        return item[0], 1, deflate(item[1], level)

    with data.open("wb") as out, ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for batch in batches:
            for rel, only_here, body in pool.map(one, batch):
                out.write(body.data)
                index[rel] = [offset, body.crc, body.size, len(body.data), only_here]
                offset += len(body.data)
    data.with_suffix(".json").write_text(json.dumps(index, sort_keys=True), "utf-8")
    return offset
