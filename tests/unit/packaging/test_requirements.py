"""requirements.txt generation from uv.lock / pyproject.toml (no subprocess: a fake exporter)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dify_lambda.errors import PackageError
from dify_lambda.packaging.errors import RequirementError
from dify_lambda.packaging.requirements import (
    generate_requirements,
    requirements_from_pyproject,
    requirements_from_uv_lock,
)

UV_LOCK = """
version = 1
requires-python = ">=3.12"

[[package]]
name = "demo-plugin"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "httpx" },
    { name = "dify-plugin" },
    { name = "winonly", marker = "sys_platform == 'win32'" },
]

[package.dev-dependencies]
dev = [{ name = "pytest" }]

[[package]]
name = "httpx"
version = "0.28.1"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "anyio" }, { name = "h2", extra = ["hpack"] }]

[[package]]
name = "anyio"
version = "4.9.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "h2"
version = "4.2.0"
source = { registry = "https://pypi.org/simple" }

[package.optional-dependencies]
hpack = [{ name = "hpack" }]

[[package]]
name = "hpack"
version = "4.1.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "dify-plugin"
version = "0.10.2"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "anyio" }, { name = "colorama", marker = "os_name == 'nt'" }]

[[package]]
name = "colorama"
version = "0.4.6"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "winonly"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "colorama" }]

[[package]]
name = "pytest"
version = "8.3.0"
source = { registry = "https://pypi.org/simple" }
"""


def test_uv_lock_closure() -> None:
    lines = requirements_from_uv_lock(UV_LOCK).splitlines()
    assert lines == [
        "anyio==4.9.0",
        # reached through dify-plugin (os_name) and through winonly (sys_platform)
        "colorama==0.4.6 ; (os_name == 'nt') or (sys_platform == 'win32')",
        "dify-plugin==0.10.2",
        "h2==4.2.0",
        "hpack==4.1.0",  # an extra requested on the httpx -> h2 edge
        "httpx==0.28.1",
        "winonly==1.0 ; sys_platform == 'win32'",
    ]  # no pytest (dev group), no project itself


def test_uv_lock_without_project_is_an_error() -> None:
    with pytest.raises(PackageError, match="the project itself is not in the lock file"):
        requirements_from_uv_lock('version = 1\n[[package]]\nname = "x"\nversion = "1"\n')
    with pytest.raises(PackageError, match=re.escape("uv.lock: invalid TOML")):
        requirements_from_uv_lock("[[package")


def test_uv_lock_project_found_by_name() -> None:
    lock = (
        'version = 1\n[[package]]\nname = "p"\nversion = "1"\ndependencies = [{ name = "q" }]\n'
        '[[package]]\nname = "q"\nversion = "2"\nsource = { registry = "r" }\n'
    )
    assert requirements_from_uv_lock(lock, project="p") == "q==2\n"


def test_pyproject_dependencies() -> None:
    text = '[project]\nname = "p"\ndependencies = ["dify_plugin>=0.10", "httpx"]\n'
    assert requirements_from_pyproject(text) == "dify_plugin>=0.10\nhttpx\n"
    with pytest.raises(RequirementError, match=r"^pyproject\.toml \[project\]\.dependencies entry 1: "):
        requirements_from_pyproject('[project]\ndependencies = ["-r /proc/self/environ"]\n')
    with pytest.raises(PackageError, match=r"\[project\].dependencies must be a list of strings"):
        requirements_from_pyproject("[project]\ndependencies = 3\n")


def test_generation_choices() -> None:
    root = Path("/nonexistent-plugin-root")
    pyproject = b'[project]\nname = "demo-plugin"\ndependencies = ["httpx"]\n'
    calls: list[Path] = []

    def fake_uv(where: Path) -> bytes:
        calls.append(where)
        return b"from-uv==1\n"

    # a requirements.txt present, or no pyproject: nothing generated
    assert (
        generate_requirements(root, {"requirements.txt": b"", "pyproject.toml": pyproject}, exporter=fake_uv)
        is None
    )
    assert generate_requirements(root, {"uv.lock": UV_LOCK.encode()}, exporter=fake_uv) is None
    both = {"pyproject.toml": pyproject, "uv.lock": UV_LOCK.encode()}
    got = generate_requirements(root, both, exporter=fake_uv)
    assert got is not None
    assert (got.content, got.source, calls) == (b"from-uv==1\n", "uv export", [root])
    got = generate_requirements(root, both, exporter=None)
    assert got is not None
    assert got.source == "uv.lock"
    assert got.content.decode() == requirements_from_uv_lock(UV_LOCK)
    with pytest.raises(RequirementError, match=r"^uv\.lock: package winonly comes from a git source"):
        generate_requirements(
            root,
            {
                "pyproject.toml": pyproject,
                "uv.lock": UV_LOCK.replace(
                    'version = "1.0"\nsource = { registry = "https://pypi.org/simple" }',
                    'version = "1.0"\nsource = { git = "https://example.com/w.git" }',
                ).encode(),
            },
            exporter=None,
        )
    got = generate_requirements(root, {"pyproject.toml": pyproject}, exporter=fake_uv)
    assert got is not None
    assert (got.content, got.source) == (b"httpx\n", "pyproject.toml [project].dependencies")
