"""Router benchmark: overhead vs raw httpx, 200 concurrent streams, memory per open stream.

A tiny streaming HTTP server (own process, so it does not share the GIL with the client being
measured) answers every ``POST /invoke`` with the same canned event lines: ``--events`` LLM-like
``stream`` messages carrying the request's session id and a sequence number, then ``end``. The
endpoint cost is therefore constant and both clients read identical bytes.

1. Overhead: sequential calls, alternating a raw ``httpx.Client.stream`` reader (split lines,
   ``json.loads`` each) and ``Router.invoke`` (same server, same bytes); ratio of medians.
2. Concurrency: 200 threads each run one routed stream at once; every event's session id and
   sequence number are checked: lost or reordered events are counted (must be 0).
3. Memory: N streams opened (first event read) and held at once; tracemalloc and RSS deltas / N.

Usage: ``python bench/bench_router.py [--json out.json] [--calls 300] [--events 50] [--streams 200]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import statistics
import sys
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from dify_lambda import wire
from dify_lambda.handlers.chunked import LAST_CHUNK, encode_chunk
from dify_lambda.router import Router, StreamEvent
from dify_lambda.router.routes import parse_route_table
from dify_lambda.router.transport import DeadlineTransport

PLUGIN = "bench/plugin"
DATA = {"provider": "bench", "model_type": "llm", "model": "m", "credentials": {}, "prompt_messages": []}
SID_MARK = b"00000000-0000-0000-0000-000000000000"


def _template(events: int) -> list[bytes]:
    lines = []
    for i in range(events):
        chunk = {
            "model": "bench-llm",
            "prompt_messages": [],
            "system_fingerprint": None,
            "delta": {
                "index": i,
                "message": {"role": "assistant", "content": f"word{i} ", "name": None, "tool_calls": []},
                "usage": None,
                "finish_reason": None,
            },
        }
        lines.append(wire.session_line(SID_MARK.decode(), "stream", chunk))
    lines.append(wire.end_line(SID_MARK.decode()))
    return lines


def _serve(port_queue: Any, events: int) -> None:
    template = _template(events)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        # Each event goes out at once, as a streaming function URL sends it (no Nagle delay).
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            sid = json.loads(body)["session_id"].encode()
            self.send_response(200)
            self.send_header("Content-Type", wire.RESPONSE_CONTENT_TYPE)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            out = self.wfile
            for line in template:
                line = line.replace(SID_MARK, sid)
                out.write(encode_chunk(line))
            out.write(LAST_CHUNK)
            out.flush()

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

    server = Server(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def _raw_call(client: httpx.Client, url: str, body: bytes, sid: str) -> int:
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream", wire.SESSION_ID_HEADER: sid}
    count = 0
    with client.stream("POST", url, content=body, headers=headers) as response:
        buf = b""
        chunks = response.iter_bytes()
        for chunk in chunks:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.strip():
                    obj = json.loads(line)
                    count += 1
                    if obj["data"]["type"] == "end":
                        # Read the (empty) rest so the connection is reused, as the router does.
                        for _ in chunks:
                            pass
                        return count
    return count


def bench_overhead(base: str, calls: int, router: Router) -> dict[str, Any]:
    url = f"{base}/invoke?action=invoke_llm"
    raw_times, router_times = [], []
    with httpx.Client(trust_env=False, timeout=30) as client:
        for i in range(calls + 20):
            sid = wire.new_session_id()
            body = wire.encode_envelope(wire.build_envelope("invoke_llm", DATA, user_id="u", session_id=sid))
            t0 = time.perf_counter()
            _raw_call(client, url, body, sid)
            t1 = time.perf_counter()
            n = sum(1 for _ in router.invoke(PLUGIN, "invoke_llm", DATA, user_id="u", session_id=sid))
            t2 = time.perf_counter()
            assert n > 0
            if i >= 20:  # warm-up excluded
                raw_times.append(t1 - t0)
                router_times.append(t2 - t1)
    raw_med, router_med = statistics.median(raw_times), statistics.median(router_times)
    return {
        "calls": calls,
        "raw_median_ms": raw_med * 1000,
        "router_median_ms": router_med * 1000,
        "raw_mean_ms": statistics.mean(raw_times) * 1000,
        "router_mean_ms": statistics.mean(router_times) * 1000,
        "ratio_median": router_med / raw_med,
        # Each router call runs right after a raw call: the median of the pairwise ratios cancels
        # most of the drift of a shared machine, so it is the headline figure.
        "ratio_paired_median": statistics.median(r / w for r, w in zip(router_times, raw_times, strict=True)),
        "ratio_mean": statistics.mean(router_times) / statistics.mean(raw_times),
        "target_ratio": 1.1,
    }


def bench_concurrency(router: Router, streams: int, events: int) -> dict[str, Any]:
    lost = reordered = errors = 0
    lock = threading.Lock()
    barrier = threading.Barrier(streams)

    def one() -> None:
        nonlocal lost, reordered, errors
        sid = wire.new_session_id()
        barrier.wait()
        seen: list[int] = []
        try:
            for event in router.invoke(PLUGIN, "invoke_llm", DATA, user_id="u", session_id=sid):
                if isinstance(event, StreamEvent):
                    seen.append(event.data["delta"]["index"])
        except Exception:
            with lock:
                errors += 1
            return
        expected = list(range(events))
        with lock:
            lost += len(set(expected) - set(seen))
            reordered += sum(1 for a, b in itertools.pairwise(seen) if b < a)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one) for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {
        "streams": streams,
        "events_per_stream": events,
        "lost_events": lost,
        "reordered_events": reordered,
        "failed_streams": errors,
        "wall_seconds": elapsed,
    }


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def bench_memory(router: Router, streams: int) -> dict[str, Any]:
    # Warm up code paths and the pool so one-off allocations are not counted per stream.
    for _ in range(3):
        sum(1 for _ in router.invoke(PLUGIN, "invoke_llm", DATA, user_id="u"))
    tracemalloc.start()
    rss0 = _rss_kib()
    snap0 = tracemalloc.take_snapshot()
    held = []
    for _ in range(streams):
        it = router.invoke(PLUGIN, "invoke_llm", DATA, user_id="u")
        next(it)  # request sent, response open, first event read
        held.append(it)
    snap1 = tracemalloc.take_snapshot()
    rss1 = _rss_kib()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
    for it in held:
        for _ in it:
            pass
    return {
        "open_streams": streams,
        "tracemalloc_bytes_per_stream": grown / streams,
        "rss_kib_per_stream": (rss1 - rss0) / streams,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write results to this file")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--streams", type=int, default=200)
    args = parser.parse_args(argv)

    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=_serve, args=(ports, args.events), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        base = f"http://127.0.0.1:{port}"
        table = parse_route_table(
            {"routes": {PLUGIN: {"deployments": [{"url": base, "auth": "none"}]}}}, source="bench"
        )
        limits = httpx.Limits(max_connections=args.streams + 10, max_keepalive_connections=args.streams + 10)
        with Router(table, transport=DeadlineTransport(limits=limits)) as router:
            results = {
                "overhead": bench_overhead(base, args.calls, router),
                "concurrency": bench_concurrency(router, args.streams, args.events),
                "memory": bench_memory(router, args.streams),
            }
    finally:
        server.terminate()
        server.join(timeout=5)
    o, c, m = results["overhead"], results["concurrency"], results["memory"]
    print(f"overhead ({o['calls']} calls, {args.events} events each):")
    print(f"  raw httpx median {o['raw_median_ms']:.3f} ms, router median {o['router_median_ms']:.3f} ms")
    print(f"  ratio paired median {o['ratio_paired_median']:.3f}x (target <= 1.1x);", end=" ")
    print(f"ratio of medians {o['ratio_median']:.3f}x, of means {o['ratio_mean']:.3f}x")
    print(f"concurrency: {c['streams']} streams in {c['wall_seconds']:.2f} s")
    print(
        f"  lost {c['lost_events']}, reordered {c['reordered_events']}, failed streams {c['failed_streams']}"
    )
    print(f"memory per open stream: {m['tracemalloc_bytes_per_stream'] / 1024:.1f} KiB (tracemalloc),")
    print(f"  {m['rss_kib_per_stream']:.1f} KiB (RSS delta)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    ok = c["lost_events"] == 0 and c["reordered_events"] == 0 and c["failed_streams"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
