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
  and each shard is compiled, in order, by its own process of the target interpreter. Shards run side
  by side (``workers``); the bytes are the same for any number of workers.

Each shard process runs :data:`DRIVER`, which compiles the way ``py_compile``/``compileall`` do
(``compile(source, dfile, "exec", dont_inherit=True)``, then the unchecked-hash ``.pyc`` of
``importlib``) but sends the ``.pyc`` bytes back on stdout instead of writing them beside the source:
:func:`compile_tree` writes them (the plugin and runtime staging), :func:`compiled_shards` hands them
over in memory (the dependency tree: they go straight into its deflate pack, zipwrite.py, so the
cached tree never holds thousands of small ``.pyc`` files that a disk pays to create). The driver
drops its own directory from ``sys.path`` first, so nothing of the tree it reads can shadow the
standard library it imports (the tree's code never runs).
"""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DRIVER",
    "LAMBDA_TASK_ROOT",
    "CompileResult",
    "ShardedCompile",
    "compile_command",
    "compile_tree",
    "parse_output",
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


#: The shard process (``python -s -c DRIVER ROOT PREFIX``; NUL-separated relative paths on stdin).
#: Out: per file, ``<len(cfile)><len(pyc)>`` (two little-endian uint32), the ``.pyc``'s path relative
#: to ROOT, its bytes; ``*** Error compiling <path>: <error>`` lines on stderr, exit status 1 if any.
DRIVER = r"""
import sys
del sys.path[0]
import importlib.util
import struct
from importlib._bootstrap_external import _code_to_hash_pyc

root, prefix = sys.argv[1], sys.argv[2]
out = sys.stdout.buffer
failed = 0
for rel in sys.stdin.buffer.read().decode("utf-8", "surrogateescape").split("\0"):
    if not rel:
        continue
    try:
        with open(root + "/" + rel, "rb") as handle:
            source = handle.read()
        code = compile(source, prefix + "/" + rel, "exec", dont_inherit=True)
        data = _code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False)
    except Exception as exc:
        failed += 1
        print(f"*** Error compiling {rel!r}: {type(exc).__name__}", file=sys.stderr)
        continue
    cfile = importlib.util.cache_from_source(rel).encode("utf-8", "surrogateescape")
    out.write(struct.pack("<II", len(cfile), len(data)) + cfile + data)
out.flush()
sys.exit(1 if failed else 0)
"""
_FRAME = struct.Struct("<II")


def compile_command(interpreter: Path, root: Path, prefix: str = LAMBDA_TASK_ROOT) -> list[str]:
    """The command line of one shard process, its files read from stdin (pure; exposed for tests)."""
    return [str(interpreter), "-s", "-c", DRIVER, str(root), prefix]


def source_files(root: Path) -> list[tuple[str, int]]:
    """``(path relative to root, size)`` of every ``.py`` under ``root``, in compileall's order.

    compileall walks each directory's sorted names depth-first, skips ``__pycache__`` and does not
    follow symbolic links to directories; sorting by path components gives that order.
    """
    found: list[tuple[tuple[str, ...], str, int]] = []
    for current, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = Path(current, name)
            if name.endswith(".py") and path.is_file() and not path.is_symlink():
                rel = path.relative_to(root)
                found.append((rel.parts, rel.as_posix(), path.stat().st_size))
    found.sort()
    return [(rel, size) for _, rel, size in found]


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


def parse_output(stdout: bytes) -> list[tuple[str, bytes]]:
    """``(pyc path relative to root, pyc bytes)`` from a shard's output; a cut-off last frame is dropped."""
    out: list[tuple[str, bytes]] = []
    pos = 0
    while pos + _FRAME.size <= len(stdout):
        name_len, data_len = _FRAME.unpack_from(stdout, pos)
        start = pos + _FRAME.size
        end = start + name_len + data_len
        if end > len(stdout):
            break
        name = stdout[start : start + name_len].decode("utf-8", "surrogateescape")
        out.append((name, stdout[start + name_len : end]))
        pos = end
    return out


Runner = Callable[[list[str], dict[str, str], bytes], subprocess.CompletedProcess[bytes]]


def _run(cmd: list[str], env: dict[str, str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, input=stdin, capture_output=True, env=env, check=False, timeout=900)


@dataclass
class ShardedCompile:
    """The shards of one tree, compiled side by side; their outputs are handed over in shard order."""

    root: Path
    interpreter: Path
    prefix: str = LAMBDA_TASK_ROOT
    runner: Runner = _run
    workers: int | None = None
    min_shard_bytes: int = MIN_SHARD_BYTES
    failures: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)

    def outputs(self) -> Iterator[list[tuple[str, bytes]]]:
        """Each shard's ``.pyc`` files (relative path, bytes), in shard order, as shards finish."""
        shards = plan_shards(source_files(self.root), MAX_SHARDS, self.min_shard_bytes)
        if not shards:
            return
        env = dict(os.environ, PYTHONHASHSEED="0")
        cmd = compile_command(self.interpreter, self.root, self.prefix)
        width = max(1, min(len(shards), self.workers or os.cpu_count() or 1))
        with ThreadPoolExecutor(width) as pool:
            stdin = [
                "".join(rel + "\0" for rel in shard).encode("utf-8", "surrogateescape") for shard in shards
            ]
            for proc in pool.map(lambda data: self.runner(cmd, env, data), stdin):
                errors = proc.stderr.decode("utf-8", "replace")
                failed = [line for line in errors.splitlines() if line.startswith("*** Error compiling")]
                self.failures += failed
                # Exit status 1 with error lines: some files did not compile. Anything else: the
                # process ended early, and what it had not sent loads from source.
                if proc.returncode not in (0, 1) or (proc.returncode and not failed):
                    self.crashed.append(errors.strip()[-200:] or f"exit status {proc.returncode}")
                yield parse_output(proc.stdout)

    def result(self) -> CompileResult:
        if not self.failures and not self.crashed:
            return CompileResult("compiled", str(self.interpreter))
        what = f"{len(self.failures)} file(s) did not compile" if self.failures else self.crashed[0]
        return CompileResult("partial", str(self.interpreter), f"compile: {what} (they load from source)")


def compile_tree(
    root: Path,
    interpreter: Path | None,
    *,
    prefix: str = LAMBDA_TASK_ROOT,
    runner: Runner = _run,
    workers: int | None = None,
    min_shard_bytes: int = MIN_SHARD_BYTES,
) -> CompileResult:
    """Compile every ``.py`` under ``root``, writing each ``.pyc`` beside its source (``__pycache__``).

    A missing interpreter skips with a note. ``workers`` shards run at a time (default: the CPU
    count); it changes the duration, not the bytes.
    """
    if interpreter is None:
        return CompileResult("skipped", None, "target interpreter not found: .pyc not shipped")
    job = ShardedCompile(root, interpreter, prefix, runner, workers, min_shard_bytes)
    for shard in job.outputs():
        for rel, data in shard:
            path = root / rel
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
    return job.result()
