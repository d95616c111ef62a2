"""The dependency cache: one finished site-packages tree per key.

The key (:func:`dify_lambda.packaging.build.steps.dependency_cache_key`) covers the canonical
requirements, Python, architecture, compile flag, resolver, the ``--allow-sdist`` names and the
package sources (index URL, extra indexes, ``--find-links`` directories and their file listing),
so a tree resolved under one set of operator choices is never reused under another.

Layout under the cache directory::

    pip/                        pip's own HTTP/wheel cache (shared by every build)
    uv/                         uv's cache (shared by every build)
    deps/<key>/site-packages/   resolved, pruned and compiled dependencies (read-only use)
    deps/<key>/meta.json        what produced it: requirements, target, compile status, notes
    deps/<key>/deflate-<level>.pack  its files deflated for the zip, and their index .json (zipwrite.py),
                                written with the tree (while it compiles) and published with it

    locks/<key>.lock            held while one build looks up or produces <key>

A tree is built in a temporary sibling directory and renamed into place when complete, so an
interrupted build never leaves a half tree behind that a later build would trust. Builds that share
the directory (the connector's concurrent launches, parallel CLI runs, parallel test workers) take a
file lock per key, so a tree is produced once and never replaced under a build that is reading it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

__all__ = ["CachedTree", "DependencyCache"]


@dataclass(frozen=True, slots=True)
class CachedTree:
    root: Path
    meta: dict[str, Any]
    hit: bool


class DependencyCache:
    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    @property
    def pip_dir(self) -> Path:
        return self.cache_dir / "pip"

    def entry(self, key: str) -> Path:
        return self.cache_dir / "deps" / key

    def lookup(self, key: str) -> CachedTree | None:
        entry = self.entry(key)
        meta_file = entry / "meta.json"
        tree = entry / "site-packages"
        if not (meta_file.is_file() and tree.is_dir()):
            return None
        try:
            meta = json.loads(meta_file.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return CachedTree(tree, meta, hit=True)

    def obtain(self, key: str, produce: Callable[[Path], dict[str, Any]]) -> CachedTree:
        """The tree under ``key``, produced by ``produce`` only if no build has published it yet."""
        locks = self.cache_dir / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with FileLock(locks / f"{key}.lock"):
            found = self.lookup(key)
            return found if found is not None else self.populate(key, produce)

    def populate(self, key: str, produce: Callable[[Path], dict[str, Any]]) -> CachedTree:
        """Run ``produce(tree_dir)`` in a scratch directory, then publish it under ``key``."""
        deps = self.cache_dir / "deps"
        deps.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=deps))
        try:
            tree = scratch / "site-packages"
            tree.mkdir()
            meta = produce(tree)
            (scratch / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True), "utf-8")
            final = self.entry(key)
            if final.exists():
                shutil.rmtree(final)
            scratch.replace(final)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return CachedTree(final / "site-packages", meta, hit=False)
