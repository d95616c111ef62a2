"""``build_package`` / ``write_package`` on real directories."""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from pathlib import Path

import pytest
from support.pkgfactory import plugin_files, write_tree

from dify_lambda.errors import PackageError, PackageTooLargeError, UnsafePackageError
from dify_lambda.packaging.packager import build_package, write_package
from dify_lambda.packaging.reader import PluginPackage


def names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [i.filename for i in zf.infolist()]


def test_same_directory_gives_same_bytes(tmp_path: Path) -> None:
    a = write_tree(tmp_path / "a", plugin_files())
    b = write_tree(tmp_path / "b", plugin_files())
    os.utime(b / "main.py", (1_000_000, 1_000_000))
    (b / "provider" / "tiny.py").chmod(0o755)
    first = build_package(a, exporter=None)
    second = build_package(b, exporter=None)
    assert first.data == second.data
    assert (
        hashlib.sha256(first.data).digest() == hashlib.sha256(build_package(a, exporter=None).data).digest()
    )
    assert names(first.data) == sorted(plugin_files())
    assert first.requirements_source is None
    assert first.ignore_file is None


def test_fixed_exclusions_and_output_file(tmp_path: Path) -> None:
    src = write_tree(
        tmp_path / "p",
        {
            **plugin_files(),
            ".git/config": b"[core]\n",
            "__pycache__/main.cpython-312.pyc": b"\0",
            "provider/__pycache__/x.pyc": b"\0",
            ".venv/bin/python": b"",
            "old.difypkg": b"zip",
            "dist/older.difypkg": b"zip",
        },
    )
    out = src / "tiny.difypkg"
    result = write_package(src, out, exporter=None)
    assert names(out.read_bytes()) == sorted(plugin_files())
    assert result.package.unique_identifier == PluginPackage.open(out).unique_identifier
    # packaging again with the previous output present changes nothing
    assert write_package(src, out, exporter=None).data == result.data


def test_difyignore_semantics(tmp_path: Path) -> None:
    extra = {
        ".difyignore": b"# local files\n*.log\n!keep.log\nscratch/\n/notes.md\n",
        ".gitignore": b"*\n",  # ignored: .difyignore wins
        "a.log": b"x",
        "keep.log": b"x",
        "scratch/tmp.txt": b"x",
        "notes.md": b"x",
        "docs/notes.md": b"x",
    }
    src = write_tree(tmp_path / "p", {**plugin_files(), **extra})
    result = build_package(src, exporter=None)
    got = names(result.data)
    assert result.ignore_file == ".difyignore"
    assert {".difyignore", ".gitignore", "keep.log", "docs/notes.md"} <= set(got)
    assert not {"a.log", "scratch/tmp.txt", "notes.md"} & set(got)


def test_gitignore_fallback(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "p", {**plugin_files(), ".gitignore": b".env\n", ".env": b"SECRET=1\n"})
    result = build_package(src, exporter=None)
    assert result.ignore_file == ".gitignore"
    assert ".env" not in names(result.data)


def test_symlinked_difyignore_is_read_and_not_packaged(tmp_path: Path) -> None:
    # The official repository links each plugin's .difyignore to a common one (gemini does).
    (tmp_path / "common.difyignore").write_text(".env\n")
    src = write_tree(tmp_path / "p", {**plugin_files(), ".env": b"SECRET=1\n"})
    (src / ".difyignore").symlink_to("../common.difyignore")
    result = build_package(src, exporter=None)
    assert result.ignore_file == ".difyignore"
    assert ".env" not in names(result.data)
    assert ".difyignore" not in names(result.data)


def test_dangling_difyignore_falls_back_to_gitignore(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "p", {**plugin_files(), ".gitignore": b".env\n", ".env": b"SECRET=1\n"})
    (src / ".difyignore").symlink_to("../missing")
    result = build_package(src, exporter=None)
    assert result.ignore_file == ".gitignore"
    assert not {".env", ".difyignore"} & set(names(result.data))


def test_size_cap_lists_five_largest(tmp_path: Path) -> None:
    big = {f"_assets/b{i}.bin": os.urandom(300_000 + i) for i in range(6)}
    src = write_tree(tmp_path / "p", {**plugin_files(), **big})
    out = tmp_path / "out.difypkg"
    with pytest.raises(PackageTooLargeError) as info:
        write_package(src, out, max_bytes=1024 * 1024, exporter=None)
    msg = str(info.value)
    assert "over the limit of 1048576 bytes (--max-size 1 MB)" in msg
    assert "largest files: _assets/b5.bin (293.0 KB), _assets/b4.bin" in msg
    assert "_assets/b0.bin" not in msg  # only five
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_symlink_is_refused(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "p", plugin_files())
    (tmp_path / "secret").write_text("s")
    (src / "_assets" / "link.txt").symlink_to(tmp_path / "secret")
    with pytest.raises(UnsafePackageError, match=re.escape("symlink '_assets/link.txt' is not allowed")):
        build_package(src, exporter=None)


def test_ignored_symlink_is_fine(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "p", {**plugin_files(), ".difyignore": b"link\n"})
    (src / "link").symlink_to("/")
    assert "link" not in names(build_package(src, exporter=None).data)


def test_requirements_generated_from_pyproject(tmp_path: Path) -> None:
    files = plugin_files(requirements_dot_txt=None)
    files["pyproject.toml"] = b'[project]\nname = "tiny"\ndependencies = ["dify_plugin>=0.10"]\n'
    src = write_tree(tmp_path / "p", files)
    result = build_package(src, exporter=None)
    assert result.requirements_source == "pyproject.toml [project].dependencies"
    assert result.package.read("requirements.txt") == b"dify_plugin>=0.10\n"
    assert not (src / "requirements.txt").exists()  # generated into the package only


def test_requirements_via_exporter(tmp_path: Path) -> None:
    files = plugin_files(requirements_dot_txt=None)
    files["pyproject.toml"] = b'[project]\nname = "tiny"\n'
    files["uv.lock"] = b"version = 1\n"
    src = write_tree(tmp_path / "p", files)
    seen: list[Path] = []

    def exporter(root: Path) -> bytes:
        seen.append(root)
        return b"dify-plugin==0.10.2\n"

    result = build_package(src, exporter=exporter)
    assert seen == [src]
    assert result.requirements_source == "uv export"
    assert result.package.read("requirements.txt") == b"dify-plugin==0.10.2\n"


def test_invalid_plugin_writes_nothing(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "p", plugin_files(main_dot_py=None))
    out = tmp_path / "o" / "x.difypkg"
    out.parent.mkdir()
    with pytest.raises(PackageError, match=re.escape("main.py not found")):
        write_package(src, out, exporter=None)
    assert list(out.parent.iterdir()) == []


def test_output_directory_must_exist(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "p", plugin_files())
    with pytest.raises(PackageError, match=r"output directory .* does not exist"):
        write_package(src, tmp_path / "missing" / "x.difypkg", exporter=None)
    with pytest.raises(PackageError, match="output path is a directory"):
        write_package(src, tmp_path, exporter=None)


def test_from_directory_matches_package(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "p", {**plugin_files(), ".gitignore": b"*.tmp\n", "x.tmp": b""})
    assert PluginPackage.from_directory(src).checksum == build_package(src, exporter=None).package.checksum
    with pytest.raises(PackageError, match="not a directory"):
        PluginPackage.from_directory(src / "main.py")


def test_real_zip_tools_can_read_it(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "p", plugin_files())
    data = build_package(src, exporter=None).data
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
