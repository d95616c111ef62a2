"""tiktoken's encoding files inside the artifact, so token counting needs no network at run time.

tiktoken downloads an encoding's files on first use and keeps them in ``$TIKTOKEN_CACHE_DIR`` under
the SHA-1 of their URL (``tiktoken/load.py: read_file_cached``); with the files already there it never
goes online. The SDK's default token counter uses ``gpt2``, so every build whose dependencies include
tiktoken ships ``gpt2``; ``cl100k_base``/``o200k_base`` (and the older bases) on request.

The URLs and SHA-256 sums below are the ones ``tiktoken_ext/openai_public.py`` names and checks; a
file is shipped only when its bytes match. Files come from, in order: ``--tiktoken-cache DIR`` (offline
builds: a directory holding them under their cache name, as tiktoken writes them, or under their URL's
base name), else the dependency cache's ``tiktoken/`` directory, else a download from the canonical URL
(stored in the dependency cache for the next build).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dify_lambda.errors import BuildError
from dify_lambda.wire import LAMBDA_TASK_ROOT

__all__ = [
    "DEFAULT_ENCODINGS",
    "ENCODINGS",
    "TIKTOKEN_ARTIFACT_DIR",
    "TIKTOKEN_CACHE_ENV",
    "TIKTOKEN_LAMBDA_DIR",
    "TiktokenDataError",
    "TiktokenFetchError",
    "TiktokenFile",
    "TiktokenFiles",
    "check_encodings",
    "collect_tiktoken_files",
    "default_tiktoken_cache",
    "files_for",
]

#: Directory of the files in the artifact; the template sets ``TIKTOKEN_CACHE_DIR=/var/task/<this>``.
TIKTOKEN_ARTIFACT_DIR = "tiktoken_cache"
#: ``TIKTOKEN_CACHE_DIR`` of the function: where the files are on Lambda.
TIKTOKEN_LAMBDA_DIR = f"{LAMBDA_TASK_ROOT}/{TIKTOKEN_ARTIFACT_DIR}"
#: Default of ``--tiktoken-cache`` (a directory with the files, for offline builds).
TIKTOKEN_CACHE_ENV = "DIFY_LAMBDA_TIKTOKEN_CACHE"
#: Shipped whenever tiktoken is a dependency: the SDK's default token counter uses it.
DEFAULT_ENCODINGS = ("gpt2",)
_BASE = "https://openaipublic.blob.core.windows.net"
_FETCH_TIMEOUT = 120


class TiktokenDataError(BuildError):
    """tiktoken's files are missing from ``--tiktoken-cache`` or do not match tiktoken's checksums."""


class TiktokenFetchError(TiktokenDataError):
    """tiktoken's encoding files could not be downloaded (a failed operation, not bad input)."""


@dataclass(frozen=True, slots=True)
class TiktokenFile:
    url: str
    sha256: str

    @property
    def cache_name(self) -> str:
        """The file name tiktoken looks for in ``TIKTOKEN_CACHE_DIR`` (``read_file_cached``)."""
        return hashlib.sha1(self.url.encode()).hexdigest()

    @property
    def base_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


#: Encoding -> its files, as tiktoken_ext/openai_public.py lists them (same URLs, same SHA-256).
ENCODINGS: Mapping[str, tuple[TiktokenFile, ...]] = {
    "gpt2": (
        TiktokenFile(
            f"{_BASE}/gpt-2/encodings/main/vocab.bpe",
            "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        ),
        TiktokenFile(
            f"{_BASE}/gpt-2/encodings/main/encoder.json",
            "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        ),
    ),
    "r50k_base": (
        TiktokenFile(
            f"{_BASE}/encodings/r50k_base.tiktoken",
            "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
        ),
    ),
    "p50k_base": (
        TiktokenFile(
            f"{_BASE}/encodings/p50k_base.tiktoken",
            "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
        ),
    ),
    "cl100k_base": (
        TiktokenFile(
            f"{_BASE}/encodings/cl100k_base.tiktoken",
            "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        ),
    ),
    "o200k_base": (
        TiktokenFile(
            f"{_BASE}/encodings/o200k_base.tiktoken",
            "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        ),
    ),
}


def check_encodings(names: Iterable[str]) -> tuple[str, ...]:
    """The default encodings plus ``names``, deduplicated in order; an unknown name is an error."""
    out: list[str] = list(DEFAULT_ENCODINGS)
    for name in names:
        if name not in ENCODINGS:
            raise TiktokenDataError(
                f"--tiktoken-encoding {name!r} is not a tiktoken encoding with published files: "
                f"use one of {', '.join(ENCODINGS)}"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def files_for(encodings: Iterable[str]) -> list[TiktokenFile]:
    seen: dict[str, TiktokenFile] = {}
    for name in encodings:
        for item in ENCODINGS[name]:
            seen.setdefault(item.cache_name, item)
    return list(seen.values())


@dataclass(frozen=True, slots=True)
class TiktokenFiles:
    """Verified files to ship: cache name -> local path; ``source`` says where they came from."""

    encodings: tuple[str, ...]
    files: Mapping[str, Path]
    source: str

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files.values())


Fetch = Callable[[str], bytes]


def fetch_url(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT) as response:
        data: bytes = response.read()
    return data


def _matches(data: bytes, item: TiktokenFile) -> bool:
    return hashlib.sha256(data).hexdigest() == item.sha256


def _from_local(directory: Path, item: TiktokenFile) -> Path:
    for name in (item.cache_name, item.base_name):
        path = directory / name
        if path.is_file():
            if not _matches(path.read_bytes(), item):
                raise TiktokenDataError(
                    f"--tiktoken-cache {directory}: {name} does not have the SHA-256 tiktoken expects "
                    f"for {item.base_name}"
                )
            return path
    raise TiktokenDataError(
        f"--tiktoken-cache {directory}: neither {item.base_name} nor {item.cache_name} (tiktoken's cache "
        "name for it) is in it"
    )


def _from_store(store: Path, item: TiktokenFile, fetch: Fetch) -> tuple[Path, bool]:
    """(path in the dependency cache, fetched now?)."""
    path = store / item.cache_name
    if path.is_file() and _matches(path.read_bytes(), item):
        return path, False
    host = item.url.split("/")[2]
    try:
        data = fetch(item.url)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise TiktokenFetchError(
            f"tiktoken's {item.base_name} could not be fetched from {host} ({reason}): pass "
            f"--tiktoken-cache DIR with the files for an offline build, or --no-tiktoken-data to build "
            "without them"
        ) from None
    if not _matches(data, item):
        raise TiktokenFetchError(
            f"tiktoken's {item.base_name} fetched from {host} does not have the SHA-256 tiktoken expects: "
            "pass --tiktoken-cache DIR with verified files, or --no-tiktoken-data"
        )
    store.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path, True


def collect_tiktoken_files(
    encodings: tuple[str, ...], *, local: Path | None, store: Path, fetch: Fetch = fetch_url
) -> TiktokenFiles:
    """Verified files of ``encodings`` from ``local``, else the ``store``, else the network."""
    files: dict[str, Path] = {}
    fetched = False
    for item in files_for(encodings):
        if local is not None:
            files[item.cache_name] = _from_local(local, item)
        else:
            files[item.cache_name], now = _from_store(store, item, fetch)
            fetched = fetched or now
    source = (
        f"--tiktoken-cache {local}" if local is not None else ("fetched" if fetched else "dependency cache")
    )
    return TiktokenFiles(encodings, files, source)


def default_tiktoken_cache(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$DIFY_LAMBDA_TIKTOKEN_CACHE`` (the default of ``--tiktoken-cache``), else None."""
    value = (os.environ if environ is None else environ).get(TIKTOKEN_CACHE_ENV, "").strip()
    return Path(value).expanduser() if value else None
