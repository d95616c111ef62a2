"""The build pipeline as named steps, so a failure reads ``build:ResolveDependencies - ...``.

Order: ReadPackage -> ResolveTarget -> CollectRuntime -> SelectRequirements -> ResolveDependencies
-> StageFiles -> CheckSize -> WriteArtifact -> RenderTemplate -> WriteReport.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dify_lambda
from dify_lambda.errors import DifyLambdaError
from dify_lambda.packaging.build.artifact import ArtifactEntry, pack_only_entries, predeflate, tree_entries
from dify_lambda.packaging.build.cache import CachedTree, DependencyCache
from dify_lambda.packaging.build.compile import CompileResult, ShardedCompile, compile_tree
from dify_lambda.packaging.build.deps import (
    DependencyInstaller,
    IndexOptions,
    PipRunner,
    canonical_name,
    installed_distributions,
)
from dify_lambda.packaging.build.options import BuildOptions, Target, default_cache_dir
from dify_lambda.packaging.build.prune import apply_prune
from dify_lambda.packaging.build.requirements import cache_key
from dify_lambda.packaging.build.zipwrite import PackItem
from dify_lambda.packaging.interpreters import find_interpreter

__all__ = [
    "StepTimer",
    "collect_entries",
    "dependency_cache_key",
    "index_options",
    "resolve_dependencies",
    "runtime_package_root",
    "scratch_dir",
    "stage_files",
]

Progress = Callable[[str], None]


@dataclass
class StepTimer:
    """Runs named steps: reports progress, records durations, prefixes errors with the step name."""

    progress: Progress
    durations: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[None]:
        self.progress(f"build:{name}" + (f" - {detail}" if detail else ""))
        start = time.perf_counter()
        try:
            yield
        except DifyLambdaError as exc:
            if exc.args and isinstance(exc.args[0], str) and not exc.args[0].startswith("build:"):
                exc.args = (f"build:{name} - {exc.args[0]}", *exc.args[1:])
            raise
        finally:
            self.durations.append((name, round(time.perf_counter() - start, 3)))


def runtime_package_root() -> Path:
    """The ``dify_lambda`` directory whose runtime slice is shipped (this installation's)."""
    return Path(dify_lambda.__file__).resolve().parent


def _produce(
    target: Target,
    requirements: tuple[str, ...],
    options: BuildOptions,
    *,
    tool_cache: Path,
    pip: PipRunner | None,
    uv: PipRunner | None,
    progress: Progress,
) -> Callable[[Path], dict[str, Any]]:
    def produce(tree: Path) -> dict[str, Any]:
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        installer = DependencyInstaller(
            target,
            resolver=options.resolver,
            pip=pip,
            uv=uv,
            cache_dir=tool_cache,
            index=index_options(options),
            allow_sdist=options.allow_sdist,
        )
        outcome = installer.install(requirements, tree)
        timings["install"], clock = _lap(clock)
        pruned = apply_prune(tree)
        timings["prune"], clock = _lap(clock)
        progress(
            f"build:ResolveDependencies - pruned {len(pruned.removed)} paths ({pruned.bytes_removed} bytes)"
        )
        result, timings["compile"], timings["compile+deflate"] = _compile_and_deflate(tree, target, options)
        return {
            "requirements": list(requirements),
            "python": target.python,
            "arch": target.arch,
            "notes": list(outcome.notes),
            "built_from_source": list(outcome.built_from_source),
            "resolver": options.resolver,
            "pruned_paths": len(pruned.removed),
            "pruned_bytes": pruned.bytes_removed,
            "compile": {"status": result.status, "interpreter": result.interpreter, "note": result.note},
            "distributions": [{"name": d.name, "version": d.version} for d in installed_distributions(tree)],
            "timings": {name: round(seconds, 3) for name, seconds in timings.items()},
        }

    return produce


def _lap(since: float) -> tuple[float, float]:
    now = time.perf_counter()
    return now - since, now


def _files(tree: Path) -> list[Path]:
    return sorted(Path(current, name) for current, _dirs, names in os.walk(tree) for name in names)


def _compile_and_deflate(
    tree: Path, target: Target, options: BuildOptions
) -> tuple[CompileResult, float, float]:
    """Compile the pruned tree and deflate it into its pack (zipwrite.py), side by side.

    The tree's files are deflated on threads while the compile shards run; each shard's ``.pyc``
    files go from the compiler's output straight into the pack (compile.py), never to the disk as
    files of their own. Returns the compile result, when compiling ended and when deflating ended
    (seconds from the start of this step).
    """
    start = time.perf_counter()
    files: list[PackItem] = list(_files(tree))
    interpreter = find_interpreter(target.python)
    if not options.compile or interpreter is None:
        predeflate(tree, [files])
        skipped = (
            CompileResult("skipped", None, "compilation disabled")
            if not options.compile
            else CompileResult("skipped", None, "target interpreter not found: .pyc not shipped")
        )
        return skipped, 0.0, time.perf_counter() - start
    job = ShardedCompile(tree, interpreter)
    compiled: list[float] = []

    def batches() -> Iterator[Sequence[PackItem]]:
        done: queue.Queue[list[tuple[str, bytes]] | BaseException | None] = queue.Queue()

        def collect() -> None:
            # On a thread of its own: the compile processes start now, and each shard's output is
            # handed over as it ends while the tree's files are being deflated.
            try:
                for shard in job.outputs():
                    done.put(shard)
                done.put(None)
            except BaseException as exc:  # re-raised in the build's thread below
                done.put(exc)

        collector = threading.Thread(target=collect, name="compile-shards", daemon=True)
        collector.start()
        yield files
        while (item := done.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
        compiled.append(time.perf_counter() - start)
        collector.join()

    predeflate(tree, batches())
    return job.result(), compiled[0], time.perf_counter() - start


def index_options(options: BuildOptions) -> IndexOptions:
    return IndexOptions(options.index_url, options.extra_index_urls, options.find_links)


def _links_fingerprint(directory: Path) -> str:
    """A ``--find-links`` directory by path and listing (name, size): new wheels there mean a new key."""
    try:
        listing = sorted(f"{p.name}:{p.stat().st_size}" for p in directory.iterdir() if p.is_file())
    except OSError:
        listing = []
    return f"{directory.resolve()}[{','.join(listing)}]"


def dependency_cache_key(target: Target, requirements: tuple[str, ...], options: BuildOptions) -> str:
    """Everything that changes the finished tree: requirements, target, resolver, sdists, sources."""
    extra = {
        "compile": str(options.compile),
        "resolver": options.resolver,
        "allow_sdist": ",".join(sorted({canonical_name(n) for n in options.allow_sdist})),
        "index_url": options.index_url or "",
        "extra_index_urls": "\n".join(options.extra_index_urls),
        "find_links": "\n".join(_links_fingerprint(p) for p in options.find_links),
        # Trees made before RECORD rows of pruned files were dropped must not be reused.
        "record": "filtered",
        # Nor trees pruned by older rules (type stubs and extension sources kept).
        "prune": "stubs-sources",
        # Nor trees compiled by one compileall process (other .pyc bytes) or without a deflate pack
        # holding their .pyc files.
        "layout": "compile-shards,pyc-in-pack",
    }
    return cache_key(requirements, target.python, target.arch, extra)


def resolve_dependencies(
    target: Target,
    requirements: tuple[str, ...],
    options: BuildOptions,
    scratch: Path,
    *,
    pip: PipRunner | None = None,
    uv: PipRunner | None = None,
    progress: Progress,
) -> CachedTree:
    """The finished dependency tree for ``requirements`` on ``target``, from the cache when possible."""
    cache_dir = options.cache_dir or default_cache_dir()
    key = dependency_cache_key(target, requirements, options)
    produce = _produce(target, requirements, options, tool_cache=cache_dir, pip=pip, uv=uv, progress=progress)
    if options.use_cache:
        return DependencyCache(cache_dir).obtain(key, produce)
    return DependencyCache(scratch / "nocache").populate(key, produce)


def stage_files(
    package: Any, runtime_files: dict[str, Path], staging: Path, target: Target, options: BuildOptions
) -> CompileResult:
    """Extract the plugin under ``staging/plugin``, copy the runtime, compile both for the target."""
    package.extract_to(staging / "plugin")
    for arcname, source in runtime_files.items():
        dest = staging / arcname
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
    if not options.compile:
        return CompileResult("skipped", None, "compilation disabled")
    return compile_tree(staging, find_interpreter(target.python))


def collect_entries(staging: Path, deps_tree: Path) -> list[ArtifactEntry]:
    entries = tree_entries(staging / "plugin", "plugin", "plugin/")
    # Shell scripts of the runtime (the exec wrapper) must run even if a checkout lost their mode.
    entries += [
        dataclasses.replace(e, executable=True) if e.arcname.endswith(".sh") else e
        for e in tree_entries(staging / "dify_lambda", "runtime", "dify_lambda/")
    ]
    entries += tree_entries(deps_tree, "dependencies") + pack_only_entries(deps_tree, "dependencies")
    return entries


@contextmanager
def scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dify-lambda-build-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
