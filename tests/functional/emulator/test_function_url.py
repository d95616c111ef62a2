"""The local function URL emulator (Python API) with stub applications in real worker processes."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.egress import Egress

from dify_lambda.emulator import LocalFunctionUrl, WorkerStartError, serve
from dify_lambda.emulator.function_url import FrontConfig, make_front_server
from dify_lambda.wire import FUNCTION_URL_MAX_REQUEST_BYTES

ROOT = Path(__file__).resolve().parents[3]
STUB_ENV = {"DIFY_LAMBDA_APP_FACTORY": "support.stub_apps:create", "PYTHONPATH": str(ROOT / "tests")}
WAIT = 60.0


@pytest.fixture
def stub_dir(tmp_path: Path) -> Path:
    plugin = tmp_path / "stub-plugin"
    plugin.mkdir()
    (plugin / "manifest.yaml").write_text(
        'name: stub\nauthor: tester\nmeta:\n  runner:\n    version: "3.12"\n'
    )
    return plugin


def _serve(stub_dir: Path, tmp_path: Path, **kwargs: object) -> LocalFunctionUrl:
    env = {**STUB_ENV, "STUB_RECORD": str(tmp_path / "record.txt"), **kwargs.pop("env", {})}  # type: ignore[dict-item]
    return serve(stub_dir, env=env, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def fn(stub_dir: Path, tmp_path: Path) -> Iterator[LocalFunctionUrl]:
    with _serve(stub_dir, tmp_path, workers=1) as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=WAIT) as c:
        yield c


def test_streams_status_headers_and_cookies_from_the_prelude(
    fn: LocalFunctionUrl, client: httpx.Client
) -> None:
    assert fn.plugin_id == "tester/stub"
    r = client.get(fn.url + "/ok")
    assert r.status_code == 200
    assert r.content == b"hello world"
    assert r.headers["content-type"] == "text/plain"
    assert r.headers["x-stub"] == "1"
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.headers.get_list("set-cookie") == ["b=2", "a=1"]
    assert r.headers["x-amzn-requestid"]


def test_event_is_a_function_url_2_0_event(fn: LocalFunctionUrl, client: httpx.Client) -> None:
    r = client.post(
        fn.url + "/echo?action=invoke_llm&a=1&a=2",
        content=b'{"x": "\xc3\xa9"}',
        headers=[("X-Multi", "one"), ("x-multi", "two"), ("Cookie", "c1=v1; c2=v2")],
    )
    doc = r.json()
    event = doc["event"]
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/echo"
    assert event["rawQueryString"] == "action=invoke_llm&a=1&a=2"
    assert event["queryStringParameters"] == {"action": "invoke_llm", "a": "1,2"}
    assert event["headers"]["x-multi"] == "one,two"
    assert all(name == name.lower() for name in event["headers"])
    assert event["cookies"] == ["c1=v1", "c2=v2"] and "cookie" not in event["headers"]
    assert event["body"] == '{"x": "é"}' and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["http"]["method"] == "POST" and ctx["http"]["path"] == "/echo"
    assert ctx["http"]["sourceIp"] == "127.0.0.1"
    assert ctx["requestId"] == r.headers["x-amzn-requestid"]
    # AWS_IAM (the handler's default auth): the local identity stands in for a verified caller
    assert ctx["authorizer"]["iam"]["userArn"].startswith("arn:aws:iam::")
    assert doc["trace"].startswith("Root=1-")


def test_binary_body_is_base64(fn: LocalFunctionUrl, client: httpx.Client) -> None:
    raw = bytes(range(256))
    event = client.post(fn.url + "/echo", content=raw).json()["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_auth_none_sends_no_authorizer(stub_dir: Path, tmp_path: Path, client: httpx.Client) -> None:
    env = {"DIFY_LAMBDA_URL_AUTH": "NONE"}
    with _serve(stub_dir, tmp_path, env=env) as running:
        event = client.get(running.url + "/echo").json()["event"]
    assert "authorizer" not in event["requestContext"]
    assert event["requestContext"]["accountId"] == "anonymous"


def test_error_before_first_byte_is_a_502_with_the_lambda_error(
    fn: LocalFunctionUrl, client: httpx.Client
) -> None:
    r = client.get(fn.url + "/early-error")
    assert r.status_code == 502
    assert r.headers["x-amzn-errortype"] == "Function.ValueError"
    doc = r.json()
    assert doc["errorType"] == "ValueError" and doc["errorMessage"] == "stub failed before the first byte"
    assert client.get(fn.url + "/ok").content == b"hello world"


def test_error_mid_stream_truncates_the_body(fn: LocalFunctionUrl, client: httpx.Client) -> None:
    received = b""
    with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", fn.url + "/mid-error") as r:
        assert r.status_code == 200
        for piece in r.iter_raw():
            received += piece
    assert received == b"partial"
    assert client.get(fn.url + "/ok").content == b"hello world"


def test_crash_is_a_502_and_the_worker_restarts(fn: LocalFunctionUrl, client: httpx.Client) -> None:
    r = client.get(fn.url + "/crash")
    assert r.status_code == 502
    assert r.headers["x-amzn-errortype"] == "Runtime.ExitError"
    assert "exit status 3" in r.json()["errorMessage"]
    assert client.get(fn.url + "/ok").content == b"hello world"


def test_init_failure_of_a_restarted_worker_is_a_502(
    stub_dir: Path, tmp_path: Path, client: httpx.Client
) -> None:
    marker = tmp_path / "fail-init"
    env = {
        "DIFY_LAMBDA_APP_FACTORY": "support.stub_apps:failing_when_marked",
        "STUB_FAIL_MARKER": str(marker),
    }
    with _serve(stub_dir, tmp_path, env=env) as running:
        assert client.get(running.url + "/crash").status_code == 502
        marker.touch()
        r = client.get(running.url + "/ok")
        assert r.status_code == 502
        assert r.headers["x-amzn-errortype"] == "Runtime.PluginLoadError"
        assert "manifest.yaml missing" in r.json()["errorMessage"]
        marker.unlink()
        assert client.get(running.url + "/ok").content == b"hello world"


def test_chunks_reach_the_client_before_the_next_is_produced(
    fn: LocalFunctionUrl, client: httpx.Client, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    with client.stream("GET", fn.url + "/gated", headers={"x-gate": str(gate)}) as r:
        pieces = r.iter_raw()
        # "second" cannot exist before the gate does: this first piece was streamed on its own.
        assert next(pieces) == b"first"
        assert not gate.exists()
        gate.touch()
        assert b"".join(pieces) == b"second"


def test_busy_workers_throttle_with_429(stub_dir: Path, tmp_path: Path, client: httpx.Client) -> None:
    gate = tmp_path / "gate"
    with _serve(stub_dir, tmp_path, workers=1, queue_timeout=0.0) as running:
        with client.stream("GET", running.url + "/gated", headers={"x-gate": str(gate)}) as first:
            pieces = first.iter_raw()
            assert next(pieces) == b"first"  # the only worker is now busy
            r = client.get(running.url + "/ok")
            assert r.status_code == 429
            assert r.headers["x-amzn-errortype"] == "TooManyRequestsException"
            gate.touch()
            assert b"".join(pieces) == b"second"
        assert client.get(running.url + "/ok").status_code == 200


def test_requests_queue_for_a_free_worker(stub_dir: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with _serve(stub_dir, tmp_path, workers=1, queue_timeout=WAIT) as running:
        results: list[int] = []
        with httpx.Client(timeout=WAIT) as c1, httpx.Client(timeout=WAIT) as c2:
            with c1.stream("GET", running.url + "/gated", headers={"x-gate": str(gate)}) as first:
                pieces = first.iter_raw()
                assert next(pieces) == b"first"
                waiter = threading.Thread(
                    target=lambda: results.append(c2.get(running.url + "/ok").status_code)
                )
                waiter.start()
                gate.touch()
                assert b"".join(pieces) == b"second"
            waiter.join(WAIT)
        assert results == [200]


def test_payload_over_the_function_url_limit_is_413(fn: LocalFunctionUrl, client: httpx.Client) -> None:
    r = client.post(fn.url + "/echo", content=b"x" * (FUNCTION_URL_MAX_REQUEST_BYTES + 1))
    assert r.status_code == 413
    assert r.headers["x-amzn-errortype"] == "RequestEntityTooLargeException"


def test_timeout_stops_the_worker(stub_dir: Path, tmp_path: Path, client: httpx.Client) -> None:
    with _serve(stub_dir, tmp_path, function_timeout=1.0) as running:
        with (
            pytest.raises(httpx.RemoteProtocolError),
            client.stream("GET", running.url + "/gated", headers={"x-gate": str(tmp_path / "never")}) as r,
        ):
            r.read()
        # a fresh worker serves the next request
        assert client.get(running.url + "/ok").content == b"hello world"


def test_init_failure_fails_startup_with_the_init_error(stub_dir: Path, tmp_path: Path) -> None:
    env = {"DIFY_LAMBDA_APP_FACTORY": "support.stub_apps:failing"}
    with pytest.raises(WorkerStartError, match=r"Runtime\.PluginLoadError: .*manifest\.yaml missing"):
        _serve(stub_dir, tmp_path, env=env)


def test_close_stops_every_worker(stub_dir: Path, tmp_path: Path) -> None:
    running = _serve(stub_dir, tmp_path, workers=2)
    pids = [w._proc.pid for w in running.workers if w._proc is not None]
    assert len(pids) == 2
    running.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(running.url + "/ok")


def test_records_close_once_per_response(fn: LocalFunctionUrl, client: httpx.Client, tmp_path: Path) -> None:
    ids = [client.get(fn.url + "/ok").headers["x-amzn-requestid"] for _ in range(3)]
    client.get(fn.url + "/empty")  # served after the third response was closed (one worker)
    lines = (tmp_path / "record.txt").read_text().splitlines()
    assert lines[:3] == [f"close {rid}" for rid in ids]


def _records(tmp_path: Path, word: str) -> list[str]:
    """Lines of the stub's record file starting with ``word``, once one is there (bounded wait)."""
    record = tmp_path / "record.txt"
    for _ in range(int(WAIT / 0.05)):
        lines = record.read_text().splitlines() if record.exists() else []
        found = [line for line in lines if line.startswith(word + " ")]
        if found:
            return found
        time.sleep(0.05)
    return []


def test_a_client_disconnect_closes_the_plugin_generator(
    fn: LocalFunctionUrl, client: httpx.Client, tmp_path: Path
) -> None:
    with Egress() as egress:
        with socket.create_connection((fn.host, fn.port), timeout=WAIT) as sock:
            sock.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while received.count(b"tick") < 3:
                received += sock.recv(4096)
            assert received.startswith(b"HTTP/1.1 200")
        stopped = _records(tmp_path, "stopped")
        assert len(stopped) == 1, "the generator was closed, not left ticking for nobody"
        r = client.get(fn.url + "/ok")  # the worker is free again
    assert (r.status_code, r.content) == (200, b"hello world")
    egress.assert_only(fn.port)


@pytest.mark.parametrize("length", ["-1", "+3", "0x10", "1e3", "\xb2"])
def test_absurd_content_length_is_400_at_once(fn: LocalFunctionUrl, length: str) -> None:
    with Egress() as egress, socket.create_connection((fn.host, fn.port), timeout=WAIT) as sock:
        sock.sendall(f"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode("latin-1"))
        reply = b""
        while not reply.endswith(b"}"):
            piece = sock.recv(4096)
            if not piece:
                break
            reply += piece
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert body == b'{"Message": "Content-Length is not a non-negative integer"}'
    egress.assert_only(fn.port)


def test_the_listen_backlog_holds_128_waiting_connections() -> None:
    """Nobody accepts: every connect up to the backlog still completes (a backlog of 5 would stall)."""
    config = FrontConfig(pool=None, auth="NONE", queue_timeout=1, function_timeout=1, url_id="x")  # type: ignore[arg-type]
    server = make_front_server("127.0.0.1", 0, config)
    port = server.server_address[1]
    sockets = []
    try:
        with Egress() as egress:
            for _ in range(128):
                sockets.append(socket.create_connection(("127.0.0.1", port), timeout=WAIT))
        egress.assert_only(port)
    finally:
        for sock in sockets:
            sock.close()
        server.server_close()
