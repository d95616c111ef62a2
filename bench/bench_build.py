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

Run at most once or twice: the cold build downloads ~20 MB from the package index.
Usage: ``python bench/bench_build.py [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
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
