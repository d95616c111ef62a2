"""Init time and first-token time of a built artifact at Lambda memory sizes, CPU limited in proportion.

Lambda gives a function CPU in proportion to its memory: 1769 MB is one full vCPU, so 128 MB gets
128/1769 of a core (about 7 %). This benchmark emulates that locally with a cgroup (v1 ``cpu`` and
``memory`` controllers, as root): ``cpu.cfs_quota_us = cpu.cfs_period_us * MB / 1769`` and
``memory.limit_in_bytes = MB MiB``. The process joins its cgroups before it execs Python, so the whole
init runs limited.

Plugin: ``tests/support/wild/tiktokencount`` (the SDK, gevent, pydantic, httpx and tiktoken imported at
init; the first request counts the prompt's tokens with tiktoken's gpt2 encoding, as official plugins
do before answering), built for x86_64/3.12 with tiktoken's files inside. It runs unpacked, through the
streaming loop under a local Runtime API, exactly as ``exec_wrapper.sh`` starts it (``-S``: no host
site-packages).

- init: from spawn to the loop's first ``/next`` (what Lambda bills as Init Duration);
- first token: from the event leaving ``/next`` to the first event line arriving;
- peak: the cgroup's peak memory (``memory.max_usage_in_bytes``); ``OOM`` when the limit killed it.

Usage: ``sudo .venv/bin/python bench/bench_memory.py [--runs 3] [--sizes 128,256,512,1024,1769]``.
Offline hosts: ``DIFY_LAMBDA_TIKTOKEN_CACHE=DIR`` with tiktoken's gpt2 files. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, TimingRuntimeAPI, function_url_event, median, stop

sys.path.insert(0, str(ROOT))
from dify_lambda import wire
from dify_lambda.packaging.build import BuildOptions, build
from dify_lambda.packaging.interpreters import find_interpreter

PLUGIN = ROOT / "tests" / "support" / "wild" / "tiktokencount"
CGROUP = Path("/sys/fs/cgroup")
ONE_VCPU_MB = 1769
PERIOD_US = 100_000


def _cgroups(name: str, mb: int) -> tuple[Path, Path]:
    cpu, mem = CGROUP / "cpu" / name, CGROUP / "memory" / name
    for path in (cpu, mem):
        path.mkdir(exist_ok=True)
    (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (cpu / "cpu.cfs_quota_us").write_text(str(max(1000, PERIOD_US * mb // ONE_VCPU_MB)))
    (mem / "memory.limit_in_bytes").write_text(str(mb * 1024 * 1024))
    (mem / "memory.max_usage_in_bytes").write_text("0")
    return cpu, mem


def _remove(paths: tuple[Path, Path]) -> None:
    for path in paths:
        for _ in range(50):
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def _event(text: str) -> dict[str, object]:
    envelope = wire.build_envelope(
        "invoke_llm",
        {
            "provider": "tiktokencount",
            "model_type": "llm",
            "model": "tiktokencount-1",
            "credentials": {},
            "prompt_messages": [{"role": "user", "content": text}],
            "model_parameters": {},
            "stop": None,
            "tools": None,
            "stream": True,
        },
        user_id="bench",
        session_id="bench",
    )
    return function_url_event(wire.encode_envelope(envelope))


def _first_line_at(chunks: list[tuple[float, bytes]]) -> float | None:
    return next((at for at, data in chunks if data.strip()), None)


def one_start(root: Path, python: Path, mb: int | None) -> dict[str, float | str]:
    api = TimingRuntimeAPI()
    name = f"dify-lambda-bench-{os.getpid()}"
    groups = _cgroups(name, mb) if mb else None
    join = f"echo $$ > {groups[0]}/cgroup.procs && echo $$ > {groups[1]}/cgroup.procs && " if groups else ""
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "LAMBDA_TASK_ROOT": str(root),
        "PYTHONPATH": str(root),
        "DIFY_LAMBDA_PLUGIN_ROOT": str(root / "plugin"),
        "TIKTOKEN_CACHE_DIR": str(root / "tiktoken_cache"),
        "INSTALL_METHOD": "serverless",
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(mb or ONE_VCPU_MB),
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["sh", "-c", f'{join}exec "$0" -S -m dify_lambda.handlers.stream', str(python)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    result: dict[str, float | str] = {}
    try:
        while not api.next_seen.wait(0.5):
            if proc.poll() is not None:
                result["error"] = "OOM" if proc.returncode == -9 else f"exit {proc.returncode}"
                return result
        assert api.first_next_at is not None
        result["init_ms"] = (api.first_next_at - t0) * 1000
        inv = api.invoke(_event("How many tokens does this benchmark prompt have today?"), "first", 600)
        first = _first_line_at(inv.chunks)
        if inv.error or first is None:
            result["error"] = "OOM" if proc.poll() == -9 else "no answer"
            return result
        result["first_token_ms"] = (first - inv.delivered_at) * 1000
    finally:
        if groups:
            result["peak_mb"] = int((groups[1] / "memory.max_usage_in_bytes").read_text()) / 1048576
        stop(proc)
        api.close()
        if groups:
            _remove(groups)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="128,256,512,1024,1769")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".bench-cache")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    python = find_interpreter("3.12")
    if python is None:
        print("bench_memory: needs a local Python 3.12", file=sys.stderr)
        return 2
    if not (CGROUP / "cpu").is_dir() or not os.access(CGROUP / "cpu", os.W_OK):
        print("bench_memory: needs a writable cgroup v1 cpu controller (run as root)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="dify-lambda-bench-memory-"))
    try:
        result = build(
            PLUGIN, work / "out", BuildOptions(arch="x86_64", python="3.12", cache_dir=args.cache_dir)
        )
        root = work / "task"
        with zipfile.ZipFile(result.artifact) as zf:
            zf.extractall(root)
        (root / "dify_lambda/handlers/exec_wrapper.sh").chmod(0o755)
        rows: dict[str, list[dict[str, float | str]]] = {}
        sizes = [int(s) for s in args.sizes.split(",")]
        for mb in sizes:
            rows[str(mb)] = [one_start(root, python, mb) for _ in range(args.runs)]
            print(f"{mb} MB: {rows[str(mb)]}", file=sys.stderr, flush=True)
        rows["unlimited"] = [one_start(root, python, None) for _ in range(args.runs)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"| MemorySize | CPU share | init (median of {args.runs}) | first token | peak memory |")
    print("|---|---|---|---|---|")
    for key, runs in rows.items():
        ok = [r for r in runs if "error" not in r]
        share = (
            "host (no limit)" if key == "unlimited" else f"{min(1.0, int(key) / ONE_VCPU_MB):.0%} of a vCPU"
        )
        label = key if key == "unlimited" else f"{key} MB"
        errors = sorted({str(r["error"]) for r in runs if "error" in r})
        if not ok:
            print(f"| {label} | {share} | {', '.join(errors)} | | |")
            continue
        peak = max(float(r.get("peak_mb", 0)) for r in runs) if key != "unlimited" else float("nan")
        print(
            f"| {label} | {share} | {median([float(r['init_ms']) for r in ok]) / 1000:.2f} s "
            f"| {median([float(r['first_token_ms']) for r in ok]) / 1000:.2f} s "
            f"| {'-' if peak != peak else f'{peak:.0f} MB'}{' (' + ', '.join(errors) + ')' if errors else ''} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
