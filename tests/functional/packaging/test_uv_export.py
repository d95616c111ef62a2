"""The ``uv export`` path, run against a stand-in ``uv`` executable (a small script we own)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from support.pkgfactory import plugin_files, write_tree

from dify_lambda.errors import PackageError
from dify_lambda.packaging.errors import RequirementError
from dify_lambda.packaging.packager import build_package
from dify_lambda.packaging.requirements import UV_EXPORT_ARGS, uv_exporter

FAKE_UV = """#!{python}
import os, sys
with open(os.path.join(os.getcwd(), "..", "uv-args.txt"), "w") as fh:
    fh.write(" ".join(sys.argv[1:]))
if os.path.exists("hostile"):
    sys.stdout.write("dify-plugin==0.10.2\\n-e ./SECRET\\n")
    sys.exit(0)
if os.path.exists("fail"):
    sys.stderr.write("error: the lockfile needs to be updated\\n")
    sys.exit(2)
sys.stdout.write("dify-plugin==0.10.2\\nhttpx==0.28.1\\n")
"""


@pytest.fixture
def fake_uv(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "uv"
    path.parent.mkdir()
    path.write_text(FAKE_UV.format(python=sys.executable))
    path.chmod(0o755)
    return path


def plugin_with_lock(root: Path) -> Path:
    files = plugin_files(requirements_dot_txt=None)
    files["pyproject.toml"] = b'[project]\nname = "tiny"\n'
    files["uv.lock"] = b"version = 1\n"
    return write_tree(root, files)


def test_uv_export_is_run_in_the_plugin_directory(tmp_path: Path, fake_uv: Path) -> None:
    src = plugin_with_lock(tmp_path / "p")
    result = build_package(src, exporter=uv_exporter(str(fake_uv)))
    assert result.requirements_source == "uv export"
    assert result.package.read("requirements.txt") == b"dify-plugin==0.10.2\nhttpx==0.28.1\n"
    assert (tmp_path / "uv-args.txt").read_text() == " ".join(UV_EXPORT_ARGS)
    assert "--frozen --format requirements.txt --no-group dev --no-emit-project" in " ".join(UV_EXPORT_ARGS)


def test_uv_export_failure_is_one_line(tmp_path: Path, fake_uv: Path) -> None:
    src = plugin_with_lock(tmp_path / "p")
    (src / "fail").write_text("")
    with pytest.raises(PackageError, match=re.escape("uv export failed in ")) as info:
        build_package(src, exporter=uv_exporter(str(fake_uv)))
    assert str(info.value).endswith(": error: the lockfile needs to be updated")


def test_uv_export_output_passes_the_requirements_gate(tmp_path: Path, fake_uv: Path) -> None:
    src = plugin_with_lock(tmp_path / "p")
    (src / "hostile").write_text("")
    with pytest.raises(RequirementError) as info:
        build_package(src, exporter=uv_exporter(str(fake_uv)))
    assert str(info.value) == (
        "uv export:2: pip options are not accepted in requirements: indexes, links and constraints come "
        "from the build command (--index-url, --extra-index-url, --find-links)"
    )
