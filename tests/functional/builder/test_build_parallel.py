"""Parallel work in the build gives the same bytes as serial work: compile shards, deflate pack."""

from __future__ import annotations

import marshal
import subprocess
import zipfile
from pathlib import Path

import pytest

from dify_lambda.packaging.build.artifact import pack_only_entries, predeflate, tree_entries, write_zip
from dify_lambda.packaging.build.compile import ShardedCompile, compile_tree
from dify_lambda.packaging.build.smoke import unpack_parent
from dify_lambda.packaging.build.zipwrite import DeflatePack
from dify_lambda.packaging.interpreters import find_interpreter

#: Modules sharing names and constants, so marshal's reference flags have history to depend on.
SOURCE = """
NAMES = {{"alpha", "beta", "gamma", "{i}"}}
TABLE = ("shared", "strings", "here", {i}, {i} * 2.5)


class Thing{i}:
    kind = "shared"

    def method(self, alpha: str = "beta") -> tuple[str, ...]:
        return tuple(sorted(NAMES | {{alpha, "strings"}}))


def helper_{i}(x: int) -> dict[str, int]:
    return {{"shared": x, "here": x + {i}, "gamma": len(TABLE)}}
"""


def _tree(root: Path, count: int = 60) -> Path:
    for i in range(count):
        pkg = root / f"pkg{i % 4}" / ("sub" if i % 3 else "")
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text("from . import *\n")
        (pkg / f"mod{i:02}.py").write_text(SOURCE.format(i=i))
    return root


def _pyc(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.pyc"))}


def test_parallel_compile_gives_the_serial_bytes(tmp_path: Path) -> None:
    python = find_interpreter("3.12")
    if python is None:
        pytest.skip("no local python3.12")
    outputs = []
    for name, workers in (("serial", 1), ("parallel", 4), ("again", 3)):
        root = _tree(tmp_path / name)
        result = compile_tree(root, python, workers=workers, min_shard_bytes=2000)
        assert result.status == "compiled", result.note
        outputs.append(_pyc(root))
    assert len(outputs[0]) == 60 + 8  # every module and package __init__
    assert outputs[0] == outputs[1] == outputs[2]


def test_a_file_that_does_not_compile_leaves_the_others_compiled(tmp_path: Path) -> None:
    python = find_interpreter("3.12")
    if python is None:
        pytest.skip("no local python3.12")
    root = _tree(tmp_path / "t", 12)
    (root / "pkg0" / "broken.py").write_text("def (:\n")
    result = compile_tree(root, python, workers=2, min_shard_bytes=500)
    assert result.status == "partial"
    assert "1 file(s) did not compile" in result.note
    assert len(_pyc(root)) == 12 + 8


def test_zip_from_the_deflate_pack_equals_a_zip_deflated_afresh(tmp_path: Path) -> None:
    root = _tree(tmp_path / "site-packages", 20)
    (root / "blob.bin").write_bytes(bytes(range(256)) * 500)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    predeflate(root, [files[:7], files[7:]])
    pack = DeflatePack.open(root, 6)
    assert pack is not None and len(pack.index) == len(files)
    entries = tree_entries(root, "dependencies")
    packed = write_zip(entries, tmp_path / "packed.zip", root)
    fresh = write_zip(entries, tmp_path / "fresh.zip")
    assert packed == fresh
    assert (tmp_path / "packed.zip").read_bytes() == (tmp_path / "fresh.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "packed.zip") as zf:
        assert zf.testzip() is None


def test_a_changed_file_is_not_taken_from_the_pack(tmp_path: Path) -> None:
    root = _tree(tmp_path / "site-packages", 4)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    predeflate(root, [files])
    files[0].write_text("changed = True  # longer than before\n")
    entries = tree_entries(root, "dependencies")
    write_zip(entries, tmp_path / "a.zip", root)
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.read(files[0].relative_to(root).as_posix()) == b"changed = True  # longer than before\n"


def test_smoke_unpacks_in_memory_only_with_room(tmp_path: Path) -> None:
    assert unpack_parent(1, tmp_path / "missing") is None
    assert unpack_parent(1, tmp_path) == tmp_path
    assert unpack_parent(1 << 62, tmp_path) is None


def test_in_memory_shards_equal_the_written_pyc_and_point_at_the_task_root(tmp_path: Path) -> None:
    python = find_interpreter("3.12")
    if python is None:
        pytest.skip("no local python3.12")
    root = _tree(tmp_path / "t", 16)
    job = ShardedCompile(root, python, workers=2, min_shard_bytes=1000)
    in_memory = dict(item for shard in job.outputs() for item in shard)
    assert job.result().status == "compiled"
    compile_tree(root, python, workers=1, min_shard_bytes=1000)
    assert in_memory == _pyc(root)
    pyc = in_memory["pkg0/__pycache__/mod00.cpython-312.pyc"]
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, unchecked
    assert marshal.loads(pyc[16:]).co_filename == "/var/task/pkg0/mod00.py"


def test_pack_only_pyc_go_into_the_zip(tmp_path: Path) -> None:
    root = _tree(tmp_path / "site-packages", 3)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    predeflate(root, [files, [("pkg0/__pycache__/mod00.cpython-312.pyc", b"not really a pyc")]])
    entries = tree_entries(root, "dependencies") + pack_only_entries(root, "dependencies")
    assert [e.arcname for e in pack_only_entries(root, "dependencies")] == [
        "pkg0/__pycache__/mod00.cpython-312.pyc"
    ]
    write_zip(entries, tmp_path / "a.zip", root)
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.read("pkg0/__pycache__/mod00.cpython-312.pyc") == b"not really a pyc"
        assert zf.testzip() is None


def test_a_shard_process_that_dies_leaves_a_partial_status(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t", 2)

    def dies(cmd: list[str], env: dict[str, str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
        assert env["PYTHONHASHSEED"] == "0"
        assert stdin.split(b"\0")[0] == b"pkg0/__init__.py"
        return subprocess.CompletedProcess(cmd, -11, b"", b"Segmentation fault")

    result = compile_tree(root, Path("/no/python"), runner=dies)
    assert result.status == "partial"
    assert "Segmentation fault" in result.note
    assert _pyc(root) == {}


def test_a_zip64_artifact_takes_pack_only_entries_from_the_pack(tmp_path: Path) -> None:
    root = tmp_path / "site-packages"
    root.mkdir()
    names = [f"m{i:05}.pyc" for i in range(0xFFFF)]
    predeflate(root, [[(name, name.encode()) for name in names]])
    entries = pack_only_entries(root, "dependencies")
    assert len(entries) == 0xFFFF
    write_zip(entries, tmp_path / "big.zip", root)
    with zipfile.ZipFile(tmp_path / "big.zip") as zf:
        assert zf.read("m00000.pyc") == b"m00000.pyc"
        assert zf.read(names[-1]) == names[-1].encode()
