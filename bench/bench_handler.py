"""Handler benchmark: dify-lambda's streaming handler against the SDK's own serverless server.

Both run the same plugin (plugins/mockgpt with no per-word delay, and bench/plugins/clockgpt for chunk
delivery) on this machine, in the same run:

- process start to ready: spawn → the SDK answers ``GET /health`` / our loop asks the Runtime API for ``/next``;
- per-invocation time "inside the sandbox": the SDK server from request sent to last byte over loopback HTTP;
  ours from the event leaving the Runtime API to the response's last chunk arriving back at it;
- chunk delivery delay: a chunk's yield time (embedded by clockgpt) to its arrival at the receiver;
- resident memory of the serving process after the measured invocations.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    ROOT,
    VENV_PY,
    TimingRuntimeAPI,
    function_url_event,
    median,
    pct,
    rss_mib,
    start_sdk_server,
    stop,
)

from dify_lambda import wire

MOCKGPT = ROOT / "plugins" / "mockgpt"
CLOCKGPT = ROOT / "bench" / "plugins" / "clockgpt"
ENV = {"MOCKGPT_WORD_DELAY": "0", "PYTHONDONTWRITEBYTECODE": "0"}


def llm_envelope(provider: str, model: str, text: str, session: str) -> bytes:
    env = wire.build_envelope(
        "invoke_llm",
        {
            "provider": provider,
            "model_type": "llm",
            "model": model,
            "credentials": {"api_key": "mock-bench"},
            "prompt_messages": [{"role": "user", "content": text}],
            "model_parameters": {},
            "stop": None,
            "tools": None,
            "stream": True,
        },
        user_id="bench",
        session_id=session,
    )
    return wire.encode_envelope(env)


def start_ours(plugin_dir: Path, api: TimingRuntimeAPI) -> tuple[subprocess.Popen[bytes], float]:
    env = {
        **os.environ,
        **ENV,
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "DIFY_LAMBDA_PLUGIN_ROOT": str(plugin_dir),
        "PYTHONPATH": str(ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "POWERTOOLS_METRICS_NAMESPACE": "DifyLambdaBench",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [VENV_PY, "-m", "dify_lambda.handlers.stream"],
        cwd=plugin_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    if not api.next_seen.wait(60):
        stop(proc)
        raise RuntimeError("our handler did not ask for /next within 60 s")
    assert api.first_next_at is not None
    return proc, api.first_next_at - t0


def sdk_call(conn: http.client.HTTPConnection, body: bytes) -> tuple[float, bytes, list[float]]:
    t0 = time.perf_counter()
    conn.request("POST", "/invoke?action=invoke_llm", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    arrivals: list[float] = []
    data = b""
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            break
        arrivals.append(time.perf_counter())
        data += chunk
    return time.perf_counter() - t0, data, arrivals


def clock_delays_from(pairs: list[tuple[float, bytes]]) -> list[float]:
    """Yield-to-arrival delays (ms) for clockgpt chunks: each stream event's content is time.time_ns() at yield."""
    delays: list[float] = []
    # perf_counter and time_ns differ in origin: convert arrival stamps to wall clock via one offset.
    offset = time.time() - time.perf_counter()
    for arrived, data in pairs:
        for line in data.split(b"\n\n"):
            if not line.strip() or b'"stream"' not in line:
                continue
            try:
                content = json.loads(line)["data"]["data"]["delta"]["message"]["content"]
                stamp = int(content) / 1e9
            except (ValueError, KeyError, TypeError):
                continue
            delays.append(((arrived + offset) - stamp) * 1000)
    return delays


def measure(n: int, starts: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    body = lambda i: llm_envelope("mockgpt", MOCKGPT_MODEL, f"benchmark question {i % 7}", f"s-{i}")  # noqa: E731

    # --- process start to ready -------------------------------------------------------------------
    sdk_ready, our_ready = [], []
    for _ in range(starts):
        proc, _url, secs = start_sdk_server(MOCKGPT, ENV)
        sdk_ready.append(secs)
        stop(proc)
        api = TimingRuntimeAPI()
        proc2, secs2 = start_ours(MOCKGPT, api)
        our_ready.append(secs2)
        stop(proc2)
        api.close()
    results["ready"] = (median(our_ready), median(sdk_ready))

    # --- per-invocation time and memory: SDK -----------------------------------------------------
    proc, url, _ = start_sdk_server(MOCKGPT, ENV)
    try:
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port))
        for i in range(20):
            sdk_call(conn, body(i))
        sdk_times = []
        for i in range(n):
            secs, data, _ = sdk_call(conn, body(i))
            assert data.rstrip().endswith(b'"end","data":{}}}'), data[-200:]
            sdk_times.append(secs * 1000)
        sdk_rss = rss_mib(proc.pid)
        conn.close()
    finally:
        stop(proc)

    # --- per-invocation time and memory: ours ----------------------------------------------------
    api = TimingRuntimeAPI()
    proc, _ = start_ours(MOCKGPT, api)
    try:
        for i in range(20):
            api.invoke(function_url_event(body(i)), f"warm-{i}")
        our_times = []
        for i in range(n):
            inv = api.invoke(function_url_event(body(i)), f"req-{i}")
            assert inv.error is None, inv.error
            assert inv.body().rstrip().endswith(b'"end","data":{}}}'), inv.body()[-200:]
            our_times.append((inv.done_at - inv.delivered_at) * 1000)
        our_rss = rss_mib(proc.pid)
    finally:
        stop(proc)
        api.close()
    results["p50"] = (pct(our_times, 50), pct(sdk_times, 50))
    results["p99"] = (pct(our_times, 99), pct(sdk_times, 99))
    results["rss"] = (our_rss, sdk_rss)

    # --- chunk delivery delay (clockgpt yields its own clock as content) --------------------------
    if CLOCKGPT.exists():
        clock_body = llm_envelope("clockgpt", "clockgpt", "tick", "clock")
        proc, url, _ = start_sdk_server(CLOCKGPT, {"CLOCKGPT_TICKS": "50", "CLOCKGPT_INTERVAL": "0.01"})
        try:
            host, port = url.removeprefix("http://").split(":")
            conn = http.client.HTTPConnection(host, int(port))
            sdk_call(conn, clock_body)
            _, _, _ = sdk_call(conn, clock_body)
            # read event by event so each arrival stamp belongs to its own chunk
            conn.request("POST", "/invoke", body=clock_body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            pairs: list[tuple[float, bytes]] = []
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                pairs.append((time.perf_counter(), chunk))
            sdk_delays = clock_delays_from(pairs)
        finally:
            stop(proc)
        os.environ.update({"CLOCKGPT_TICKS": "50", "CLOCKGPT_INTERVAL": "0.01"})
        api = TimingRuntimeAPI()
        proc, _ = start_ours(CLOCKGPT, api)
        try:
            api.invoke(function_url_event(clock_body), "clock-warm")
            inv = api.invoke(function_url_event(clock_body), "clock")
            our_delays = clock_delays_from(inv.chunks)
        finally:
            stop(proc)
            api.close()
        results["chunk"] = (
            (median(our_delays), pct(our_delays, 99)),
            (median(sdk_delays), pct(sdk_delays, 99)),
        )
    return results


MOCKGPT_MODEL = "mockgpt-1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("-n", type=int, default=300, help="measured invocations per side")
    parser.add_argument("--starts", type=int, default=5, help="cold starts per side")
    args = parser.parse_args()
    r = measure(args.n, args.starts)
    anchor = "SDK serverless server"
    figures: list[dict[str, Any]] = []

    def fig(name: str, ours: float, theirs: float, unit: str, target: str, note: str = "") -> None:
        figures.append(
            {
                "name": name,
                "value": round(ours, 3),
                "unit": unit,
                "anchor": anchor,
                "anchor_value": round(theirs, 3),
                "ratio": round(ours / theirs, 3) if theirs else None,
                "target": target,
                "note": note,
            }
        )

    fig("process start to ready (median)", r["ready"][0] * 1000, r["ready"][1] * 1000, "ms", "<= 0.8x")
    fig(
        "per-invocation time p50",
        r["p50"][0],
        r["p50"][1],
        "ms",
        "<= 0.5x",
        f"{args.n} streamed invoke_llm calls of MockGPT (no word delay) per side",
    )
    fig("per-invocation time p99", r["p99"][0], r["p99"][1], "ms", "<= 0.5x")
    fig("resident memory of the serving process", r["rss"][0], r["rss"][1], "MiB", "<= 1.0x")
    if "chunk" in r:
        (o50, o99), (s50, s99) = r["chunk"]
        fig("chunk delivery delay p50", o50, s50, "ms", "< 5 ms", "from the plugin's yield to the receiver")
        fig("chunk delivery delay p99", o99, s99, "ms", "< 5 ms")
    for f in figures:
        print(
            f"{f['name']:<45} ours {f['value']:>9.3f} {f['unit']:<4} SDK {f['anchor_value']:>9.3f}  ratio {f['ratio']}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"bench": "handler", "title": "Handler (issue 4)", "figures": figures}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
