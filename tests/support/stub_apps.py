"""Stub application cores for the streaming loop and the emulator (loaded via DIFY_LAMBDA_APP_FACTORY).

Behaviour is chosen by the event's ``rawPath``; ``STUB_RECORD`` names a file where the stub appends
one line per observable step (``close <request id>``, hook runs), so tests can check what happened
inside the subprocess. ``/gated`` yields ``first`` and then waits until the file named by the
``x-gate`` header exists before yielding ``second``: a test can prove chunk 1 left the process
before chunk 2 was even produced. ``/endless`` ticks until its generator is closed (``stopped``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dify_lambda.errors import PluginLoadError
from dify_lambda.handlers.http import HttpResponse


def _record(line: str) -> None:
    target = os.environ.get("STUB_RECORD")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


class StubApp:
    def handle_event(self, event: dict[str, Any]) -> HttpResponse:
        path = event.get("rawPath", "/")
        rid = (event.get("requestContext") or {}).get("requestId", "")
        body: Iterator[bytes]
        if path == "/early-error":
            raise ValueError("stub failed before the first byte")
        if path == "/crash":
            os._exit(3)
        if path == "/ok":
            body = iter([b"hello ", b"", b"world"])
        elif path == "/empty":
            body = iter([])
        elif path == "/mid-error":
            body = _mid_error()
        elif path == "/gated":
            body = _gated(event["headers"]["x-gate"])
        elif path == "/echo":
            context_doc = {"event": event, "trace": os.environ.get("_X_AMZN_TRACE_ID", "")}
            body = iter([json.dumps(context_doc).encode()])
        elif path == "/env":
            body = iter([json.dumps(dict(os.environ)).encode()])
        elif path == "/stamps":
            body = _stamps(int(event.get("rawQueryString", "").partition("=")[2] or 20))
        elif path == "/endless":
            body = _endless(rid)
        elif path == "/words":
            body = _words(int(event.get("rawQueryString", "").partition("=")[2] or 5))
        else:
            return HttpResponse(404, {"content-type": "text/plain"}, iter([b"no such stub path"]))
        return HttpResponse(
            200,
            {"content-type": "text/plain", "x-stub": "1", "content-length": "999", "set-cookie": "a=1"},
            body,
            cookies=["b=2"],
            on_close=lambda: _record(f"close {rid}"),
        )


def _mid_error() -> Iterator[bytes]:
    yield b"partial"
    raise RuntimeError("stub failed mid-stream")


def _gated(gate: str) -> Iterator[bytes]:
    yield b"first"
    while not Path(gate).exists():
        time.sleep(0.01)
    yield b"second"


def _endless(rid: str) -> Iterator[bytes]:
    """Ticks until closed; records ``stopped <request id>`` when its consumer closes it."""
    try:
        while True:
            yield b"tick "
            time.sleep(0.01)
    finally:
        _record(f"stopped {rid}")


def _words(count: int) -> Iterator[bytes]:
    for i in range(count):
        yield f"w{i} ".encode()


def _stamps(count: int) -> Iterator[bytes]:
    # Each chunk carries the monotonic time it was yielded at (CLOCK_MONOTONIC is system-wide).
    for _ in range(count):
        time.sleep(0.005)
        yield b"%d" % time.monotonic_ns()


def create() -> StubApp:
    return StubApp()


def failing_when_marked() -> StubApp:
    """Like :func:`create`, but init fails once the file named by ``STUB_FAIL_MARKER`` exists."""
    if Path(os.environ["STUB_FAIL_MARKER"]).exists():
        failing()
    return StubApp()


def failing() -> StubApp:
    raise PluginLoadError("stub plugin could not be loaded: manifest.yaml missing")


def snapstart() -> StubApp:
    from dify_lambda.handlers import stream

    stream.register_before_snapshot(_record, "before-snapshot 1")
    stream.register_before_snapshot(_record, "before-snapshot 2")
    stream.register_after_restore(_record, "after-restore")
    return StubApp()


def failing_restore() -> StubApp:
    from dify_lambda.handlers import stream

    def boom() -> None:
        raise RuntimeError("after-restore hook failed")

    stream.register_after_restore(boom)
    return StubApp()


def gevent_patched() -> StubApp:
    """What dify_plugin does on import: cooperative sockets, threads and sleeps everywhere."""
    from gevent import monkey

    monkey.patch_all()
    _record(f"patched {monkey.is_module_patched('socket')}")
    return StubApp()
