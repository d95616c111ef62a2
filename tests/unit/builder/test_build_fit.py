"""Leaving dependencies' bytecode out so an artifact fits Lambda's unzipped limit (pure, no I/O)."""

from __future__ import annotations

from pathlib import Path

from dify_lambda.packaging.build.artifact import ArtifactEntry, drop_bytecode_to_fit

SRC = Path("unused")


def entry(name: str, size: int, part: str = "dependencies") -> ArtifactEntry:
    return ArtifactEntry(name, SRC, size, False, part)


ENTRIES = [
    entry("plugin/main.py", 10, "plugin"),
    entry("plugin/__pycache__/main.cpython-312.pyc", 10, "plugin"),
    entry("big/__init__.py", 100),
    entry("big/__pycache__/__init__.cpython-312.pyc", 60),
    entry("mid/__init__.py", 50),
    entry("mid/__pycache__/__init__.cpython-312.pyc", 30),
    entry("small/__pycache__/x.cpython-312.pyc", 5),
]
TOTAL = sum(e.size for e in ENTRIES)


def test_an_artifact_that_fits_is_unchanged() -> None:
    kept, dropped = drop_bytecode_to_fit(ENTRIES, TOTAL)
    assert (kept, dropped) == (ENTRIES, [])


def test_biggest_bytecode_goes_first_and_only_as_much_as_needed() -> None:
    kept, dropped = drop_bytecode_to_fit(ENTRIES, TOTAL - 1)
    assert dropped == ["big"]
    assert [e.arcname for e in ENTRIES if e not in kept] == ["big/__pycache__/__init__.cpython-312.pyc"]
    kept, dropped = drop_bytecode_to_fit(ENTRIES, TOTAL - 61)
    assert dropped == ["big", "mid"]
    assert sum(e.size for e in kept) <= TOTAL - 61


def test_sources_and_the_plugins_own_bytecode_stay() -> None:
    kept, _ = drop_bytecode_to_fit(ENTRIES, TOTAL - 95)
    names = {e.arcname for e in kept}
    assert {"plugin/main.py", "plugin/__pycache__/main.cpython-312.pyc", "big/__init__.py"} <= names


def test_nothing_is_dropped_when_even_all_bytecode_would_not_do() -> None:
    kept, dropped = drop_bytecode_to_fit(ENTRIES, TOTAL - 96)
    assert (kept, dropped) == (ENTRIES, [])
