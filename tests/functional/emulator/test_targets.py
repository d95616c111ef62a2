"""``serve`` targets: hand-made artifacts (zip and unpacked) run through the exec wrapper; bad paths."""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
from pathlib import Path

import httpx
import pytest

from dify_lambda.emulator import ServeTargetError, serve
from dify_lambda.emulator.target import resolve_target
from dify_lambda.errors import UnsafePackageError
from dify_lambda.packaging.interpreters import find_interpreter

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = 'name: stub\nauthor: tester\nmeta:\n  runner:\n    version: "3.12"\n'
needs_312 = pytest.mark.skipif(find_interpreter("3.12") is None, reason="no local Python 3.12")


def _artifact_tree(dest: Path) -> Path:
    """The artifact layout of docs/architecture.md, with a stub app instead of a plugin runtime."""
    pkg = dest / "dify_lambda"
    (pkg / "handlers").mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "py.typed"):
        shutil.copy(ROOT / "dify_lambda" / name, pkg / name)
    for name in ("__init__.py", "http.py", "stream.py", "runtime_api.py", "exec_wrapper.sh"):
        shutil.copy2(ROOT / "dify_lambda" / "handlers" / name, pkg / "handlers" / name)
    shutil.copy(ROOT / "tests" / "support" / "stub_apps.py", dest / "stub_apps.py")
    (dest / "plugin").mkdir()
    (dest / "plugin" / "manifest.yaml").write_text(MANIFEST)
    return dest


def _zip(tree: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(tree)))
                info.external_attr = (stat.S_IFREG | (path.stat().st_mode & 0o777)) << 16
                zf.writestr(info, path.read_bytes())
    return archive


@needs_312
@pytest.mark.parametrize("form", ["directory", "zip", "build-dir"])
def test_artifact_runs_through_the_exec_wrapper(tmp_path: Path, form: str) -> None:
    tree = _artifact_tree(tmp_path / "tree")
    if form == "directory":
        path = tree
    elif form == "zip":
        path = _zip(tree, tmp_path / "function.zip")
    else:
        path = tmp_path / "build"
        path.mkdir()
        _zip(tree, path / "artifact.zip")
        (path / "build-report.json").write_text(json.dumps({"python": "3.12"}))
    env = {"DIFY_LAMBDA_APP_FACTORY": "stub_apps:create"}
    with serve(path, env=env) as fn, httpx.Client(timeout=60) as client:
        assert fn.plugin_id == "tester/stub"
        extracted = fn.target.root
        doc = client.get(fn.url + "/echo").json()
        assert client.get(fn.url + "/ok").content == b"hello world"
    assert doc["trace"].startswith("Root=1-")
    if form == "directory":
        assert extracted == tree
    else:
        assert not extracted.exists()  # the extraction is deleted on close


def test_zip_entries_escaping_the_root_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../outside.txt", b"x")
    with pytest.raises(UnsafePackageError, match=r"\.\./outside\.txt"):
        resolve_target(archive)
    assert not (tmp_path / "outside.txt").exists()


def test_zip_symlinks_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("plugin")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc")
    with pytest.raises(UnsafePackageError, match="symbolic link"):
        resolve_target(archive)


def test_wrapper_without_exec_bit_is_refused(tmp_path: Path) -> None:
    tree = _artifact_tree(tmp_path / "tree")
    (tree / "dify_lambda" / "handlers" / "exec_wrapper.sh").chmod(0o644)
    if find_interpreter("3.12") is None:
        pytest.skip("no local Python 3.12")
    with pytest.raises(ServeTargetError, match="not executable"):
        resolve_target(tree)


def test_unknown_python_is_named(tmp_path: Path) -> None:
    tree = _artifact_tree(tmp_path / "tree")
    with pytest.raises(ServeTargetError, match=r"no local Python 3\.99"):
        resolve_target(tree, python="3.99")


def test_a_directory_that_is_neither_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ServeTargetError, match="neither a built artifact"):
        resolve_target(tmp_path)
    with pytest.raises(ServeTargetError, match="no such file"):
        resolve_target(tmp_path / "missing")
