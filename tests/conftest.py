"""Shared test configuration.

Test layers (docs/contributing.md):
- tests/unit: no I/O at all (no files, sockets or subprocesses).
- tests/functional: real components together: loopback HTTP, subprocesses, moto.
- tests/e2e: the CLI run as a user would.

Never import ``dify_plugin`` in the pytest process: it gevent-patches sockets and threads
globally. Run plugins in subprocesses (see tests/support).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session")
def tiktoken_gpt2(pytestconfig: pytest.Config) -> Path:
    """A directory with tiktoken's gpt2 files under their cache names, verified (support/tiktoken_offline)."""
    from support.tiktoken_offline import gpt2_cache

    return gpt2_cache(Path(pytestconfig.cache.mkdir("tiktoken-gpt2")))


@pytest.fixture(scope="session")
def offline_tiktoken(tiktoken_gpt2: Path) -> Iterator[Path]:
    """Points ``DIFY_LAMBDA_TIKTOKEN_CACHE`` (default of ``--tiktoken-cache``) at the offline gpt2 files.

    Every ``dify_plugin`` depends on tiktoken, so every build ships its gpt2 files, and this machine
    cannot reach tiktoken's download host. Set for the session: in-process builds and CLI subprocesses.
    """
    from dify_lambda.packaging.build.tiktoken_data import TIKTOKEN_CACHE_ENV

    before = os.environ.get(TIKTOKEN_CACHE_ENV)
    os.environ[TIKTOKEN_CACHE_ENV] = str(tiktoken_gpt2)
    try:
        yield tiktoken_gpt2
    finally:
        if before is None:
            os.environ.pop(TIKTOKEN_CACHE_ENV, None)
        else:
            os.environ[TIKTOKEN_CACHE_ENV] = before
