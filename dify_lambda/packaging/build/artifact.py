"""Write the Lambda zip deterministically: same inputs, same bytes, same SHA-256.

- file entries only (no directory entries), sorted by path;
- every timestamp 1980-01-01 00:00:00 (the zip epoch), ``create_system`` Unix, no extra fields;
- mode 0755 for files whose source has the owner execute bit (e.g. ``exec_wrapper.sh``), else 0644;
- deflate at level 6 for every entry (fixed, so output bytes are reproducible).
"""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dify_lambda.errors import ArtifactTooLargeError, BuildError
from dify_lambda.packaging.build.zipwrite import (
    Deflated,
    DeflatePack,
    PackItem,
    ZipLayoutError,
    deflate,
    write_deflated,
    write_pack,
)
from dify_lambda.packaging.limits import format_size

__all__ = [
    "FIXED_DATE_TIME",
    "ArtifactEntry",
    "check_unzipped_size",
    "entry_mode",
    "largest_contributors",
    "pack_only_entries",
    "predeflate",
    "tree_entries",
    "write_zip",
]

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_UNIX = 3
_CHUNK = 1 << 20
#: zlib level 6: within ~1% of level 9 on this content, about 3x faster (warm builds are zip-bound).
_LEVEL = 6


@dataclass(frozen=True, slots=True)
class ArtifactEntry:
    arcname: str
    source: Path
    size: int
    executable: bool
    #: ``plugin``, ``dependencies`` or ``runtime``: for the size breakdown of the report.
    part: str


def _info(entry: ArtifactEntry) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(entry.arcname, date_time=FIXED_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = _UNIX
    info.external_attr = entry_mode(entry.executable) << 16
    return info


def entry_mode(executable: bool) -> int:
    return 0o100755 if executable else 0o100644


def tree_entries(root: Path, part: str, prefix: str = "") -> list[ArtifactEntry]:
    """Every regular file under ``root`` as an entry named ``prefix + relative path``.

    One ``scandir`` walk with string paths (``Path.relative_to`` per file cost a warm build a
    noticeable share of its time on a tree of thousands of files).
    """
    out: list[ArtifactEntry] = []
    pending = [(str(root), prefix)]
    while pending:
        directory, arc = pending.pop()
        with os.scandir(directory) as scan:
            for item in scan:
                if item.is_symlink():
                    raise BuildError(f"{item.path} is a symbolic link; the artifact only holds regular files")
                if item.is_dir():
                    pending.append((item.path, arc + item.name + "/"))
                elif item.is_file():
                    st = item.stat()
                    out.append(
                        ArtifactEntry(
                            arc + item.name,
                            Path(item.path),
                            st.st_size,
                            bool(st.st_mode & stat.S_IXUSR),
                            part,
                        )
                    )
    return out


def largest_contributors(entries: Iterable[ArtifactEntry], count: int = 10) -> list[tuple[str, int]]:
    """Sizes grouped by top-level name (``plugin/`` and ``dify_lambda/`` count as one each)."""
    sizes: dict[str, int] = {}
    for entry in entries:
        top = entry.arcname.split("/", 1)[0]
        sizes[top] = sizes.get(top, 0) + entry.size
    return sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:count]


def drop_bytecode_to_fit(entries: list[ArtifactEntry], limit: int) -> tuple[list[ArtifactEntry], list[str]]:
    """Leave out dependencies' ``.pyc`` files, biggest package first, until the total fits ``limit``.

    Bytecode is only a cold-start speed-up (sources stay, and Python compiles them in memory on
    Lambda's read-only task root), so an artifact that fits without some of it beats a refusal. Returns
    the entries kept and the top-level names whose bytecode was left out; nothing is dropped when the
    artifact fits already or when even all of it would not make it fit (the size error names the
    contributors then).
    """
    total = sum(e.size for e in entries)
    if total <= limit:
        return entries, []
    bytecode: dict[str, int] = {}
    for entry in entries:
        if entry.part == "dependencies" and entry.arcname.endswith(".pyc"):
            top = entry.arcname.split("/", 1)[0]
            bytecode[top] = bytecode.get(top, 0) + entry.size
    if total - sum(bytecode.values()) > limit:
        return entries, []
    dropped: list[str] = []
    for top, size in sorted(bytecode.items(), key=lambda kv: (-kv[1], kv[0])):
        if total <= limit:
            break
        dropped.append(top)
        total -= size
    gone = set(dropped)
    kept = [
        e
        for e in entries
        if not (
            e.part == "dependencies" and e.arcname.endswith(".pyc") and e.arcname.split("/", 1)[0] in gone
        )
    ]
    return kept, dropped


def check_unzipped_size(entries: list[ArtifactEntry], limit: int) -> int:
    """Total unzipped size; raises :class:`ArtifactTooLargeError` above ``limit``."""
    total = sum(e.size for e in entries)
    if total > limit:
        top = ", ".join(f"{name} ({format_size(size)})" for name, size in largest_contributors(entries))
        raise ArtifactTooLargeError(
            f"artifact is {format_size(total)} unzipped, over the {format_size(limit)} limit "
            f"(Lambda allows 250 MB including layers); largest: {top}"
        )
    return total


def _check_names(entries: Iterable[ArtifactEntry]) -> list[ArtifactEntry]:
    by_name: dict[str, ArtifactEntry] = {}
    for entry in entries:
        if entry.arcname in by_name:
            first = by_name[entry.arcname]
            raise BuildError(
                f"artifact path {entry.arcname} comes from both the {first.part} and the {entry.part}"
            )
        by_name[entry.arcname] = entry
    return [by_name[name] for name in sorted(by_name)]


def predeflate(tree: Path, batches: Iterable[Sequence[PackItem]]) -> int:
    """Deflate a dependency tree's files (and its in-memory ``.pyc``) into its pack (zipwrite.py)."""
    return write_pack(tree, _LEVEL, batches)


def pack_only_entries(tree: Path, part: str, prefix: str = "") -> list[ArtifactEntry]:
    """Entries of ``tree`` that exist only in its pack (its ``.pyc`` files, compile.py)."""
    pack = DeflatePack.open(tree, _LEVEL)
    if pack is None:
        return []
    return [ArtifactEntry(prefix + rel, tree / rel, size, False, part) for rel, size in pack.only_here()]


class _HashingFile:
    """Writes through to a file and hashes what passes, so the zip is not read back for its SHA-256."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()

    def write(self, data: bytes, /) -> int:
        self.digest.update(data)
        return self.fh.write(data)


def write_zip(
    entries: Iterable[ArtifactEntry], dest: Path, cached_tree: Path | None = None
) -> tuple[int, str]:
    """Write the zip; returns (zipped size, hex SHA-256).

    Entries under ``cached_tree`` (the dependency cache's read-only tree) come already deflated from
    its pack (zipwrite.py, written when the tree was produced), so their compressed bytes are copied;
    the others are deflated here on a few threads (zlib releases the GIL). The output is the same.
    """
    ordered = _check_names(entries)
    tmp = dest.with_name(dest.name + ".partial")
    pack = DeflatePack.open(cached_tree, _LEVEL) if cached_tree is not None else None
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        # Entries the pack lacks are deflated ahead on the pool; packed ones are read as written.
        fresh: dict[str, Future[Deflated]] = {
            entry.arcname: pool.submit(_deflate_file, entry.source)
            for entry in ordered
            if pack is None or not pack.has(entry.source, entry.size)
        }

        def content(entry: ArtifactEntry) -> Callable[[], Deflated]:
            def body() -> Deflated:
                if entry.arcname in fresh:
                    return fresh.pop(entry.arcname).result()
                found = pack.get(entry.source, entry.size) if pack is not None else None
                if found is None:
                    try:
                        return _deflate_file(entry.source)
                    except FileNotFoundError:
                        # A pack-only entry whose pack cannot be read any more.
                        raise BuildError(
                            f"{entry.arcname} is missing from the dependency cache; rebuild with --no-cache"
                        ) from None
                return found

            return body

        try:
            with tmp.open("wb") as out:
                sink = _HashingFile(out)
                write_deflated(sink, [(_info(entry), content(entry)) for entry in ordered])
            sha256 = sink.digest.hexdigest()
        except ZipLayoutError:
            for future in fresh.values():
                future.cancel()
            sha256 = _write_with_zipfile(ordered, tmp, pack)
        finally:
            if pack is not None:
                pack.close()
    tmp.replace(dest)
    return dest.stat().st_size, sha256


def _deflate_file(path: Path) -> Deflated:
    return deflate(path.read_bytes(), _LEVEL)


def _write_with_zipfile(ordered: list[ArtifactEntry], tmp: Path, pack: DeflatePack | None) -> str:
    def raw(entry: ArtifactEntry) -> bytes:
        # Pack-only entries (the dependency tree's .pyc) exist nowhere else.
        packed = pack.get(entry.source, entry.size) if pack is not None else None
        return zlib.decompress(packed.data, -15) if packed is not None else entry.source.read_bytes()

    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=_LEVEL) as zf:
        for entry in ordered:
            zf.writestr(
                _info(entry),
                raw(entry),
                compress_type=zipfile.ZIP_DEFLATED,
                compresslevel=_LEVEL,
            )
    digest = hashlib.sha256()
    with tmp.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
