"""Results made once per test run and shared by every pytest-xdist worker (``make test`` runs several).

A session fixture runs once per worker process. What is expensive to make (a built artifact) is made
by the first worker that asks, under a file lock in a directory that only this run's workers share,
and the others load the pickled result instead of making it again.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

__all__ = ["once", "run_dir"]


def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of this test run, the same for every worker."""
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's base is <run>/popen-gwN, and <run> belongs to this run alone.
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    shared = root / "shared"
    shared.mkdir(exist_ok=True)
    return shared


def once[T](tmp_path_factory: pytest.TempPathFactory, name: str, produce: Callable[[Path], T]) -> T:
    """``produce(out_dir)`` in the first process of the run that asks for ``name``; its value for all."""
    shared = run_dir(tmp_path_factory)
    out = shared / name
    done = shared / f"{name}.pickle"
    with FileLock(shared / f"{name}.lock"):
        if done.is_file():
            value: T = pickle.loads(done.read_bytes())
            return value
        shutil.rmtree(out, ignore_errors=True)  # a failed attempt's leftovers
        out.mkdir()
        value = produce(out)
        done.write_bytes(pickle.dumps(value))
        return value
