"""Entry-name rules and the per-entry cap of the zip decoder."""

from __future__ import annotations

import re

import pytest
from support.pkgfactory import good_package

from dify_lambda.errors import ManifestError, PackageTooLargeError
from dify_lambda.packaging.limits import ReadLimits, five_largest, format_size
from dify_lambda.packaging.manifest import load_yaml
from dify_lambda.packaging.reader import PluginPackage
from dify_lambda.packaging.zipread import check_entry_name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("main.py", None),
        ("models/llm/llm.yaml", None),
        ("provider/", None),
        (".verification.dify.json", None),
        ("", "empty entry name"),
        ("a" * 1025, "entry name longer than 1024 characters"),
        ("a\x00b", "control character in entry name"),
        ("a\nb", "control character in entry name"),
        ("a\\b", "backslash in entry name (Windows path trick)"),
        ("/abs", "absolute path"),
        ("c:evil", "absolute path"),
        ("Z:/evil", "absolute path"),
        ("..", "path traversal ('..')"),
        ("a/../b", "path traversal ('..')"),
        ("a/./b", "non-canonical path ('.' or empty segment)"),
        ("a//b", "non-canonical path ('.' or empty segment)"),
        ("a//", "non-canonical path ('.' or empty segment)"),
    ],
)
def test_entry_names(name: str, problem: str | None) -> None:
    assert check_entry_name(name) == problem


def test_per_entry_cap() -> None:
    data = good_package(_assets__big_dot_bin=bytes(range(256)) * 1024)
    limits = ReadLimits(max_entry_bytes=100_000)
    with pytest.raises(
        PackageTooLargeError, match=re.escape("entry '_assets/big.bin' exceeds the per-entry limit of 100000")
    ):
        PluginPackage.from_bytes(data, limits=limits)


def test_yaml_limits_and_encoding() -> None:
    with pytest.raises(
        ManifestError, match=re.escape("x.yaml: YAML file is 11 bytes, over the 10-byte limit")
    ):
        load_yaml(b"a: 12345678", "x.yaml", max_bytes=10)
    with pytest.raises(ManifestError, match=re.escape("x.yaml: not UTF-8 text (byte 3)")):
        load_yaml(b"a: \xff", "x.yaml", max_bytes=100)
    with pytest.raises(ManifestError, match=re.escape("x.yaml: invalid YAML")):
        load_yaml(b"a: !!python/object:os.system x", "x.yaml", max_bytes=100)
    assert load_yaml(b"a: [1, 2]", "x.yaml", max_bytes=100) == {"a": [1, 2]}


def test_size_helpers() -> None:
    assert format_size(512) == "512 B"
    assert format_size(1536) == "1.5 KB"
    assert format_size(3 * 1024 * 1024) == "3.0 MB"
    sizes = [("a", 1), ("b", 5), ("c", 5), ("d", 2), ("e", 3), ("f", 4)]
    assert five_largest(sizes) == "b (5 B), c (5 B), f (4 B), e (3 B), d (2 B)"
