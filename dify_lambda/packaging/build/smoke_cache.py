"""Passed smoke inits, remembered per artifact: a rebuild of the same bytes does not load them again.

The smoke init (smoke.py) is a function of the artifact's bytes, the interpreter that loads them, the
function's environment and the probe; a build that produced an artifact with the same SHA-256 (the
builder is reproducible, so a warm rebuild of an unchanged plugin does) on the same interpreter would
load the same code the same way. Only passes are remembered, under ``<cache>/smoke/<key>.json``;
``--no-cache`` ignores them. The key also covers the interpreter file's size and modification time,
so a reinstalled Python is probed afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from dify_lambda.packaging.build.smoke import SmokeResult

__all__ = ["SmokeCache", "smoke_key"]


def smoke_key(artifact_sha256: str, interpreter: Path, function_env: Mapping[str, str], probe: str) -> str:
    """The cache key of one smoke init (pure apart from the interpreter's ``stat``)."""
    try:
        stat = interpreter.resolve().stat()
        python = f"{interpreter.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        python = str(interpreter)
    doc = {
        "artifact": artifact_sha256,
        "python": python,
        "env": sorted(function_env.items()),
        "probe": hashlib.sha256(probe.encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


class SmokeCache:
    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "smoke"

    def key(
        self, artifact_sha256: str, interpreter: Path, function_env: Mapping[str, str], probe: str
    ) -> str:
        return smoke_key(artifact_sha256, interpreter, function_env, probe)

    def lookup(self, key: str) -> SmokeResult | None:
        try:
            doc = json.loads((self.root / f"{key}.json").read_text("utf-8"))
            providers = {str(p["name"]): tuple(str(m) for m in p["models"]) for p in doc["providers"]}
            return SmokeResult(
                "passed",
                "smoke init passed on a previous build of this very artifact",
                0.0,
                str(doc["sdk_version"]),
                providers,
                cached=True,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, key: str, result: SmokeResult) -> None:
        if result.status != "passed":
            return
        self.root.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a concurrent build never reads half a file.
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(result.to_dict(), out)
        Path(tmp).replace(self.root / f"{key}.json")
