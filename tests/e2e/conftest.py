"""Builds here ship tiktoken's gpt2 files, taken offline (see ``offline_tiktoken`` in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _offline_tiktoken(offline_tiktoken: Path) -> Path:
    return offline_tiktoken
