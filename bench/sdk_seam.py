"""Init cost of the handler's own loop vs the SDK's ``Plugin`` seam, per ``dify_plugin`` release.

``python bench/sdk_seam.py [VERSION ...]`` (default: the CI releases of tests/support/sdk_matrix.py)
loads the tiny test plugin in a fresh process per run, four ways, and prints the median CPU time
(user + system, from process start to a loaded plugin; steadier than wall time on a shared machine)
and the peak RSS; for the seam also the wall time of its extra steps alone, measured in-process:

* ``ours`` — what the handler does (``SdkPluginRuntime.load``);
* ``seam`` — that plus what running the SDK's own ``Plugin`` loop behind a reader of ours would
  need on top: its server module (``dify_plugin.plugin``: Flask, werkzeug, the stdio/TCP readers)
  and its request thread pool;

each in the ``lazy`` and ``full`` SDK import modes. The figures in docs/handler.md come from here.
Not part of ``make bench`` (it needs one venv per release).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import sdk_matrix

PLUGIN = ROOT / "tests" / "support" / "tinyplugin"
RUNS = int(os.environ.get("RUNS", "7"))
DESIGNS = ("ours", "seam")
MODES = ("lazy", "full")

# Run in the child: load the plugin as the handler does, optionally add the seam's imports.
CHILD = """
import os, resource, sys, time
from pathlib import Path
from dify_lambda.handlers.plugin import SdkPluginRuntime
SdkPluginRuntime.load(Path(sys.argv[2]))
started = time.perf_counter()
if sys.argv[1] == "seam":
    from concurrent.futures import ThreadPoolExecutor
    import dify_plugin.plugin as sdk_plugin
    sdk_plugin.Plugin.__new__(sdk_plugin.Plugin)
    ThreadPoolExecutor(max_workers=1000).submit(int).result()
extra = (time.perf_counter() - started) * 1000
sys.stdout.write(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} {extra:.1f}")
sys.stdout.flush()
os._exit(0)
"""


def run_once(python: Path, design: str, mode: str) -> tuple[float, int, float]:
    env = {**os.environ, "DIFY_LAMBDA_SDK_IMPORT": mode}
    proc = subprocess.Popen(
        [str(python), "-c", CHILD, design, str(PLUGIN)],
        cwd=PLUGIN,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0 or len(out.split()) != 2:
        raise RuntimeError(f"{design}/{mode} on {python} failed (status {status})")
    rss, extra = out.split()
    return (usage.ru_utime + usage.ru_stime) * 1000, int(rss), float(extra)


def main(versions: list[str]) -> None:
    print(f"CPU ms from process start to a loaded plugin (median of {RUNS}), peak RSS MiB")
    print("| Release | " + " | ".join(f"{d}, `{m}`" for m in MODES for d in DESIGNS) + " |")
    print("|---" * (1 + len(MODES) * len(DESIGNS)) + "|")
    for version in versions:
        python = sdk_matrix.sdk_python(version)
        cells = []
        for mode in MODES:
            for design in DESIGNS:
                samples = [run_once(python, design, mode) for _ in range(RUNS)]
                cpu = statistics.median(s[0] for s in samples)
                cell = f"{cpu:.0f} ms, {max(s[1] for s in samples)} MiB"
                if design == "seam":
                    cell += f" (+{statistics.median(s[2] for s in samples):.0f} ms wall for the seam)"
                cells.append(cell)
        print(f"| {version} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or sdk_matrix.matrix({}))
