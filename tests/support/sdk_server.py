"""Run a plugin under the SDK's own serverless server, in a subprocess, for tests and benchmarks.

The SDK server is the reference implementation of the wire protocol: the conformance suite sends
the same envelopes to it and to the dify-lambda handler and compares the event lines. The plugin
runs in its own process because importing ``dify_plugin`` gevent-patches the importing process.

Example::

    with start_sdk_server(PLUGINS / "mockgpt", env={"MOCKGPT_WORD_DELAY": "0"}) as server:
        events = invoke(server.url, envelope)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from dify_lambda.wire import encode_envelope

ROOT = Path(__file__).resolve().parents[2]
PLUGINS_DIR = ROOT / "plugins"
#: Environment variables of the SDK that must not leak in from the caller's shell.
_SDK_VARIABLES = ("INSTALL_METHOD", "REMOTE_INSTALL_URL", "REMOTE_INSTALL_HOST", "REMOTE_INSTALL_PORT")
_LOG_TAIL_BYTES = 4000
_STOP_GRACE_SECONDS = 3.0
_PORT_ATTEMPTS = 3

__all__ = [
    "PLUGINS_DIR",
    "SdkServer",
    "SdkServerError",
    "free_port",
    "invoke",
    "parse_event_lines",
    "plugin_python",
    "start_sdk_server",
]


class SdkServerError(RuntimeError):
    """The SDK server did not come up (or died); the message carries its output tail."""


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago (the SDK cannot bind port 0 and tell)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def plugin_python() -> Path:
    """The interpreter that has ``dify_plugin`` installed: the project venv, else this one."""
    venv_python = ROOT / ".venv" / "bin" / "python"
    return venv_python if venv_python.exists() else Path(sys.executable)


class SdkServer:
    """A running ``python -m main`` in serverless mode; stop it with :meth:`stop` or ``with``."""

    def __init__(self, plugin_dir: Path, process: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> None:
        self.plugin_dir = plugin_dir
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, limit: int = _LOG_TAIL_BYTES) -> str:
        """The last ``limit`` bytes of the server's combined stdout and stderr."""
        self._log.flush()
        data = Path(self._log.name).read_bytes()
        return data[-limit:].decode("utf-8", errors="replace")

    def stop(self) -> None:
        """Terminate the server (kill it if it lingers) and remove its log file; idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> SdkServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _server_env(port: int, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _SDK_VARIABLES}
    env.update(
        {
            "INSTALL_METHOD": "serverless",
            "SERVERLESS_HOST": "127.0.0.1",
            "SERVERLESS_PORT": str(port),
            # Keep the plugin source trees free of __pycache__ directories.
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def _wait_healthy(server: SdkServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            code = server.process.poll()
            if code is not None:
                raise SdkServerError(
                    f"SDK server for {server.plugin_dir.name} exited with code {code} before "
                    f"GET /health answered; output tail:\n{server.log_tail()}"
                )
            try:
                if client.get(server.url + "/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SdkServerError(
                    f"SDK server for {server.plugin_dir.name} did not answer GET /health within "
                    f"{timeout:.0f} s; output tail:\n{server.log_tail()}"
                )
            time.sleep(0.05)


def start_sdk_server(
    plugin_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    python: Path | None = None,
) -> SdkServer:
    """Start the SDK's serverless server for ``plugin_dir`` and wait until ``GET /health`` is 200.

    ``env`` is added to the inherited environment (after the serverless settings, so it may
    override them). The returned server is already healthy; it is always stopped on failure.
    Raises :class:`SdkServerError` (with the output tail) if the process dies or times out.
    """
    plugin_dir = Path(plugin_dir).resolve()
    if not (plugin_dir / "manifest.yaml").is_file():
        raise SdkServerError(f"{plugin_dir} has no manifest.yaml")
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = free_port()
        log = tempfile.NamedTemporaryFile(prefix=f"sdk-{plugin_dir.name}-", suffix=".log", delete=False)  # noqa: SIM115
        process = subprocess.Popen(
            [str(python or plugin_python()), "-m", "main"],
            cwd=plugin_dir,
            env=_server_env(port, env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = SdkServer(plugin_dir, process, port, log)
        try:
            _wait_healthy(server, timeout)
        except SdkServerError as exc:
            server.stop()
            # Another process may grab the port between free_port() and the bind: try another.
            if "Address already in use" in str(exc) and attempt < _PORT_ATTEMPTS:
                continue
            raise
        except BaseException:
            server.stop()
            raise
        return server
    raise AssertionError("unreachable")  # pragma: no cover


def parse_event_lines(body: bytes) -> list[dict[str, Any]]:
    """Split a response body into its JSON event lines (each ends with ``\\n\\n``; blanks skipped)."""
    events: list[dict[str, Any]] = []
    for raw in body.split(b"\n\n"):
        line = raw.strip()
        if line:
            events.append(json.loads(line))
    return events


def invoke(url: str, envelope: Mapping[str, Any], *, timeout: float = 60.0) -> list[dict[str, Any]]:
    """POST an envelope to ``<url>/invoke`` as the daemon does and return the parsed event lines."""
    data = envelope["data"]
    response = httpx.post(
        f"{url}/invoke",
        params={"action": data["action"]},
        content=encode_envelope(dict(envelope)),
        headers={
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Dify-Plugin-Session-ID": str(envelope["session_id"]),
        },
        timeout=timeout,
    )
    response.raise_for_status()
    return parse_event_lines(response.content)
