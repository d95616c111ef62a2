"""Checksum and identity. Expected values are derived here from the spec formula (docs/plugin-package.md §2),
written out step by step, not by calling the implementation."""

from __future__ import annotations

import hashlib

from support.pkgfactory import build_zip, plugin_files

from dify_lambda.packaging.identity import compute_checksum
from dify_lambda.packaging.reader import PluginPackage
from dify_lambda.wire import UNIQUE_IDENTIFIER_RE, PluginIdentity


def spec_checksum(files: dict[str, bytes]) -> str:
    """sha256 over, for each path in sorted order, sha256(path) then sha256(content), raw bytes."""
    data = b""
    for path in sorted(files):
        data += hashlib.sha256(path.encode()).digest()
        data += hashlib.sha256(files[path]).digest()
    return hashlib.sha256(data).hexdigest()


def test_checksum_of_two_files_by_hand() -> None:
    a_path, a_body = b"a.txt", b"alpha"
    b_path, b_body = b"b/c.txt", b"beta"
    blob = (
        hashlib.sha256(a_path).digest()
        + hashlib.sha256(a_body).digest()
        + hashlib.sha256(b_path).digest()
        + hashlib.sha256(b_body).digest()
    )
    expected = hashlib.sha256(blob).hexdigest()
    # Input order must not matter: the daemon sorts by path.
    assert compute_checksum([("b/c.txt", b_body), ("a.txt", a_body)]) == expected


def test_checksum_of_empty_set_is_sha256_of_nothing() -> None:
    assert compute_checksum([]) == hashlib.sha256(b"").hexdigest()


def test_checksum_is_byte_order_sorted() -> None:
    # "B" (0x42) sorts before "a" (0x61); "_" (0x5f) sits between upper and lower case.
    files = {"a": b"1", "B": b"2", "_x": b"3"}
    assert compute_checksum(files.items()) == spec_checksum(files)


def test_package_checksum_ignores_zip_order_and_directory_entries() -> None:
    files = plugin_files()
    reversed_pairs = sorted(files.items(), reverse=True)
    with_dirs = [("provider/", b""), ("models/", b""), *reversed_pairs]
    pkg = PluginPackage.from_bytes(build_zip(with_dirs, sort=False))
    assert pkg.checksum == spec_checksum(files)
    assert pkg.entries == sorted(files)
    assert pkg.zip_order == tuple(p for p, _ in reversed_pairs)


def test_identity_strings() -> None:
    files = plugin_files()
    pkg = PluginPackage.from_bytes(build_zip(files))
    checksum = spec_checksum(files)
    assert pkg.plugin_id == "acme/tiny"
    assert pkg.unique_identifier == "acme/tiny:0.0.1@" + checksum
    assert pkg.serverless_filename == "acme@tiny@0.0.1@" + checksum + ".difypkg"
    assert UNIQUE_IDENTIFIER_RE.match(pkg.unique_identifier)


def test_identity_helpers() -> None:
    c = "0" * 64
    identity = PluginIdentity("a", "b", "1.2.3", c)
    assert identity.plugin_id == "a/b"
    assert identity.unique_identifier == f"a/b:1.2.3@{c}"
    assert identity.serverless_filename == str(identity) == f"a@b@1.2.3@{c}.difypkg"
    assert PluginIdentity.from_filename(f"a@b@1.2.3@{c}.difypkg") == identity


def test_unique_identifier_pattern() -> None:
    good = ["langgenius/openai:0.2.5@" + "ab" * 32, "x_y/z-1:1.0.0.1-beta1@" + "f" * 32]
    bad = ["Lang/openai:0.2.5@" + "ab" * 32, "a/b:1@" + "ab" * 32, "a/b:1.0@XYZ", "a/b:1.0.0.0.0@" + "a" * 64]
    assert all(UNIQUE_IDENTIFIER_RE.match(s) for s in good)
    assert not any(UNIQUE_IDENTIFIER_RE.match(s) for s in bad)
