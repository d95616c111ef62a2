"""The dependency cache publishes only complete trees; the runtime scan guards the artifact's imports."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dify_lambda.errors import BuildError
from dify_lambda.packaging.build.cache import DependencyCache
from dify_lambda.packaging.build.prune import apply_prune
from dify_lambda.packaging.build.runtime import collect_runtime_files
from dify_lambda.packaging.build.steps import runtime_package_root


def test_populate_then_lookup(tmp_path: Path) -> None:
    cache = DependencyCache(tmp_path)
    assert cache.lookup("k") is None

    def produce(tree: Path) -> dict[str, object]:
        (tree / "mod.py").write_text("x = 1\n")
        return {"distributions": []}

    first = cache.populate("k", produce)
    assert first.hit is False
    found = cache.lookup("k")
    assert found is not None and found.hit is True
    assert (found.root / "mod.py").read_text() == "x = 1\n"


def test_concurrent_obtain_produces_a_key_once(tmp_path: Path) -> None:
    produced: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def produce(tree: Path) -> dict[str, object]:
        produced.append(threading.current_thread().name)
        inside.set()
        release.wait(30)
        (tree / "mod.py").write_text("x = 1\n")
        return {"distributions": []}

    results: dict[str, Path] = {}

    def build(name: str) -> None:
        results[name] = DependencyCache(tmp_path).obtain("k", produce).root

    first = threading.Thread(target=build, args=("first",), name="first")
    first.start()
    assert inside.wait(30)
    second = threading.Thread(target=build, args=("second",), name="second")
    second.start()
    release.set()
    first.join(30)
    second.join(30)
    assert produced == ["first"]
    assert results["first"] == results["second"]
    assert (results["second"] / "mod.py").read_text() == "x = 1\n"


def test_failed_population_leaves_nothing(tmp_path: Path) -> None:
    cache = DependencyCache(tmp_path)

    def produce(tree: Path) -> dict[str, object]:
        (tree / "half.py").write_text("")
        raise BuildError("pip failed")

    with pytest.raises(BuildError):
        cache.populate("k", produce)
    assert cache.lookup("k") is None
    assert list((tmp_path / "deps").iterdir()) == []


def test_apply_prune_on_a_tree(tmp_path: Path) -> None:
    for rel in (
        "bin/flask",
        "pkg/__init__.py",
        "pkg/tests/test_a.py",
        "pkg/__pycache__/x.pyc",
        "a-1.dist-info/RECORD",
    ):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("data\n")
    result = apply_prune(tmp_path)
    assert sorted(result.removed) == ["bin/", "pkg/__pycache__/", "pkg/tests/"]
    assert result.bytes_removed == 15
    assert (tmp_path / "pkg/__init__.py").exists()
    assert (tmp_path / "a-1.dist-info/RECORD").exists()


def test_real_runtime_slice() -> None:
    runtime = collect_runtime_files(runtime_package_root())
    names = set(runtime.files)
    assert {
        "dify_lambda/__init__.py",
        "dify_lambda/errors.py",
        "dify_lambda/wire.py",
        "dify_lambda/py.typed",
    } <= names
    assert "dify_lambda/handlers/exec_wrapper.sh" in names
    assert all(n.startswith("dify_lambda/handlers/") or n.count("/") == 1 for n in names)
    assert "aws_lambda_powertools" in runtime.third_party


def _fake_package(root: Path, handler_source: str) -> Path:
    pkg = root / "dify_lambda"
    (pkg / "handlers").mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "wire.py", "py.typed"):
        (pkg / name).write_text("")
    (pkg / "handlers/__init__.py").write_text("")
    (pkg / "handlers/app.py").write_text(handler_source)
    return pkg


def test_runtime_importing_a_host_part_fails_the_build(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path, "from dify_lambda.router import client\n")
    with pytest.raises(BuildError, match=r"dify_lambda/handlers/app\.py imports dify_lambda\.router"):
        collect_runtime_files(pkg)


def test_missing_runtime_file(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path, "")
    (pkg / "wire.py").unlink()
    with pytest.raises(BuildError, match=r"dify_lambda/wire\.py is missing"):
        collect_runtime_files(pkg)
