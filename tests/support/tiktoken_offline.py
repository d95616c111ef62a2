"""tiktoken's gpt2 files without reaching tiktoken's download host (this test machine has no route to it).

The openai-whisper sdist on PyPI ships ``whisper/assets/gpt2.tiktoken`` (token bytes and ranks); from it
the two files tiktoken's ``gpt2`` encoding loads, ``vocab.bpe`` and ``encoder.json``, are rebuilt byte
for byte: the GPT-2 byte-to-unicode table, each merge recovered by re-running BPE on the token with
lower ranks only. The result is checked against the SHA-256 tiktoken itself checks, so a wrong rebuild
cannot pass. Files are written under tiktoken's cache names (the SHA-1 of their URL).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from filelock import FileLock

from dify_lambda.packaging.build.tiktoken_data import ENCODINGS

WHISPER_ASSET = "whisper/assets/gpt2.tiktoken"


def _bytes_to_unicode() -> dict[int, str]:
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _merge_of(token: bytes, rank: int, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    parts = [bytes([b]) for b in token]
    while len(parts) > 2:
        best: tuple[int, int] | None = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < rank and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    if len(parts) != 2:
        raise ValueError(f"token of rank {rank} is not one merge of two lower-ranked tokens")
    return parts[0], parts[1]


def gpt2_files(tiktoken_bpe: bytes) -> dict[str, bytes]:
    """``{"vocab.bpe": ..., "encoder.json": ...}`` rebuilt from a ``gpt2.tiktoken`` file's bytes."""
    ranks: dict[bytes, int] = {}
    for line in tiktoken_bpe.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    table = _bytes_to_unicode()

    def text(b: bytes) -> str:
        return "".join(table[x] for x in b)

    merges = [
        " ".join(text(p) for p in _merge_of(token, rank, ranks))
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1])
        if rank >= 256
    ]
    encoder = {text(token): rank for token, rank in ranks.items()}
    encoder["<|endoftext|>"] = len(ranks)
    return {
        "vocab.bpe": ("#version: 0.2\n" + "\n".join(merges) + "\n").encode(),
        "encoder.json": json.dumps(encoder).encode(),
    }


def _whisper_asset(work: Path) -> bytes:
    sdists = sorted(work.glob("openai_whisper-*.tar.gz")) or sorted(work.glob("openai-whisper-*.tar.gz"))
    if not sdists:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                str(work),
                "--disable-pip-version-check",
                "--quiet",
                "openai-whisper",
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
        sdists = sorted(work.glob("openai*whisper-*.tar.gz"))
    with tarfile.open(sdists[-1]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(WHISPER_ASSET))
        handle = tar.extractfile(member)
        assert handle is not None
        return handle.read()


def gpt2_cache(directory: Path) -> Path:
    """``directory/cache``: tiktoken's gpt2 files under their cache names, verified; made once."""
    cache = directory / "cache"
    wanted = {item.cache_name: item for item in ENCODINGS["gpt2"]}
    directory.mkdir(parents=True, exist_ok=True)
    # Parallel test workers share the directory: one makes the files, the others wait and reuse them.
    with FileLock(directory / ".lock"):
        if all((cache / name).is_file() for name in wanted):
            return cache
        rebuilt = gpt2_files(_whisper_asset(directory))
        cache.mkdir(exist_ok=True)
        for name, item in wanted.items():
            data = rebuilt[item.base_name]
            if hashlib.sha256(data).hexdigest() != item.sha256:
                raise AssertionError(f"rebuilt {item.base_name} does not have tiktoken's SHA-256")
            (cache / name).write_bytes(data)
    return cache
