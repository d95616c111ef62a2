"""tiktoken's encoding files: tiktoken's own URLs and checksums; taken offline, from the cache or fetched."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import pytest

from dify_lambda.packaging.build.tiktoken_data import (
    ENCODINGS,
    TiktokenDataError,
    TiktokenFetchError,
    check_encodings,
    collect_tiktoken_files,
)

GPT2 = ENCODINGS["gpt2"]


def test_urls_and_checksums_are_tiktokens_own() -> None:
    # The installed tiktoken (a dify_plugin dependency) names each file with the hash it checks.
    spec = importlib.util.find_spec("tiktoken_ext.openai_public")
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).read_text("utf-8")
    theirs = dict(re.findall(r'"(https://[^"]+)",\s*(?:expected_hash=|\w+_hash=)?"([0-9a-f]{64})"', source))
    gpt2 = re.search(
        r'vocab_bpe_file="([^"]+)",\s*encoder_json_file="([^"]+)",\s*'
        r'vocab_bpe_hash="([0-9a-f]{64})",\s*encoder_json_hash="([0-9a-f]{64})"',
        source,
    )
    assert gpt2 is not None
    theirs[gpt2.group(1)] = gpt2.group(3)
    theirs[gpt2.group(2)] = gpt2.group(4)
    ours = {item.url: item.sha256 for files in ENCODINGS.values() for item in files}
    assert ours.items() <= theirs.items()
    assert len(ours) == 6


def test_cache_names_are_the_sha1_of_the_url() -> None:
    for item in GPT2:
        assert item.cache_name == hashlib.sha1(item.url.encode()).hexdigest()


def test_gpt2_always_then_the_requested_ones() -> None:
    assert check_encodings([]) == ("gpt2",)
    assert check_encodings(["o200k_base", "gpt2", "cl100k_base", "o200k_base"]) == (
        "gpt2",
        "o200k_base",
        "cl100k_base",
    )
    with pytest.raises(TiktokenDataError, match=r"--tiktoken-encoding 'p99k' is not .*cl100k_base"):
        check_encodings(["p99k"])


def test_local_dir_by_cache_name_or_base_name(tiktoken_gpt2: Path, tmp_path: Path) -> None:
    by_base = tmp_path / "by-base"
    by_base.mkdir()
    for item in GPT2:
        (by_base / item.base_name).write_bytes((tiktoken_gpt2 / item.cache_name).read_bytes())
    for local in (tiktoken_gpt2, by_base):
        got = collect_tiktoken_files(("gpt2",), local=local, store=tmp_path / "store", fetch=_no_network)
        assert sorted(got.files) == sorted(item.cache_name for item in GPT2)
        assert got.source == f"--tiktoken-cache {local}"
    assert not (tmp_path / "store").exists()


def test_local_dir_with_a_wrong_or_missing_file(tiktoken_gpt2: Path, tmp_path: Path) -> None:
    vocab, encoder = GPT2
    (tmp_path / vocab.base_name).write_bytes(b"#version: 0.2\nnot the real merges\n")
    with pytest.raises(TiktokenDataError, match=r"vocab\.bpe does not have the SHA-256 tiktoken expects"):
        collect_tiktoken_files(("gpt2",), local=tmp_path, store=tmp_path / "s", fetch=_no_network)
    (tmp_path / vocab.base_name).write_bytes((tiktoken_gpt2 / vocab.cache_name).read_bytes())
    with pytest.raises(TiktokenDataError) as info:
        collect_tiktoken_files(("gpt2",), local=tmp_path, store=tmp_path / "s", fetch=_no_network)
    assert str(info.value) == (
        f"--tiktoken-cache {tmp_path}: neither encoder.json nor {encoder.cache_name} (tiktoken's cache "
        "name for it) is in it"
    )


def _no_network(url: str) -> bytes:
    raise OSError(f"no route to {url.split('/')[2]}")


def test_fetched_once_then_served_from_the_dependency_cache(tiktoken_gpt2: Path, tmp_path: Path) -> None:
    fetched: list[str] = []
    by_url = {item.url: (tiktoken_gpt2 / item.cache_name).read_bytes() for item in GPT2}

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return by_url[url]

    store = tmp_path / "store"
    first = collect_tiktoken_files(("gpt2",), local=None, store=store, fetch=fetch)
    assert first.source == "fetched"
    assert sorted(fetched) == sorted(by_url)
    second = collect_tiktoken_files(("gpt2",), local=None, store=store, fetch=_no_network)
    assert second.source == "dependency cache"
    assert second.files == first.files
    assert first.size == sum(len(b) for b in by_url.values())


def test_no_way_to_get_them_names_both_ways(tmp_path: Path) -> None:
    with pytest.raises(TiktokenFetchError) as info:
        collect_tiktoken_files(("gpt2",), local=None, store=tmp_path, fetch=_no_network)
    text = str(info.value)
    assert "\n" not in text
    assert "could not be fetched from openaipublic.blob.core.windows.net" in text
    assert "--tiktoken-cache DIR" in text and "--no-tiktoken-data" in text


def test_a_corrupt_download_is_refused_and_not_kept(tmp_path: Path) -> None:
    with pytest.raises(TiktokenFetchError, match="does not have the SHA-256 tiktoken expects"):
        collect_tiktoken_files(
            ("gpt2",), local=None, store=tmp_path, fetch=lambda _url: b"<html>proxy</html>"
        )
    assert list(tmp_path.iterdir()) == []
