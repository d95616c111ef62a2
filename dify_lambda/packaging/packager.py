"""``dify-lambda package``: the same ``.difypkg`` as ``dify plugin package`` (docs/plugin-package.md §1),
deterministically; re-read with :class:`PluginPackage` before it is written, atomically.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dify_lambda.packaging.errors import PackageError
from dify_lambda.packaging.limits import DEFAULT_MAX_UNCOMPRESSED_BYTES, MIB, ReadLimits
from dify_lambda.packaging.reader import PluginPackage
from dify_lambda.packaging.requirements import UvExporter, find_uv, generate_requirements, uv_exporter
from dify_lambda.packaging.source import collect_directory
from dify_lambda.packaging.zipread import FIXED_DATE_TIME, write_zip

__all__ = ["FIXED_DATE_TIME", "PackResult", "atomic_write", "build_package", "write_package", "zip_files"]


@dataclass(frozen=True, slots=True)
class PackResult:
    data: bytes
    package: PluginPackage
    #: Where a generated requirements.txt came from, or None when the directory had one (or no pyproject).
    requirements_source: str | None
    ignore_file: str | None


def zip_files(files: Mapping[str, bytes]) -> bytes:
    """A deterministic deflate zip of ``files`` sorted by path."""
    return write_zip(sorted(files.items()))


def build_package(
    src: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    exclude: tuple[str | os.PathLike[str], ...] = (),
    exporter: UvExporter | Literal["auto"] | None = "auto",
) -> PackResult:
    """Collect, generate ``requirements.txt`` if needed, zip, and validate; nothing is written.

    ``exporter`` runs ``uv export``; by default ``uv`` is looked up, and ``None`` forces the
    built-in ``uv.lock`` reader.
    """
    root = Path(src)
    limits = ReadLimits(max_uncompressed_bytes=max_bytes, max_entry_bytes=max_bytes)
    hint = f" (--max-size {max_bytes / MIB:g} MB)"
    source = collect_directory(root, limits=limits, exclude=exclude, size_hint=hint)
    files = dict(source.files)
    chosen: UvExporter | None
    if exporter == "auto":
        uv = find_uv()
        chosen = uv_exporter(uv) if uv else None
    else:
        chosen = exporter
    generated = generate_requirements(root, files, exporter=chosen)
    if generated is not None:
        files["requirements.txt"] = generated.content
    data = zip_files(files)
    package = PluginPackage.from_bytes(data, name=str(root), limits=limits)
    return PackResult(
        data=data,
        package=package,
        requirements_source=generated.source if generated else None,
        ignore_file=source.ignore_file,
    )


def atomic_write(out: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``out`` through a temporary file in the same directory, then rename."""
    target = Path(out)
    parent = target.parent
    if not parent.is_dir():
        raise PackageError(f"{target}: output directory {parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).chmod(0o644)
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_package(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    exporter: UvExporter | Literal["auto"] | None = "auto",
) -> PackResult:
    """Package ``src`` into ``out`` (never including ``out`` itself or other ``*.difypkg``)."""
    target = Path(out)
    if target.is_dir():
        raise PackageError(f"{target}: output path is a directory")
    result = build_package(src, max_bytes=max_bytes, exclude=(target.absolute(),), exporter=exporter)
    atomic_write(target, result.data)
    return result
