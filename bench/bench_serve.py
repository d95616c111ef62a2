"""``dify-lambda serve`` start time: first start (unpacks the artifact) and later starts (unpack cache hit).

All in one run on this machine, for a build of plugins/mockgpt for this machine's architecture (the
dependency cache of ``build`` is used, so only the first benchmark run downloads wheels):

- the CLI is started as a user starts it, with an empty ``--cache-dir``, and timed from ``exec`` to the
  ``serving ...`` banner; it is stopped and started again ``RUNS - 1`` times on the same cache;
- the anchor is the worker's own init (process start to its first ``/next``, what Lambda reports as
  Init Duration), which ``serve`` prints as ``init X s``, measured in the same start. The target for a
  later start is that init plus 0.5 s (issue 11).

Usage: ``python bench/bench_serve.py [--json out.json] [--runs N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dify_lambda.emulator.platform_check import host_arch
from dify_lambda.packaging.build import BuildOptions, build

PLUGIN = ROOT / "plugins" / "mockgpt"
CLI = Path(sys.executable).with_name("dify-lambda")


def start_once(build_dir: Path, cache: Path) -> tuple[float, float]:
    """Seconds from exec to the banner, and the worker init ``serve`` reports."""
    with tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen(
            [str(CLI), "serve", str(build_dir), "--port", "0", "--cache-dir", str(cache)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
            started = time.perf_counter() - began
            if not banner.startswith("serving "):
                raise RuntimeError(f"serve did not start: {banner!r}")
            deadline = time.monotonic() + 10
            text = ""
            while time.monotonic() < deadline:  # the init line follows the banner on stderr
                err.seek(0)
                text = err.read().decode(errors="replace")
                if re.search(r"init [0-9.]+ s", text):
                    break
                time.sleep(0.02)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
            if proc.stdout is not None:
                proc.stdout.close()
        found = re.search(r"init ([0-9.]+) s", text)
        if found is None:
            raise RuntimeError("serve printed no init time")
        return started, float(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        result = build(PLUGIN, work / "mockgpt", BuildOptions(arch=host_arch(), python="3.12"))
        cache = work / "serve-cache"
        runs = [start_once(result.out_dir, cache) for _ in range(max(2, args.runs))]
        first, later = runs[0], runs[1:]
        later_start = statistics.median(s for s, _ in later)
        later_init = statistics.median(i for _, i in later)
        overhead = statistics.median(s - i for s, i in later)
        sizes = result.report.sizes
        notes.append(
            f"artifact {sizes.zipped / 2**20:.1f} MiB zipped, {sizes.unzipped / 2**20:.1f} MiB unzipped; "
            f"{len(later)} later starts; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
    figures: list[dict[str, Any]] = [
        {
            "name": "first start (unpacks into the cache)",
            "value": round(first[0], 2),
            "unit": "s",
            "anchor": "worker init, same start",
            "anchor_value": round(first[1], 2),
            "ratio": round(first[0] / first[1], 3),
        },
        {
            "name": "later start (cache hit), median",
            "value": round(later_start, 2),
            "unit": "s",
            "anchor": "worker init, same starts (median)",
            "anchor_value": round(later_init, 2),
            "ratio": round(later_start / later_init, 3),
            "target": "<= init + 0.5 s",
        },
        {
            "name": "later start minus its worker init, median",
            "value": round(overhead, 2),
            "unit": "s",
            "target": "<= 0.5 s",
            "note": "interpreter start, CLI and emulator imports, sha256 of the zip, template and platform checks",
        },
    ]
    for f in figures:
        anchor = f" (anchor {f['anchor']}: {f['anchor_value']}, ratio {f['ratio']})" if "anchor" in f else ""
        print(f"{f['name']}: {f['value']} {f['unit']}{anchor}")
    for n in notes:
        print(f"note: {n}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"bench": "serve", "title": "serve start (issue 11)", "figures": figures, "notes": notes},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
