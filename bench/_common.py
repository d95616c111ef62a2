"""Shared pieces of the benchmarks: ports, process handling, RSS, a timing Runtime API, percentiles."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dify_lambda.emulator.runtime_server import Exchange, LocalRuntimeApi, Message

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = sys.executable


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
class Invocation(Exchange):
    """An exchange that stamps when it left (``delivered_at``), each body chunk and its end."""

    delivered_at: float = 0.0
    #: ``(perf_counter at arrival, bytes)`` of each body chunk after the prelude.
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    done_at: float = 0.0
    error: str | None = None

    def put(self, message: Message) -> None:
        if message.kind == "chunk":
            self.chunks.append((time.perf_counter(), message.data))
        elif message.kind == "error" and not self.finished.is_set():
            self.error = message.data[1].decode(errors="replace")
        if message.kind in ("end", "trailer_error", "error") and not self.finished.is_set():
            self.done_at = time.perf_counter()
        super().put(message)

    @property
    def done(self) -> threading.Event:
        return self.finished

    def body(self) -> bytes:
        return b"".join(c for _, c in self.chunks)


class TimingRuntimeAPI(LocalRuntimeApi):
    """The emulator's Runtime API, recording when events leave and when response chunks arrive."""

    def __init__(self) -> None:
        self.first_next_at: float | None = None
        self.next_seen = threading.Event()
        super().__init__("arn:aws:lambda:us-east-1:123456789012:function:bench")

    def _next(self) -> Exchange | None:
        if self.first_next_at is None:
            self.first_next_at = time.perf_counter()
            self.next_seen.set()
        exchange = super()._next()
        if isinstance(exchange, Invocation):
            exchange.delivered_at = time.perf_counter()
        return exchange

    def _init_error(self, path: str, error_type: str, body: bytes) -> None:
        sys.stderr.write(f"runtime api: {path}: {error_type}: {body[:500]!r}\n")
        super()._init_error(path, error_type, body)

    def start(self, event: dict[str, Any], request_id: str) -> Invocation:
        inv = Invocation(request_id, event, int(time.time() * 1000) + 900_000)
        self.submit(inv)
        return inv

    def invoke(self, event: dict[str, Any], request_id: str, timeout: float = 120) -> Invocation:
        inv = self.start(event, request_id)
        if not inv.done.wait(timeout):
            raise RuntimeError(f"invocation {request_id} did not complete")
        return inv


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
