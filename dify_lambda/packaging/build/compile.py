"""Byte-compile a tree for the target Python so cold starts skip source compilation.

Runs ``compileall`` with the *target* interpreter (``find_interpreter``), never the host's:
``.pyc`` magic numbers differ between minor versions. Options that keep the output reproducible and
valid on Lambda:

- ``--invalidation-mode unchecked-hash``: no source mtime inside the ``.pyc``; the loader never
  stats the (read-only) source to revalidate;
- ``-s <root> -p /var/task``: ``co_filename`` records the path the file has on Lambda, not the
  build directory;
- ``PYTHONHASHSEED=0``: set-literal order inside code objects does not vary between runs;
- ``-j 1``: one process compiles files in sorted order. With parallel workers, which files a worker
  compiled before decides marshal's reference flags (refcount-dependent), so the same source gave
  different ``.pyc`` bytes between runs (observed on werkzeug).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LAMBDA_TASK_ROOT", "CompileResult", "compile_command", "compile_tree"]

LAMBDA_TASK_ROOT = "/var/task"


@dataclass(frozen=True, slots=True)
class CompileResult:
    """``status`` is ``compiled``, ``partial`` (some files did not compile) or ``skipped``."""

    status: str
    interpreter: str | None = None
    note: str = ""


def compile_command(interpreter: Path, root: Path, prefix: str = LAMBDA_TASK_ROOT) -> list[str]:
    """The compileall command line (pure; exposed for tests)."""
    return [
        str(interpreter),
        "-m",
        "compileall",
        "-q",
        "-j",
        "1",
        "--invalidation-mode",
        "unchecked-hash",
        "-s",
        str(root),
        "-p",
        prefix,
        str(root),
    ]


Runner = Callable[[list[str], dict[str, str]], subprocess.CompletedProcess[str]]


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=900)


def compile_tree(
    root: Path,
    interpreter: Path | None,
    *,
    prefix: str = LAMBDA_TASK_ROOT,
    runner: Runner = _run,
) -> CompileResult:
    """Compile every ``.py`` under ``root`` in place; a missing interpreter skips with a note."""
    if interpreter is None:
        return CompileResult("skipped", None, "target interpreter not found: .pyc not shipped")
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="")
    env.pop("PYTHONDONTWRITEBYTECODE")
    proc = runner(compile_command(interpreter, root, prefix), env)
    if proc.returncode == 0:
        return CompileResult("compiled", str(interpreter))
    failed = [line for line in proc.stdout.splitlines() if line.startswith("*** Error compiling")]
    what = f"{len(failed)} file(s) did not compile" if failed else (proc.stderr.strip()[-200:] or "failed")
    return CompileResult("partial", str(interpreter), f"compileall: {what} (they load from source)")
