"""Worker processes (one Lambda execution environment each) and the pool that lends them out.

Like Lambda, a worker serves one invocation at a time. A worker whose process died (crash, init
failure, timeout kill) is started again on its next use, which is then a cold start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from dify_lambda.emulator.errors import WorkerStartError
from dify_lambda.emulator.runtime_server import Exchange, LocalRuntimeApi
from dify_lambda.wire import read_lambda_error

__all__ = ["Worker", "WorkerPool", "WorkerSpec"]

STOP_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class WorkerSpec:
    command: list[str]
    env: Mapping[str, str]
    cwd: str
    function_name: str


class Worker:
    """One worker process plus the local Runtime API it talks to."""

    def __init__(self, spec: WorkerSpec, index: int) -> None:
        self.spec, self.index = spec, index
        arn = f"arn:aws:lambda:us-east-1:000000000000:function:{spec.function_name}"
        self.api = LocalRuntimeApi(arn)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._started_at = 0.0
        #: Seconds from process start to the first ``/next`` of the last cold start (Lambda's Init Duration).
        self.init_seconds: float | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def ensure_started(self) -> None:
        with self._lock:
            if self._stopping or self.alive:
                return
            self.api.reset()
            env = {**self.spec.env, "AWS_LAMBDA_RUNTIME_API": self.api.address}
            env["AWS_LAMBDA_LOG_STREAM_NAME"] = f"local/worker-{self.index}/{int(time.time())}"
            try:
                proc = subprocess.Popen(
                    self.spec.command,
                    env=env,
                    cwd=self.spec.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=2,  # the worker's output goes to serve's stderr
                    stderr=2,
                    start_new_session=True,
                )
            except OSError as exc:
                raise WorkerStartError(f"cannot start worker {self.spec.command[0]}: {exc}") from None
            self._proc = proc
            self._started_at, self.init_seconds = time.monotonic(), None
            threading.Thread(target=self._watch, args=(proc,), daemon=True).start()

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        with self._lock:
            # A replacement may already be running (after a timeout kill): leave its work alone.
            if proc is self._proc:
                self.api.process_exited(code)

    def wait_ready(self, timeout: float) -> None:
        """Block until the worker asks for its first event; raise if its init fails first."""
        deadline = time.monotonic() + timeout
        while not self.api.ready.wait(0.05):
            proc = self._proc
            if self.api.init_error is not None or proc is None or proc.poll() is not None:
                raise WorkerStartError(self._failure_text())
            if time.monotonic() > deadline:
                raise WorkerStartError(f"worker {self.index} did not finish init within {timeout:.0f} s")
        if self.init_seconds is None:
            self.init_seconds = time.monotonic() - self._started_at

    def _failure_text(self) -> str:
        if self.api.init_error is not None:
            error_type, body = self.api.init_error
            return f"worker {self.index} init failed: {error_type}: {_message(body)}"
        code = self._proc.returncode if self._proc is not None else None
        return f"worker {self.index} exited during init with status {code} (see its output above)"

    def submit(self, exchange: Exchange) -> None:
        self.ensure_started()
        self.api.submit(exchange)
        proc = self._proc
        code = proc.poll() if proc is not None else -1
        if code is not None:
            # Died between start and submit: its watcher may have run before this exchange was queued.
            self.api.process_exited(code)

    def kill(self) -> None:
        """Stop the process (timeout or shutdown); the next use starts a fresh one."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        with self._lock:
            self._stopping = True
        self.kill()
        self.api.close()


def _message(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:300].decode(errors="replace")
    return read_lambda_error(doc)[1] if isinstance(doc, dict) else str(doc)[:300]


class WorkerPool:
    """Lends idle workers; waits a bounded time when all are busy (then the caller throttles)."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._idle = list(workers)
        self._cond = threading.Condition()

    def acquire(self, timeout: float) -> Worker | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._idle:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._idle.pop(0)

    def release(self, worker: Worker) -> None:
        with self._cond:
            self._idle.append(worker)
            self._cond.notify()
