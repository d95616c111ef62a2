"""``PluginPackage.open`` and ``extract_to`` against the file system."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from support.pkgfactory import good_package, plugin_files

from dify_lambda.errors import PackageError, PackageTooLargeError, UnsafePackageError
from dify_lambda.packaging.limits import ReadLimits
from dify_lambda.packaging.reader import PluginPackage


def test_open_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny.difypkg"
    path.write_bytes(good_package())
    pkg = PluginPackage.open(path)
    assert pkg.name == str(path)
    assert pkg.checksum == PluginPackage.from_bytes(good_package()).checksum


def test_open_refuses_odd_paths(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="no such file"):
        PluginPackage.open(tmp_path / "missing.difypkg")
    with pytest.raises(UnsafePackageError, match="not a regular file"):
        PluginPackage.open(tmp_path)
    target = tmp_path / "real.difypkg"
    target.write_bytes(good_package())
    link = tmp_path / "link.difypkg"
    link.symlink_to(target)
    with pytest.raises(PackageError, match="cannot open"):
        PluginPackage.open(link)


def test_open_refuses_huge_files_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.difypkg"
    with path.open("wb") as fh:
        fh.truncate(3 * 1024 * 1024)  # sparse
    with pytest.raises(PackageTooLargeError, match="bytes on disk, over the limit"):
        PluginPackage.open(path, limits=ReadLimits(max_uncompressed_bytes=1024, max_entries=10))


def test_extract_to_writes_every_file(tmp_path: Path) -> None:
    pkg = PluginPackage.from_bytes(good_package())
    dest = tmp_path / "out"
    pkg.extract_to(dest)
    written = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert written == plugin_files()
    assert oct((dest / "main.py").stat().st_mode & 0o777) == oct(0o644)


def test_extract_to_never_follows_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "provider").symlink_to(outside)
    pkg = PluginPackage.from_bytes(good_package())
    with pytest.raises(UnsafePackageError, match="provider exists and is a symlink"):
        pkg.extract_to(dest)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in dest.iterdir()) == ["provider"]  # nothing written
    os.unlink(dest / "provider")
    (dest / "main.py").symlink_to(outside / "main.py")
    with pytest.raises(UnsafePackageError, match=re.escape("main.py exists and is a symlink")):
        pkg.extract_to(dest)
    assert list(outside.iterdir()) == []
    os.unlink(dest / "main.py")
    (dest / "main.py").mkdir()
    with pytest.raises(UnsafePackageError, match=re.escape("main.py exists and is not a regular file")):
        pkg.extract_to(dest)


def test_extract_over_a_previous_extraction(tmp_path: Path) -> None:
    pkg = PluginPackage.from_bytes(good_package())
    pkg.extract_to(tmp_path)
    (tmp_path / "main.py").write_bytes(b"changed")
    pkg.extract_to(tmp_path)
    assert (tmp_path / "main.py").read_bytes() == plugin_files()["main.py"]
