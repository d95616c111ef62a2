"""Builder benchmark: cold and warm builds, artifact size against the SDK's own footprint, reproducibility.

All in one run on this machine, for plugins/mockgpt (x86_64, Python 3.12):

- cold build: an empty temporary cache (pip downloads every wheel from the index);
- warm build: the same cache again (dependency tree reused: only staging, compile of the plugin and
  zipping remain);
- fresh rebuild (``use_cache=False``, pip's download cache kept): must give the same SHA-256;
- artifact size (zipped/unzipped) against the anchor "dify_plugin + its dependencies installed for the
  same target by plain ``pip install --target``" without our pruning and compilation, zipped at the
  same level;
- import time of ``dify_plugin`` from the artifact (target .pyc shipped) against the anchor tree
  (no .pyc, writing none), median of 5 fresh interpreters, when a local python3.12 exists.

TokenGPT (bench/plugins/tokengpt: openai, httpx, tiktoken, numpy), when tiktoken's files are given
(``DIFY_LAMBDA_TIKTOKEN_CACHE``): 3 cold builds, each with an empty cache directory of its own, and 5
warm builds, min / median / max and the median of each build phase, the load average before each.

Run at most once or twice: the cold builds download ~20 MB (MockGPT) and 3 x ~40 MB (TokenGPT) from
the package index.
Usage: ``python bench/bench_build.py [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dify_lambda.packaging.build import BuildOptions, build
from dify_lambda.packaging.build.artifact import tree_entries, write_zip
from dify_lambda.packaging.build.deps import DependencyInstaller
from dify_lambda.packaging.build.options import Target
from dify_lambda.packaging.interpreters import find_interpreter

PLUGIN = ROOT / "plugins" / "mockgpt"
SDK_REQUIREMENT = "dify_plugin>=0.10,<0.11"
MIB = 1024 * 1024


def timed_build(out: Path, options: BuildOptions) -> tuple[float, Any]:
    start = time.perf_counter()
    result = build(PLUGIN, out, options)
    return time.perf_counter() - start, result


def import_time(python: Path, root: Path, env_extra: dict[str, str], runs: int = 5) -> float:
    """Median wall time (ms) of ``import dify_plugin`` in a fresh interpreter with only ``root`` on the path."""
    script = "import time; t=time.perf_counter(); import dify_plugin; print((time.perf_counter()-t)*1000)"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(root), **env_extra}
    samples = []
    for _ in range(runs):
        proc = subprocess.run(
            [str(python), "-S", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        samples.append(float(proc.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def differing_entries(first: Path, second: Path) -> list[str]:
    """Entries whose bytes differ between two zips (diagnostic for a reproducibility miss)."""
    with zipfile.ZipFile(first) as za, zipfile.ZipFile(second) as zb:
        names_a, names_b = set(za.namelist()), set(zb.namelist())
        changed = [n for n in sorted(names_a & names_b) if za.read(n) != zb.read(n)]
    return sorted(names_a ^ names_b) + changed


TOKENGPT = ROOT / "bench" / "plugins" / "tokengpt"
#: What the prune rules for type stubs and extension sources drop (prune.py rule 3a).
STUB_SUFFIXES = (".pyi", ".c", ".cpp", ".pyx", ".pxd")


#: Cold builds (each with its own empty cache directory) and warm builds of TokenGPT.
COLD_RUNS = 3
WARM_RUNS = 5
#: Phases of the dependency tree's production (meta.json "timings", steps.py), in pipeline order.
PRODUCE_PHASES = ("install", "prune", "compile", "compile+deflate")


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def spread(values: list[float]) -> str:
    return f"min {min(values):.2f} / median {statistics.median(values):.2f} / max {max(values):.2f}"


def phases(runs: list[dict[str, float]]) -> str:
    """Median seconds of each phase over ``runs``, in the order the build meets them."""
    names = [name for name in dict.fromkeys(name for run in runs for name in run) if name != "cpu"]
    return ", ".join(
        f"{name} {statistics.median([run.get(name, 0.0) for run in runs]):.2f}"
        for name in names
        if statistics.median([run.get(name, 0.0) for run in runs]) >= 0.01
    )


def cpu_seconds() -> float:
    """User + system CPU of this process (all its threads) and of its waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_tokengpt(out: Path, cache: Path) -> tuple[float, Any, dict[str, float]]:
    """One build of TokenGPT: wall seconds, result, and its phases (steps; the tree's own phases).

    The phases carry ``cpu``: CPU seconds of the build, every thread and subprocess (uv, the compile
    shards, the smoke init) included; steadier than wall time on a shared machine.
    """
    options = BuildOptions(arch="x86_64", python="3.12", cache_dir=cache, tiktoken_data=True)
    cpu = cpu_seconds()
    start = time.perf_counter()
    result = build(TOKENGPT, out, options)
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    produce: dict[str, float] = {}
    if not result.report.cache_hit:
        meta = json.loads((cache / "deps" / result.report.cache_key / "meta.json").read_text())
        timings = meta.get("timings", {})
        produce = {f"ResolveDependencies.{n}": float(timings[n]) for n in PRODUCE_PHASES if n in timings}
    steps: dict[str, float] = {}
    for name, step_seconds in result.report.steps:
        steps[name] = step_seconds
        if name == "ResolveDependencies":
            steps.update(produce)
    steps["cpu"] = cpu
    return seconds, result, steps


def realistic_builds(work: Path) -> list[dict[str, Any]]:
    """Cold builds (each with an empty cache directory of its own) and warm builds of
    bench/plugins/tokengpt, with their phases; its sizes."""
    if not os.environ.get("DIFY_LAMBDA_TIKTOKEN_CACHE"):
        return []
    cold_s: list[float] = []
    cold_phases: list[dict[str, float]] = []
    loads: list[str] = []
    shas: set[str] = set()
    versions: set[tuple[tuple[str, str], ...]] = set()
    cold = None
    for i in range(COLD_RUNS):
        loads.append(load_average())
        seconds, result, steps = timed_tokengpt(work / f"tg-cold{i}", work / f"cache-tokengpt{i}")
        assert not result.report.cache_hit
        cold = cold or result
        cold_s.append(seconds)
        cold_phases.append(steps)
        shas.add(result.report.artifact_sha256)
        versions.add(tuple((d.name, d.version) for d in result.report.dependencies))
    assert cold is not None
    cache = work / "cache-tokengpt0"
    warm_s: list[float] = []
    warm_phases: list[dict[str, float]] = []
    for i in range(WARM_RUNS):
        loads.append(load_average())
        seconds, warm, steps = timed_tokengpt(work / f"tg-warm{i}", cache)
        assert warm.report.cache_hit
        warm_s.append(seconds)
        warm_phases.append(steps)
        shas.add(warm.report.artifact_sha256)
    # What rule 3a removed, measured on the anchor install of the same requirements.
    anchor = work / "tg-anchor"
    target = Target("x86_64", "3.12", 512, 900, "AWS_IAM")
    reqs = [r for r in (TOKENGPT / "requirements.txt").read_text().splitlines() if r.strip()]
    DependencyInstaller(target, cache_dir=cache).install(reqs, anchor)
    stubs = sum(p.stat().st_size for p in anchor.rglob("*") if p.is_file() and p.name.endswith(STUB_SUFFIXES))
    sizes = cold.report.sizes
    cold_median = statistics.median(cold_s)
    warm_median = statistics.median(warm_s)
    return [
        {
            "name": f"TokenGPT (realistic): cold build, empty cache directory (median of {COLD_RUNS})",
            "value": round(cold_median, 2),
            "unit": "s",
            "target": "<= 15 s",
            "note": f"{spread(cold_s)} s; CPU time {spread([p['cpu'] for p in cold_phases])} s (every "
            f"thread and subprocess: steadier than wall time under load); phases (median s): "
            f"{phases(cold_phases)}. ResolveDependencies.* are its parts: uv resolves, downloads and "
            "installs for the target (hard links from its cache), the tree is pruned, then compiled in "
            "fixed shards while it is deflated into its pack (compile and compile+deflate count from one "
            "start: they overlap); SmokeInit unpacks the artifact and loads the plugin",
        },
        {
            "name": f"TokenGPT (realistic): warm build (median of {WARM_RUNS})",
            "value": round(warm_median, 2),
            "unit": "s",
            "anchor": "cold build",
            "anchor_value": round(cold_median, 2),
            "ratio": round(warm_median / cold_median, 3),
            "target": "<= 2 s",
            "note": f"{spread(warm_s)} s; CPU time {spread([p['cpu'] for p in warm_phases])} s; phases "
            f"(median s): {phases(warm_phases)}. The dependency part of "
            "the zip comes pre-deflated from the cache and the smoke init of this very artifact is remembered",
        },
        {
            "name": "TokenGPT (realistic): one SHA-256 and one resolved set over every cold and warm build",
            "value": len(shas) == 1 and len(versions) == 1,
            "unit": "",
            "target": "yes",
            "note": f"{COLD_RUNS} cold builds with {COLD_RUNS} cache directories, {WARM_RUNS} warm builds; "
            f"load average before each build: {', '.join(loads)}",
        },
        {
            "name": "TokenGPT (realistic): artifact unzipped",
            "value": round(sizes.unzipped / MIB, 2),
            "unit": "MiB",
            "anchor": "same, without pruning type stubs and C/Cython sources",
            "anchor_value": round((sizes.unzipped + stubs) / MIB, 2),
            "ratio": round(sizes.unzipped / (sizes.unzipped + stubs), 3),
            "note": f"{sizes.zipped / MIB:.2f} MiB zipped; the stub/source rule drops {stubs / MIB:.2f} MiB "
            "(numpy's .pyi files are most of it)",
        },
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write results here")
    args = parser.parse_args()
    figures: list[dict[str, Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        work = Path(tmp)
        cache = work / "cache"
        # tiktoken's files only when an offline copy is given (the bench must not depend on their host).
        tiktoken = bool(os.environ.get("DIFY_LAMBDA_TIKTOKEN_CACHE"))
        options = BuildOptions(arch="x86_64", python="3.12", cache_dir=cache, tiktoken_data=tiktoken)
        cold_s, cold = timed_build(work / "cold", options)
        warm_s, warm = timed_build(work / "warm", options)
        fresh_s, fresh = timed_build(
            work / "fresh",
            BuildOptions(
                arch="x86_64", python="3.12", cache_dir=cache, use_cache=False, tiktoken_data=tiktoken
            ),
        )
        assert not cold.report.cache_hit and warm.report.cache_hit

        # Anchor: the SDK's own dependency footprint for the same target, as plain pip installs it.
        anchor_tree = work / "sdk-footprint"
        target = Target("x86_64", "3.12", 256, 900, "AWS_IAM")
        DependencyInstaller(target, cache_dir=cache).install([SDK_REQUIREMENT], anchor_tree)
        entries = tree_entries(anchor_tree, "dependencies")
        anchor_unzipped = sum(e.size for e in entries)
        anchor_zipped, _ = write_zip(entries, work / "sdk-footprint.zip")

        sizes = cold.report.sizes
        figures += [
            {"name": "cold build (empty cache, downloads)", "value": round(cold_s, 2), "unit": "s"},
            {
                "name": "warm build (dependency cache hit)",
                "value": round(warm_s, 2),
                "unit": "s",
                "anchor": "cold build",
                "anchor_value": round(cold_s, 2),
                "ratio": round(warm_s / cold_s, 3),
                "target": "seconds",
            },
            {
                "name": "fresh rebuild without the dependency cache (pip cache kept)",
                "value": round(fresh_s, 2),
                "unit": "s",
            },
            {
                "name": "artifact zipped",
                "value": round(sizes.zipped / MIB, 2),
                "unit": "MiB",
                "anchor": "SDK footprint zipped",
                "anchor_value": round(anchor_zipped / MIB, 2),
                "ratio": round(sizes.zipped / anchor_zipped, 3),
                "note": "ours adds the runtime, aws-lambda-powertools and target .pyc; drops tests/ and bin/",
            },
            {
                "name": "artifact unzipped",
                "value": round(sizes.unzipped / MIB, 2),
                "unit": "MiB",
                "anchor": "SDK footprint unzipped",
                "anchor_value": round(anchor_unzipped / MIB, 2),
                "ratio": round(sizes.unzipped / anchor_unzipped, 3),
                "target": "<= 250 MiB (Lambda limit)",
            },
            {
                "name": "pruned from dependencies",
                "value": round(cold.report.pruned_bytes / MIB, 2),
                "unit": "MiB",
            },
            {
                "name": "reproducible (cold, warm and fresh builds give one SHA-256)",
                "value": len(
                    {cold.report.artifact_sha256, warm.report.artifact_sha256, fresh.report.artifact_sha256}
                )
                == 1,
                "unit": "",
                "target": "yes",
            },
        ]
        for label, other in (("warm", warm), ("fresh", fresh)):
            if other.report.artifact_sha256 != cold.report.artifact_sha256:
                diff = differing_entries(cold.artifact, other.artifact)
                notes.append(
                    f"{label} build differs from the cold build in {len(diff)} entries: {', '.join(diff[:5])} "
                    "(sources edited while the benchmark ran also show up here)"
                )
        python = find_interpreter("3.12")
        if python is not None:
            task = work / "task"
            with zipfile.ZipFile(cold.artifact) as zf:
                zf.extractall(task)
            ours_ms = import_time(python, task, {})
            anchor_ms = import_time(python, anchor_tree, {"PYTHONDONTWRITEBYTECODE": "1"})
            figures.append(
                {
                    "name": "import dify_plugin (fresh interpreter, median of 5)",
                    "value": round(ours_ms, 1),
                    "unit": "ms",
                    "anchor": "SDK footprint without .pyc",
                    "anchor_value": round(anchor_ms, 1),
                    "ratio": round(ours_ms / anchor_ms, 3),
                    "target": "< 1x",
                    "note": "the .pyc compiled for the target Python at build time skip source compilation",
                }
            )
        else:
            notes.append("no local python3.12: import-time figure skipped")
        notes.append(
            f"compile status: {cold.report.compile.dependencies}; sha256 {cold.report.artifact_sha256[:16]}…"
        )
        notes.append(f"machine: {os.cpu_count()} cores; builds of plugins/mockgpt for python3.12 x86_64")
        figures += realistic_builds(work)
    for f in figures:
        anchor = f" (anchor {f['anchor']}: {f['anchor_value']}, ratio {f['ratio']})" if "anchor" in f else ""
        print(f"{f['name']}: {f['value']} {f['unit']}{anchor}")
    for n in notes:
        print(f"note: {n}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"bench": "build", "title": "Builder (issue 3)", "figures": figures, "notes": notes}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
