"""The streaming Runtime API loop in a subprocess against the strict fake Runtime API."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.fake_runtime_api import FakeInvocation, FakeRuntimeApi

ROOT = Path(__file__).resolve().parents[3]
WAIT = 60.0


def _event(path: str, **headers: str) -> dict[str, object]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {"requestId": f"req{path}", "http": {"method": "GET", "path": path}},
        "isBase64Encoded": False,
    }


class Loop:
    """The loop process plus the fake it talks to."""

    def __init__(self, api: FakeRuntimeApi, proc: subprocess.Popen[bytes], record: Path) -> None:
        self.api, self.proc, self.record = api, proc, record

    def run(self, event: dict[str, object]) -> FakeInvocation:
        inv = self.api.enqueue(event)
        assert inv.finished.wait(WAIT), f"no answer for {event['rawPath']}; calls={self.api.calls}"
        return inv

    def records(self) -> list[str]:
        return self.record.read_text().splitlines() if self.record.exists() else []


@contextmanager
def _start(tmp_path: Path, factory: str, *, reply_delay: float = 0.0, **env: str) -> Iterator[Loop]:
    api = FakeRuntimeApi(reply_delay=reply_delay)
    record = tmp_path / "record.txt"
    full_env = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "DIFY_LAMBDA_APP_FACTORY": factory,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
        "STUB_RECORD": str(record),
        "AWS_LAMBDA_FUNCTION_NAME": "stub",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "dify_lambda.handlers.stream"], env=full_env, stderr=subprocess.PIPE
    )
    try:
        yield Loop(api, proc, record)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
        api.close()


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    with _start(tmp_path, "support.stub_apps:create", reply_delay=0.05) as started:
        yield started


def test_success_streams_prelude_delimiter_and_each_chunk(loop: Loop) -> None:
    inv = loop.run(_event("/ok"))
    assert loop.api.violations == []
    assert inv.prelude == {
        "statusCode": 200,
        # content-length and set-cookie never reach the prelude; the cookie moves to cookies
        "headers": {"content-type": "text/plain", "x-stub": "1"},
        "cookies": ["b=2", "a=1"],
    }
    # the empty item in the middle sent nothing: two chunks, exactly as yielded
    assert inv.chunks == [b"hello ", b"world"]
    assert inv.stream_error is None and inv.trailers == {}
    assert loop.api.wait_for(lambda: "close req/ok" in loop.records())


def test_empty_body_still_sends_prelude_and_delimiter(loop: Loop) -> None:
    inv = loop.run(_event("/empty"))
    assert loop.api.violations == []
    assert inv.prelude is not None and inv.prelude["statusCode"] == 200
    assert inv.chunks == []


def test_mid_stream_error_ends_with_trailers(loop: Loop) -> None:
    inv = loop.run(_event("/mid-error"))
    assert loop.api.violations == []
    assert inv.body == b"partial"
    assert inv.trailers["lambda-runtime-function-error-type"] == "Function.RuntimeError"
    assert inv.stream_error is not None
    assert inv.stream_error["errorType"] == "RuntimeError"
    assert inv.stream_error["errorMessage"] == "stub failed mid-stream"
    assert any("_mid_error" in line for line in inv.stream_error["trace"])
    raw = base64.b64decode(inv.trailers["lambda-runtime-function-error-body"])
    assert json.loads(raw) == inv.stream_error
    assert loop.api.wait_for(lambda: "close req/mid-error" in loop.records())


def test_error_before_first_byte_posts_error(loop: Loop) -> None:
    inv = loop.run(_event("/early-error"))
    assert loop.api.violations == []
    assert inv.prelude is None
    assert inv.posted_error is not None
    error_type, doc = inv.posted_error
    assert error_type == "Function.ValueError"
    assert doc["errorType"] == "ValueError" and doc["errorMessage"] == "stub failed before the first byte"
    assert f"error {inv.request_id}" in loop.api.calls


def test_loop_keeps_serving_after_failures_and_reads_each_reply(loop: Loop) -> None:
    results = [loop.run(_event(p)) for p in ("/early-error", "/mid-error", "/ok", "/ok")]
    assert loop.api.violations == []  # includes "/next before the previous reply was read"
    assert [inv.body for inv in results[2:]] == [b"hello world", b"hello world"]
    # closed exactly once per response (after the reply, so wait for the last one)
    assert loop.api.wait_for(lambda: loop.records().count("close req/ok") == 2)
    assert loop.records().count("close req/mid-error") == 1
    assert loop.proc.poll() is None


def test_trace_id_and_event_reach_the_app(loop: Loop) -> None:
    event = _event("/echo", **{"x-custom": "v"})
    inv = loop.run(event)
    doc = json.loads(inv.body)
    assert doc["event"] == event
    assert doc["trace"] == inv.trace_id


def test_chunks_arrive_incrementally(loop: Loop, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    inv = loop.api.enqueue(_event("/gated", **{"x-gate": str(gate)}))
    # The app cannot produce "second" until the gate exists; the fake must see "first" before that.
    assert loop.api.wait_for(lambda: len(inv.chunks) >= 1, WAIT), "first chunk never arrived on its own"
    assert inv.chunks == [b"first"]
    assert not inv.finished.is_set()
    gate.touch()
    assert inv.finished.wait(WAIT)
    assert inv.chunks == [b"first", b"second"]
    assert loop.api.violations == []


def test_loop_works_in_a_gevent_patched_process(tmp_path: Path) -> None:
    with _start(tmp_path, "support.stub_apps:gevent_patched") as started:
        assert started.run(_event("/ok")).body == b"hello world"
        assert started.run(_event("/mid-error")).stream_error is not None
        gate = tmp_path / "gate"
        inv = started.api.enqueue(_event("/gated", **{"x-gate": str(gate)}))
        assert started.api.wait_for(lambda: len(inv.chunks) >= 1, WAIT)
        assert not inv.finished.is_set()
        gate.touch()
        assert inv.finished.wait(WAIT) and inv.body == b"firstsecond"
        assert started.records()[0] == "patched True"
        assert started.api.violations == []


def test_init_error_posts_init_error_and_exits(tmp_path: Path) -> None:
    with _start(tmp_path, "support.stub_apps:failing") as started:
        assert started.proc.wait(WAIT) != 0
        assert started.api.calls == ["init/error"]
        ((error_type, doc),) = started.api.init_errors
        assert error_type == "Runtime.PluginLoadError"
        assert doc["errorType"] == "PluginLoadError"
        assert "manifest.yaml missing" in doc["errorMessage"]


def test_bad_factory_spec_is_an_init_error(tmp_path: Path) -> None:
    with _start(tmp_path, "no-colon-here") as started:
        assert started.proc.wait(WAIT) != 0
        ((error_type, doc),) = started.api.init_errors
        assert error_type == "Runtime.ValueError"
        assert "DIFY_LAMBDA_APP_FACTORY" in doc["errorMessage"]


def test_snapstart_runs_hooks_around_restore(tmp_path: Path) -> None:
    env = {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
    with _start(tmp_path, "support.stub_apps:snapstart", **env) as started:
        inv = started.run(_event("/ok"))
        assert inv.body == b"hello world"
        assert started.api.calls[:2] == ["restore/next", "next"]
        # before-snapshot hooks run in reverse registration order, after-restore after restore/next
        assert started.records()[:3] == ["before-snapshot 2", "before-snapshot 1", "after-restore"]
        assert started.api.violations == []


def test_snapstart_after_restore_failure_posts_restore_error(tmp_path: Path) -> None:
    env = {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
    with _start(tmp_path, "support.stub_apps:failing_restore", **env) as started:
        assert started.proc.wait(WAIT) != 0
        assert started.api.calls == ["restore/next", "restore/error"]
        ((error_type, doc),) = started.api.restore_errors
        assert error_type == "Runtime.RuntimeError"
        assert doc["errorMessage"] == "after-restore hook failed"


def test_exec_wrapper_starts_the_loop(tmp_path: Path) -> None:
    wrapper = ROOT / "dify_lambda" / "handlers" / "exec_wrapper.sh"
    assert os.access(wrapper, os.X_OK)
    api = FakeRuntimeApi()
    env = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "DIFY_LAMBDA_APP_FACTORY": "support.stub_apps:create",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
        "DIFY_LAMBDA_PYTHON": sys.executable,
    }
    # The managed runtime's own command line is ignored in streaming mode.
    proc = subprocess.Popen([str(wrapper), "/nonexistent/python3", "-m", "awslambdaric", "x.y"], env=env)
    try:
        inv = api.enqueue(_event("/ok"))
        assert inv.finished.wait(WAIT)
        assert inv.body == b"hello world"
    finally:
        proc.kill()
        proc.wait()
        api.close()


def test_exec_wrapper_hands_over_when_streaming_is_off() -> None:
    wrapper = ROOT / "dify_lambda" / "handlers" / "exec_wrapper.sh"
    env = {**os.environ, "DIFY_LAMBDA_STREAMING": "0"}
    out = subprocess.run(
        [str(wrapper), sys.executable, "-c", "import sys; print(sys.argv[1:])", "a b", "c"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "['a b', 'c']"


# --- the fake itself is strict: each protocol violation is caught -------------------------------

GOOD_HEAD = (
    "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
    "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
    "Content-Type: application/vnd.awslambda.http-integration-response\r\n"
    "Transfer-Encoding: chunked\r\n"
)
PRELUDE = b'{"statusCode":200,"headers":{},"cookies":[]}'


def _frame(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)


def _raw_exchange(api: FakeRuntimeApi, headers: str, body: bytes, *, kind: str = "response") -> str:
    """Take the next invocation as a runtime would, then send one hand-made request for it."""
    inv = api.enqueue(_event("/raw"))
    host, port = api.address.split(":")
    conn = http.client.HTTPConnection(host, int(port))
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    conn.getresponse().read()
    conn.close()
    with socket.create_connection((host, int(port))) as sock:
        path = f"/2018-06-01/runtime/invocation/{inv.request_id}/{kind}"
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n"
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    return inv.request_id


VIOLATIONS = {
    "no response mode": (
        GOOD_HEAD.replace("streaming", "buffered"),
        _frame(PRELUDE, b"\0" * 8) + b"0\r\n\r\n",
    ),
    "trailer not announced": (
        GOOD_HEAD.replace("Trailer: Lambda-Runtime-Function-Error-Type, ", "Trailer: "),
        _frame(PRELUDE, b"\0" * 8)
        + b"0\r\nLambda-Runtime-Function-Error-Type: X\r\nLambda-Runtime-Function-Error-Body: e30=\r\n\r\n",
    ),
    "missing delimiter": (GOOD_HEAD, _frame(PRELUDE, b"body") + b"0\r\n\r\n"),
    "missing prelude": (GOOD_HEAD, b"0\r\n\r\n"),
    "NUL in prelude": (GOOD_HEAD, _frame(PRELUDE + b"\0" * 8 + b"body") + b"0\r\n\r\n"),
    "uppercase chunk size": (GOOD_HEAD, b"2C\r\n" + PRELUDE + b"\r\n"),
    "chunk extension": (GOOD_HEAD, b"2c;x=1\r\n" + PRELUDE + b"\r\n"),
    "unterminated body": (GOOD_HEAD, _frame(PRELUDE, b"\0" * 8, b"body")),
    "error body not base64": (
        GOOD_HEAD,
        _frame(PRELUDE, b"\0" * 8)
        + b"0\r\nLambda-Runtime-Function-Error-Type: X\r\nLambda-Runtime-Function-Error-Body: !!\r\n\r\n",
    ),
}


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_fake_rejects(name: str) -> None:
    headers, body = VIOLATIONS[name]
    api = FakeRuntimeApi()
    try:
        _raw_exchange(api, headers, body)
        assert api.wait_for(lambda: bool(api.violations), WAIT), f"{name} was accepted"
    finally:
        api.close()


def test_fake_accepts_the_node_client_form_and_rejects_late_error_and_second_response() -> None:
    # AWS's Node.js client: two Trailer lines, success without trailers (docs/wire-protocol.md §6.5).
    node_head = GOOD_HEAD.replace(
        "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n",
        "Trailer: Lambda-Runtime-Function-Error-Type\r\nTrailer: Lambda-Runtime-Function-Error-Body\r\n",
    )
    api = FakeRuntimeApi()
    try:
        rid = _raw_exchange(api, node_head, _frame(PRELUDE, b"\0" * 8, b"hi") + b"0\r\n\r\n")
        assert api.wait_for(lambda: api.by_id[rid].finished.is_set(), WAIT)
        assert api.violations == [] and api.by_id[rid].body == b"hi"
        inv = api.by_id[rid]
        error_doc = b'{"errorMessage":"m","errorType":"T"}'
        late_error = f"Lambda-Runtime-Function-Error-Type: T\r\nContent-Length: {len(error_doc)}\r\n"
        host, port = api.address.split(":")
        for kind, headers, body in (
            ("error", late_error, error_doc),
            ("response", node_head, _frame(PRELUDE, b"\0" * 8) + b"0\r\n\r\n"),
        ):
            conn = http.client.HTTPConnection(host, int(port))
            conn.request(
                "POST",
                f"/2018-06-01/runtime/invocation/{inv.request_id}/{kind}",
                body=body,
                headers=dict(line.split(": ", 1) for line in headers.strip().split("\r\n")),
                encode_chunked=False,
            )
            assert conn.getresponse().status == 400
            conn.close()
        assert len(api.violations) == 2
    finally:
        api.close()
