"""Loopback HTTP servers for router functional tests (127.0.0.1, ephemeral ports, threads)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: handler(request_handler, body) -> None; it writes the whole response itself.
Behaviour = Callable[[BaseHTTPRequestHandler, bytes], None]


class RecordingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.behaviour = behaviour
        self.requests: list[dict[str, Any]] = []
        self.connections: set[tuple[str, int]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RecordingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.connections.add(self.client_address)
        self.server.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
        self.server.behaviour(self, body)


def write_chunked(handler: BaseHTTPRequestHandler, chunks: list[bytes | float], status: int = 200) -> None:
    """Send ``chunks`` (bytes, or a float = seconds to pause) as a chunked body."""
    handler.send_response(status)
    handler.send_header("Content-Type", "text/html; charset=utf-8")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    handler.wfile.flush()
    try:
        for chunk in chunks:
            if isinstance(chunk, float):
                time.sleep(chunk)
                continue
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass


@contextmanager
def running(behaviour: Behaviour) -> Iterator[RecordingServer]:
    server = RecordingServer(behaviour)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
