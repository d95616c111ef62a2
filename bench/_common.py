"""Shared pieces of the benchmarks: ports, process handling, RSS, a timing Runtime API, percentiles."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = sys.executable
RUNTIME = "/2018-06-01/runtime"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values)


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_sdk_server(
    plugin_dir: Path, env: dict[str, str], python: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], str, float]:
    """Start the SDK's own serverless server; return (process, url, seconds from spawn to /health OK).

    ``python``: the interpreter command line (default: this venv's interpreter).
    """
    import httpx

    port = free_port()
    full_env = {
        **os.environ,
        **env,
        "INSTALL_METHOD": "serverless",
        "SERVERLESS_HOST": "127.0.0.1",
        "SERVERLESS_PORT": str(port),
    }
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*(python or [VENV_PY]), "-m", "main"],
        cwd=plugin_dir,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = t0 + 60
    with httpx.Client(timeout=1.0) as client:
        while time.perf_counter() < deadline:
            try:
                if client.get(url + "/health").status_code == 200:
                    return proc, url, time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.002)
    stop(proc)
    raise RuntimeError(f"SDK server for {plugin_dir} did not become ready")


@dataclass
class Invocation:
    event: dict[str, Any]
    request_id: str
    delivered_at: float = 0.0
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    done_at: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None

    def body(self) -> bytes:
        data = b"".join(c for _, c in self.chunks)
        _head, _, rest = data.partition(b"\0" * 8)
        return rest


class _Collect:
    """Collects a whole HTTP response and sends it in one write on flush()."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        self.raw.write(b"".join(self.parts))
        self.parts.clear()
        self.raw.flush()


class TimingRuntimeAPI:
    """A minimal Lambda Runtime API that records when events leave and when response chunks arrive."""

    def __init__(self) -> None:
        self.pending: queue.Queue[Invocation] = queue.Queue()
        self.by_id: dict[str, Invocation] = {}
        self.first_next_at: float | None = None
        self.next_seen = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Like the real Runtime API: no Nagle stall between a response's header and body writes.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == f"{RUNTIME}/invocation/next":
                    if api.first_next_at is None:
                        api.first_next_at = time.perf_counter()
                        api.next_seen.set()
                    inv = api.pending.get()
                    body = json.dumps(inv.event).encode()
                    self.wfile = _Collect(self.wfile)  # type: ignore[assignment]
                    self.send_response(200)
                    self.send_header("Lambda-Runtime-Aws-Request-Id", inv.request_id)
                    self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 900_000))
                    self.send_header(
                        "Lambda-Runtime-Invoked-Function-Arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:bench",
                    )
                    self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    # Stamp before the bytes leave: a fast answer may arrive before flush() returns.
                    inv.delivered_at = time.perf_counter()
                    self.wfile.flush()
                    self.wfile = self.wfile.raw  # type: ignore[attr-defined]
                    return
                self.send_error(404)

            def do_POST(self) -> None:
                parts = self.path.split("/")
                length = self.headers.get("Content-Length")
                if self.path.endswith("/response") and length is None:
                    inv = api.by_id[parts[-2]]
                    while True:
                        size_line = self.rfile.readline()
                        size = int(size_line.strip().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            break
                        data = self.rfile.read(size)
                        self.rfile.readline()
                        inv.chunks.append((time.perf_counter(), data))
                    inv.done_at = time.perf_counter()
                else:
                    raw = self.rfile.read(int(length or 0))
                    if "/invocation/" in self.path:
                        inv = api.by_id[parts[-2]]
                        inv.chunks.append((time.perf_counter(), raw))
                        if self.path.endswith("/error"):
                            inv.error = raw.decode(errors="replace")
                        inv.done_at = time.perf_counter()
                    else:
                        sys.stderr.write(f"runtime api: {self.path}: {raw[:500]!r}\n")
                self.send_response(202)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                if "/invocation/" in self.path:
                    api.by_id[parts[-2]].done.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def invoke(self, event: dict[str, Any], request_id: str, timeout: float = 120) -> Invocation:
        inv = Invocation(event=event, request_id=request_id)
        self.by_id[request_id] = inv
        self.pending.put(inv)
        if not inv.done.wait(timeout):
            raise RuntimeError(f"invocation {request_id} did not complete")
        return inv

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def function_url_event(
    body: bytes, path: str = "/invoke", query: str = "action=invoke_llm"
) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", "accept": "text/event-stream"},
        "requestContext": {
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
        },
        "body": body.decode(),
        "isBase64Encoded": False,
    }
