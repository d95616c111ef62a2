"""Shared fixtures of the builder's functional tests.

Builds download wheels from the package index, so every test of the session shares one cache
directory (``$DIFY_LAMBDA_TEST_CACHE``, else a directory in pytest's cache) and each
(plugin, architecture) artifact is built once per test run, whatever the number of xdist workers
(:func:`built`, through support/shared.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from support.shared import once

from dify_lambda.packaging.build import BuildOptions, BuildResult, build

ROOT = Path(__file__).resolve().parents[3]
PLUGINS = ROOT / "plugins"


@pytest.fixture(scope="session")
def build_cache(pytestconfig: pytest.Config) -> Path:
    env = os.environ.get("DIFY_LAMBDA_TEST_CACHE")
    if env:
        return Path(env)
    return Path(pytestconfig.cache.mkdir("dify-lambda-build"))


@pytest.fixture(scope="session")
def built(build_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], BuildResult]:
    """``built(plugin, arch)``: the session's build of ``plugins/<plugin>`` for ``arch``."""
    results: dict[tuple[str, str], BuildResult] = {}

    def get(plugin: str, arch: str) -> BuildResult:
        key = (plugin, arch)
        if key not in results:
            # Built by the first worker of the run that needs it, loaded by the others.
            results[key] = once(
                tmp_path_factory,
                f"built-{plugin}-{arch}",
                lambda out: build(PLUGINS / plugin, out, BuildOptions(arch=arch, cache_dir=build_cache)),
            )
        return results[key]

    return get
