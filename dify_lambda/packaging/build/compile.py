"""Byte-compile a tree for the target Python so cold starts skip source compilation.

Runs ``compileall`` with the *target* interpreter (``find_interpreter``), never the host's:
``.pyc`` magic numbers differ between minor versions. Options that keep the output reproducible and
valid on Lambda:

- ``--invalidation-mode unchecked-hash``: no source mtime inside the ``.pyc``; the loader never
  stats the (read-only) source to revalidate;
- ``-s <root> -p /var/task``: ``co_filename`` records the path the file has on Lambda, not the
  build directory;
- ``PYTHONHASHSEED=0``: set-literal order inside code objects does not vary between runs;
- fixed shards, one fresh interpreter each. marshal's reference flags depend on refcounts, so a
  ``.pyc``'s bytes depend on what the same process compiled before it (``compileall -j N`` hands
  files to workers as they free up, and the same source gave different bytes between runs, observed
  on werkzeug). Here the sorted ``.py`` files are cut into contiguous shards by source size
  (:func:`plan_shards`: a function of the file list only, never of the worker count or of timing),
  and each shard is compiled, in order, by its own ``compileall`` process reading the list on
  stdin. Shards run side by side (``workers``); the bytes are the same for any number of workers.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LAMBDA_TASK_ROOT",
    "CompileResult",
    "compile_command",
    "compile_tree",
    "plan_shards",
    "source_files",
]

LAMBDA_TASK_ROOT = "/var/task"
#: At most this many shards (so this many compile processes side by side)...
MAX_SHARDS = 8
#: ...of at least this much source each (a small tree, such as the plugin's, stays one process).
MIN_SHARD_BYTES = 2 << 20


@dataclass(frozen=True, slots=True)
class CompileResult:
    """``status`` is ``compiled``, ``partial`` (some files did not compile) or ``skipped``."""

    status: str
    interpreter: str | None = None
    note: str = ""


def compile_command(interpreter: Path, root: Path, prefix: str = LAMBDA_TASK_ROOT) -> list[str]:
    """The compileall command line of one shard, its files read from stdin (pure; exposed for tests)."""
    return [
        str(interpreter),
        "-m",
        "compileall",
        "-q",
        "--invalidation-mode",
        "unchecked-hash",
        "-s",
        str(root),
        "-p",
        prefix,
        "-i",
        "-",
    ]


def _listable(path: str) -> bool:
    # compileall reads one name per line and strips it: other names are left to load from source.
    return path == path.strip() and "\n" not in path and "\r" not in path


def source_files(root: Path) -> list[tuple[str, int]]:
    """``(path, size)`` of every ``.py`` compileall would compile under ``root``, in its order.

    compileall walks each directory's sorted names depth-first, skips ``__pycache__`` and does not
    follow symbolic links to directories; sorting by path components gives that order.
    """
    found: list[tuple[tuple[str, ...], str, int]] = []
    for current, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = Path(current, name)
            if name.endswith(".py") and _listable(str(path)) and path.is_file():
                found.append((path.relative_to(root).parts, str(path), path.stat().st_size))
    found.sort()
    return [(path, size) for _, path, size in found]


def plan_shards(
    files: Sequence[tuple[str, int]], max_shards: int = MAX_SHARDS, min_bytes: int = MIN_SHARD_BYTES
) -> list[list[str]]:
    """Cut ``files`` (in order) into contiguous shards of about equal source size (pure).

    The plan depends on the list alone: the same tree always compiles in the same processes.
    """
    total = sum(size for _, size in files)
    count = max(1, min(max_shards, total // max(min_bytes, 1)))
    shards: list[list[str]] = [[] for _ in range(count)]
    done = 0
    for path, size in files:
        # The shard this file starts in, by the source bytes before it.
        shards[min(count - 1, done * count // max(total, 1))].append(path)
        done += size
    return [shard for shard in shards if shard]


Runner = Callable[[list[str], dict[str, str], str], subprocess.CompletedProcess[str]]


def _run(cmd: list[str], env: dict[str, str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, check=False, timeout=900)


def compile_tree(
    root: Path,
    interpreter: Path | None,
    *,
    prefix: str = LAMBDA_TASK_ROOT,
    runner: Runner = _run,
    workers: int | None = None,
    min_shard_bytes: int = MIN_SHARD_BYTES,
) -> CompileResult:
    """Compile every ``.py`` under ``root`` in place; a missing interpreter skips with a note.

    ``workers`` shards run at a time (default: the CPU count); it changes the duration, not the bytes.
    """
    if interpreter is None:
        return CompileResult("skipped", None, "target interpreter not found: .pyc not shipped")
    shards = plan_shards(source_files(root), MAX_SHARDS, min_shard_bytes)
    if not shards:
        return CompileResult("compiled", str(interpreter))
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = compile_command(interpreter, root, prefix)
    width = max(1, min(len(shards), workers or os.cpu_count() or 1))
    with ThreadPoolExecutor(width) as pool:
        procs = list(pool.map(lambda shard: runner(cmd, env, "".join(p + "\n" for p in shard)), shards))
    failed = [
        line for proc in procs for line in proc.stdout.splitlines() if line.startswith("*** Error compiling")
    ]
    if all(proc.returncode == 0 for proc in procs):
        return CompileResult("compiled", str(interpreter))
    errors = next(
        (proc.stderr.strip()[-200:] for proc in procs if proc.returncode and proc.stderr.strip()), ""
    )
    what = f"{len(failed)} file(s) did not compile" if failed else (errors or "failed")
    return CompileResult("partial", str(interpreter), f"compileall: {what} (they load from source)")
