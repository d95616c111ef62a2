"""The exec wrapper picks the interpreter the managed runtime hands it before the fixed fallback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
WRAPPER = ROOT / "dify_lambda" / "handlers" / "exec_wrapper.sh"
FALLBACK = "/var/lang/bin/python3"


def _fake_python(directory: Path, name: str) -> Path:
    """An executable that prints its own name and arguments: shows which interpreter was chosen."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text('#!/bin/sh\necho "$0 $*"\n')
    path.chmod(0o755)
    return path


def _run(*argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DIFY_LAMBDA_PYTHON", "DIFY_LAMBDA_STREAMING")}
    env.update(extra)
    return subprocess.run(
        [str(WRAPPER), *argv], env=env, capture_output=True, text=True, check=False, timeout=30
    )


@pytest.mark.parametrize("name", ["python3.12", "python3", "python"])
def test_runs_the_runtimes_own_python(tmp_path: Path, name: str) -> None:
    runtime_python = _fake_python(tmp_path / "lang" / "bin", name)
    out = _run(str(runtime_python), "/var/runtime/bootstrap.py")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{runtime_python} -m dify_lambda.handlers.stream"


def test_explicit_python_wins_over_the_runtimes(tmp_path: Path) -> None:
    runtime_python = _fake_python(tmp_path / "lang", "python3.13")
    chosen = _fake_python(tmp_path / "mine", "python3.12")
    out = _run(str(runtime_python), "bootstrap.py", DIFY_LAMBDA_PYTHON=str(chosen))
    assert out.stdout.strip() == f"{chosen} -m dify_lambda.handlers.stream"


@pytest.mark.parametrize("first", ["/bin/sh", "missing/python3.12", ""])
def test_anything_else_falls_back_to_the_fixed_path(tmp_path: Path, first: str) -> None:
    if Path(FALLBACK).exists():
        pytest.skip(f"{FALLBACK} exists on this host: the fallback cannot be told apart")
    out = _run(*([first] if first else []))
    # exec of the absent fallback fails, and the shell names the path it tried.
    assert out.returncode != 0
    assert FALLBACK in out.stderr
    assert out.stdout == ""
