"""Requirement selection, normalization and the cache key (pure)."""

from __future__ import annotations

import pytest

from dify_lambda.errors import DependencyResolutionError
from dify_lambda.packaging.build.requirements import cache_key, combined, normalize_lines, select_requirements


def reader(files: dict[str, str]):
    return lambda name: files[name].encode() if name in files else None


def test_normalize_drops_comments_and_blank_lines() -> None:
    text = "# header\n\ndify_plugin>=0.10,<0.11   # the SDK\n  httpx  ==  0.28.1\n"
    assert normalize_lines(text) == ("dify_plugin>=0.10,<0.11", "httpx == 0.28.1")


@pytest.mark.parametrize(
    "line", ["-e .", "--index-url https://x", "-r other.txt", "--extra-index-url=https://x"]
)
def test_options_that_escape_the_build_are_rejected(line: str) -> None:
    with pytest.raises(DependencyResolutionError, match=r"requirements\.txt:2: option"):
        normalize_lines("dify_plugin\n" + line)


def test_requirements_txt_wins_over_uv_lock() -> None:
    chosen = select_requirements(reader({"requirements.txt": "dify_plugin\n", "uv.lock": "garbage"}))
    assert chosen.source == "requirements.txt"
    assert chosen.lines == ("dify_plugin",)


def test_uv_lock_closure_is_pinned() -> None:
    lock = """
version = 1
[[package]]
name = "demo"
version = "0.1.0"
source = { virtual = "." }
dependencies = [{ name = "dify-plugin" }]
[package.dev-dependencies]
dev = [{ name = "pytest" }]

[[package]]
name = "dify-plugin"
version = "0.10.2"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "httpx" }]

[[package]]
name = "httpx"
version = "0.28.1"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pytest"
version = "8.0.0"
source = { registry = "https://pypi.org/simple" }
"""
    chosen = select_requirements(reader({"uv.lock": lock, "pyproject.toml": '[project]\nname = "demo"\n'}))
    assert chosen.source == "uv.lock"
    assert chosen.lines == ("dify-plugin==0.10.2", "httpx==0.28.1")


def test_pyproject_dependencies_when_nothing_else() -> None:
    pyproject = '[project]\nname = "demo"\ndependencies = ["dify_plugin>=0.10,<0.11", "httpx"]\n'
    chosen = select_requirements(reader({"pyproject.toml": pyproject}))
    assert chosen.source == "pyproject.toml"
    assert chosen.lines == ("dify_plugin>=0.10,<0.11", "httpx")


def test_no_requirement_source_is_an_error() -> None:
    with pytest.raises(DependencyResolutionError, match=r"no requirements\.txt, uv\.lock or pyproject\.toml"):
        select_requirements(reader({}))


def test_combined_appends_runtime_lines_once() -> None:
    assert combined(["a", "b"], ["b", "c"]) == ("a", "b", "c")


def test_cache_key_ignores_order_and_whitespace() -> None:
    assert cache_key(["a", "b  >=1"], "3.12", "x86_64") == cache_key(["b >=1", "a"], "3.12", "x86_64")


@pytest.mark.parametrize(
    "changed",
    [
        (["a", "c"], "3.12", "x86_64"),
        (["a", "b"], "3.13", "x86_64"),
        (["a", "b"], "3.12", "arm64"),
    ],
)
def test_cache_key_changes_with_each_input(changed: tuple[list[str], str, str]) -> None:
    assert cache_key(*changed) != cache_key(["a", "b"], "3.12", "x86_64")


def test_cache_key_changes_with_extra() -> None:
    base = cache_key(["a"], "3.12", "x86_64", {"compile": "True"})
    assert base != cache_key(["a"], "3.12", "x86_64", {"compile": "False"})
