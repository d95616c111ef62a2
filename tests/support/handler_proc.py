"""Run dify-lambda's handler application in a subprocess, for functional tests.

Two modes of the child (this file run as a script, with ``DIFY_LAMBDA_*`` in its environment):

* ``http``: a tiny local HTTP/1.1 shim (127.0.0.1, ephemeral port) that turns each request into an
  :class:`HttpRequest`, calls ``Application.handle`` and writes the body chunk by chunk
  (``Transfer-Encoding: chunked``, flushed per chunk). It stands in for a function URL until the
  emulator exists. The port is announced on stdout as ``HANDLER_PORT=<n>``.
* ``buffered``: reads one function URL event (JSON) per stdin line, calls
  ``dify_lambda.handlers.buffered.lambda_handler`` and prints ``RESULT <json>`` per event.

Everything else the child prints (Powertools JSON logs, EMF metrics) is captured in
:attr:`HandlerProcess.output` so tests can inspect it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
PORT_PREFIX = "HANDLER_PORT="
RESULT_PREFIX = "RESULT "
LINE_DELIMITER = b"\n\n"


@dataclass
class HandlerProcess:
    proc: subprocess.Popen[str]
    url: str = ""
    output: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.output)

    def wait_for_output(self, needle: str, timeout: float = 10.0, *, count: int = 1) -> str:
        """Wait until ``needle`` appears ``count`` times in the output (pumped asynchronously)."""
        deadline = time.monotonic() + timeout
        while (text := self.text()).count(needle) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in the handler output:\n{text[-4000:]}")
            time.sleep(0.02)
        return text

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.output.append(line.rstrip("\n"))


def _child_env(plugin_dir: Path, env: Mapping[str, str] | None) -> dict[str, str]:
    child = {k: v for k, v in os.environ.items() if not k.startswith(("DIFY_LAMBDA_", "AWS_"))}
    child.update(
        {
            "DIFY_LAMBDA_PLUGIN_ROOT": str(plugin_dir),
            "DIFY_LAMBDA_URL_AUTH": "AWS_IAM",
            "PYTHONUNBUFFERED": "1",
            # Keep the plugin source trees free of __pycache__ directories.
            "PYTHONDONTWRITEBYTECODE": "1",
            "AWS_REGION": "us-east-1",
        }
    )
    child.update(env or {})
    return child


@contextmanager
def running_handler(
    plugin_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 60.0,
    python: Path | None = None,
) -> Iterator[HandlerProcess]:
    """Start the HTTP shim for ``plugin_dir``; yields once it listens, kills it afterwards.

    ``python`` runs it under another interpreter (an SDK matrix venv, tests/support/sdk_matrix.py).
    """
    proc = subprocess.Popen(
        [str(python or PYTHON), __file__, "http"],
        env=_child_env(plugin_dir, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=str(ROOT),
    )
    handle = HandlerProcess(proc)
    pump: threading.Thread | None = None
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"handler process exited early:\n{handle.text()}")
            if line.startswith(PORT_PREFIX):
                handle.url = f"http://127.0.0.1:{int(line[len(PORT_PREFIX) :])}"
                break
            handle.output.append(line.rstrip("\n"))
        else:
            raise RuntimeError("handler process did not announce its port in time")
        pump = threading.Thread(target=handle._pump, daemon=True)
        pump.start()
        yield handle
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if pump is not None:
            pump.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def run_buffered(
    plugin_dir: Path,
    events: list[dict[str, Any]],
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 120.0,
) -> tuple[list[dict[str, Any]], str]:
    """Feed ``events`` to ``lambda_handler`` in a fresh process; returns (results, other output)."""
    proc = subprocess.run(
        [str(PYTHON), __file__, "buffered"],
        env=_child_env(plugin_dir, env),
        input="".join(json.dumps(e) + "\n" for e in events),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        check=False,
    )
    results = [
        json.loads(line[len(RESULT_PREFIX) :])
        for line in proc.stdout.splitlines()
        if line.startswith(RESULT_PREFIX)
    ]
    other = "\n".join(line for line in proc.stdout.splitlines() if not line.startswith(RESULT_PREFIX))
    return results, other + "\n" + proc.stderr


def split_lines(body: bytes) -> list[bytes]:
    """Split on the delimiter, asserting the body is nothing but delimited lines."""
    assert body.endswith(LINE_DELIMITER), body[-200:]
    parts = body.split(LINE_DELIMITER)
    assert parts[-1] == b""
    return parts[:-1]


def normalise_line(line: bytes) -> bytes:
    """Blank the run-dependent values at their exact paths; other bytes are compared as sent."""
    event = json.loads(line)
    message = event.get("data") if event.get("event") == "session" else None
    changed = False
    if (
        isinstance(message, dict)
        and message.get("type") == "stream"
        and isinstance(message.get("data"), dict)
    ):
        payload = message["data"]
        for holder in (payload.get("delta"), payload, payload.get("result")):
            usage = holder.get("usage") if isinstance(holder, dict) else None
            if isinstance(usage, dict) and "latency" in usage:
                usage["latency"] = 0
                changed = True
    if isinstance(message, dict) and message.get("type") == "error":
        args = message["data"].get("args")
        if isinstance(args, dict) and "traceback" in args:
            assert isinstance(args["traceback"], str) and args["traceback"].startswith("Traceback")
            args["traceback"] = ""
            changed = True
    if not changed:
        return line
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


# --- child side ----------------------------------------------------------------------------------


def _serve_http() -> None:
    from dify_lambda.handlers.app import application_from_env
    from dify_lambda.handlers.chunked import LAST_CHUNK, encode_chunk
    from dify_lambda.handlers.http import HttpRequest

    app = application_from_env()  # imports dify_plugin (gevent patch) before the server exists

    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Shim(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Small chunks must leave at once (no Nagle delay), as a function URL streams them.
        disable_nagle_algorithm = True

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            request = HttpRequest(
                method=self.command,
                path=path,
                query=query,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                request_id=f"local-{time.monotonic_ns()}",
            )
            response = app.handle(request)
            try:
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for chunk in response.body:
                    if chunk:
                        self.wfile.write(encode_chunk(chunk))
                        self.wfile.flush()
                self.wfile.write(LAST_CHUNK)
                self.wfile.flush()
            finally:
                response.close()

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Shim)
    print(f"{PORT_PREFIX}{server.server_address[1]}", flush=True)
    server.serve_forever()


def _serve_buffered() -> None:
    from dify_lambda.handlers.buffered import lambda_handler

    for line in sys.stdin:
        if line.strip():
            result = lambda_handler(json.loads(line), None)
            print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    {"http": _serve_http, "buffered": _serve_buffered}[sys.argv[1]]()
