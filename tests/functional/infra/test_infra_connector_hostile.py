"""The connector as a service facing hostile clients: keys in query strings, half-sent requests,
absurd Content-Length, and one log line per launch with its outcome.

Each test asserts the status, the single answer line, and (through ``Egress``) that nothing left
the machine except to the connector the test started.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from infra_helpers import API_KEY, FakeBuilder, RunningConnector, start_connector
from support.daemon_client import DaemonClient, multipart_body
from support.egress import Egress
from support.pkgfactory import dump, good_package, manifest_doc, set_path

from dify_lambda.errors import BuildError
from dify_lambda.infra.aws import AwsClients

LOGGER = "dify_lambda.infra.connector"
SUPPORT = Path(__file__).resolve().parents[2] / "support"


def _package() -> tuple[bytes, str]:
    from dify_lambda.packaging.reader import PluginPackage

    data = good_package(manifest_dot_yaml=dump(set_path(manifest_doc(), "version", "0.0.1")))
    return data, PluginPackage.from_bytes(data).serverless_filename


def _raw(port: int, request: bytes, *, timeout: float = 30.0) -> bytes:
    """Send ``request`` as is and read until the server closes or a full JSON answer arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        reply = b""
        while True:
            try:
                piece = sock.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            reply += piece
            _head, sep, body = reply.partition(b"\r\n\r\n")
            if sep and body.rstrip().endswith(b"}"):
                break
    return reply


def _status_and_error(reply: bytes) -> tuple[int, str]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"]


def _launch_lines(caplog: pytest.LogCaptureFixture, count: int = 1) -> list[str]:
    """The launch outcome lines, once ``count`` are there (the server writes them on its own thread)."""
    for _ in range(600):
        lines = [r.getMessage() for r in caplog.records if " launch " in r.getMessage()]
        if len(lines) >= count:
            break
        time.sleep(0.05)
    return lines


@pytest.fixture
def short(aws: AwsClients, tmp_path: Path) -> Iterator[RunningConnector]:
    """A connector with a half-second read timeout."""
    builder = FakeBuilder()
    server, service, thread = start_connector(aws, builder, work_root=tmp_path, read_timeout_s=0.5)
    try:
        yield RunningConnector(server, service, builder)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_key_in_the_query_string_is_refused_and_never_logged(
    connector: RunningConnector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = connector.server.server_address[1]
    with Egress() as egress:
        for url in (
            f"{connector.url}/ping?key={API_KEY}",
            f"{connector.url}/v1/runner/instances?filename=a@b@1@c.difypkg&api_key={API_KEY}",
        ):
            response = httpx.get(url)
            assert response.status_code == 401
            assert response.json() == {"error": "unauthorized: missing or wrong Authorization key"}
        # A malformed request line makes the stdlib log the whole line: still no query string.
        reply = _raw(port, f"GET /ping?key={API_KEY} HTTP/9.9\r\n\r\n".encode())
        assert _status_and_error(reply) == (505, "malformed request: HTTP Version Not Supported")
        reply = _raw(port, f"GET /ping?key={API_KEY} HTTP/1.1 extra\r\n\r\n".encode())
        assert _status_and_error(reply) == (400, "malformed request: Bad Request")
    egress.assert_only(port)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith(LOGGER)]
    assert len(messages) >= 3, "requests are logged"
    assert not [m for m in messages if API_KEY in m or "?" in m]


def test_half_sent_requests_are_closed_at_the_read_timeout(short: RunningConnector) -> None:
    port = short.server.server_address[1]
    partial = [
        b"POST /v1/launch HTTP/1.1\r\nHost: x\r\nContent-Le",  # headers never finish
        (
            f"POST /v1/launch HTTP/1.1\r\nHost: x\r\nAuthorization: {API_KEY}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000\r\n\r\n--b\r\n"
        ).encode(),  # body never finishes
        f"GET /ping HTTP/1.1\r\nAuthorization: {API_KEY}\r\n".encode(),
    ]
    with Egress() as egress:
        sockets = []
        for i in range(50):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(partial[i % len(partial)])
            sockets.append(sock)
        for sock in sockets:
            with sock:
                received = b""
                while piece := sock.recv(65536):
                    received += piece
                assert not received.startswith(b"HTTP/1.1 200"), "nothing half-sent is served"
        response = httpx.post(f"{short.url}/ping", headers={"Authorization": API_KEY})
    assert response.status_code == 200 and response.json() == "pong"
    egress.assert_only(port)


def test_a_trickled_request_is_cut_at_the_deadline(short: RunningConnector) -> None:
    """One byte every 50 ms never trips a per-read timeout; the per-request deadline cuts it."""
    port = short.server.server_address[1]
    request = f"GET /ping HTTP/1.1\r\nAuthorization: {API_KEY}\r\nX-Pad: {'p' * 400}\r\n\r\n".encode()
    sent = 0
    with Egress() as egress, socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.05)
        except OSError:
            pass  # reset by the server
        else:
            assert sock.recv(65536) == b"", "the server closed the connection"
    assert sent < len(request), "the server cut the connection before the request was complete"
    egress.assert_only(port)


@pytest.mark.parametrize("path", ["/v1/launch", "/ping"])
@pytest.mark.parametrize("length", ["-1", "+5", "1e3", "0x10", "\xb2", "99999999999999999999999"])
def test_absurd_content_length_gets_400_at_once(connector: RunningConnector, path: str, length: str) -> None:
    port = connector.server.server_address[1]
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {API_KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {length}\r\n\r\n"
    ).encode("latin-1")
    with Egress() as egress:
        status, error = _status_and_error(_raw(port, request))
    egress.assert_only(port)
    if length.startswith("9"):  # a number, just too large
        assert status == 413 and length not in error
    else:
        assert (status, error) == (400, "Content-Length is not a non-negative integer")


def test_each_launch_logs_one_line_with_its_outcome(
    aws: AwsClients, connector: RunningConnector, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    data, filename = _package()
    port = connector.server.server_address[1]
    with Egress() as egress:
        client = DaemonClient(connector.url, API_KEY)
        assert client.launch(data, filename).ok
        assert client.launch(data, filename, verified=False).error is not None
        assert client.launch(b"not a zip", filename).error is not None
        content_type, body = multipart_body([("verified", "true")], [])
        bad_form = httpx.post(
            f"{connector.url}/v1/launch", content=body, headers={"Content-Type": content_type}
        )
        assert bad_form.status_code == 401
        client.close()
    egress.assert_only(port)
    # Each line is written once its stream is closed, so their order may differ from the calls'.
    lines = sorted(_launch_lines(caplog, 4), key=lambda line: line.split(": ", 1)[1])
    assert len(lines) == 4, lines
    assert ": launched dify-acme-tiny-0-0-1-" in lines[0] and "launch acme@tiny@0.0.1@" in lines[0]
    assert ": refused: invalid package:" in lines[1]
    assert "refused: package is not verified (bad or missing signature)" in lines[2]
    assert lines[3].endswith("launch -: refused: unauthorized")
    access = [r.getMessage() for r in caplog.records if "/v1/launch" in r.getMessage()]
    assert access == [], "no access-log line (and no '200') for launches"


def test_a_failed_build_logs_failed(
    aws: AwsClients, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    builder = FakeBuilder(fail_with=BuildError("no manylinux wheel for gevent"))
    server, _service, thread = start_connector(aws, builder, work_root=tmp_path)
    try:
        data, filename = _package()
        client = DaemonClient(server.url, API_KEY)
        outcome = client.launch(data, filename)
        client.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert outcome.error is not None
    lines = _launch_lines(caplog)
    assert len(lines) == 1 and lines[0].endswith(": failed: BuildError: no manylinux wheel for gevent")


def test_concurrent_slow_clients_do_not_starve_ping(short: RunningConnector) -> None:
    """Slow clients each hold a thread only until their deadline, so a ping always gets through."""
    port = short.server.server_address[1]
    stop = threading.Event()

    def hold() -> None:
        while not stop.is_set():
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(b"GET /ping HTTP/1.1\r\n")
                while sock.recv(1024):
                    pass

    holders = [threading.Thread(target=hold, daemon=True) for _ in range(20)]
    with Egress() as egress:
        for t in holders:
            t.start()
        try:
            for _ in range(5):
                response = httpx.post(f"{short.url}/ping", headers={"Authorization": API_KEY})
                assert response.json() == "pong"
        finally:
            stop.set()
            for t in holders:
                t.join()
    egress.assert_only(port)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_launch_rolls_back_and_exits(tmp_path: Path, signum: signal.Signals) -> None:
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(SUPPORT / "connector_proc.py"), str(work)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        data, filename = _package()
        content_type, body = multipart_body([("verified", "true")], [("context", filename, data)])
        chunks = []
        headers = {"Authorization": API_KEY, "Content-Type": content_type}
        with httpx.stream("POST", f"{url}/v1/launch", content=body, headers=headers, timeout=60) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                chunks.append(json.loads(line.removeprefix("data:")))
                if chunks[-1]["Stage"] == "build" and len(chunks) == 3:
                    proc.send_signal(signum)  # mid-build
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert chunks[-1] == {
        "Stage": "build",
        "State": "failed",
        "Obj": "",
        "Message": "the connector is shutting down; the launch was stopped and rolled back",
    }
    report = json.loads(out.strip().splitlines()[-1])
    assert report == {"done": True, "functions": [], "work_left": [], "egress": []}
    launch_lines = [line for line in err.splitlines() if " launch " in line]
    assert len(launch_lines) == 1
    assert launch_lines[0].endswith(
        f"launch {filename}: failed: the connector is shutting down; the launch was stopped and rolled back"
    )


def test_the_listen_backlog_holds_128_waiting_connections(aws: AwsClients, tmp_path: Path) -> None:
    """Nobody accepts: every connect up to the backlog still completes (a backlog of 5 would stall)."""
    from dify_lambda.infra.connector.server import make_server
    from dify_lambda.infra.connector.service import LaunchService
    from dify_lambda.infra.deployer import Deployer

    service = LaunchService(Deployer(aws), FakeBuilder(), work_root=tmp_path)
    server = make_server("127.0.0.1", 0, service, api_key=API_KEY, max_package_bytes=1 << 20)
    port = server.server_address[1]
    sockets = []
    try:
        with Egress() as egress:
            for _ in range(128):
                sockets.append(socket.create_connection(("127.0.0.1", port), timeout=60))
        egress.assert_only(port)
    finally:
        for sock in sockets:
            sock.close()
        server.server_close()


@pytest.mark.parametrize(
    "filename",
    [
        "../../canary@tiny@0.0.1@" + "ab" * 32 + ".difypkg",
        "acme@tiny@0.0.1@" + "ab" * 32 + ".difypkg/../../../canary",
        "/tmp/canary.difypkg",
    ],
)
def test_a_traversing_context_filename_is_refused_and_writes_nothing(
    aws: AwsClients, connector: RunningConnector, tmp_path: Path, filename: str
) -> None:
    data, _ = _package()
    canaries = [tmp_path.parent / "canary", tmp_path / "canary", Path("/tmp/canary.difypkg")]
    content_type, body = multipart_body([("verified", "true")], [("context", filename, data)])
    port = connector.server.server_address[1]
    with Egress() as egress:
        response = httpx.post(
            f"{connector.url}/v1/launch",
            content=body,
            headers={"Authorization": API_KEY, "Content-Type": content_type},
        )
    egress.assert_only(port)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("bad context filename: filename must look like <author>@<name>@<version>")
    assert "canary" not in error, "the file name sent is not echoed"
    assert not [c for c in canaries if c.exists()]
    assert list(tmp_path.iterdir()) == [], "the launch's work directory holds nothing"
    assert aws.lambda_.list_functions()["Functions"] == []


def test_connections_over_the_cap_get_503_at_once_and_slots_come_back(
    aws: AwsClients, tmp_path: Path
) -> None:
    from dify_lambda.infra.connector.server import make_server
    from dify_lambda.infra.connector.service import LaunchService
    from dify_lambda.infra.deployer import Deployer

    service = LaunchService(Deployer(aws), FakeBuilder(), work_root=tmp_path)
    server = make_server(
        "127.0.0.1",
        0,
        service,
        api_key=API_KEY,
        max_package_bytes=1 << 20,
        read_timeout_s=30,
        max_connections=2,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    ping = f"GET /ping HTTP/1.1\r\nHost: x\r\nAuthorization: {API_KEY}\r\nConnection: close\r\n\r\n".encode()
    try:
        with Egress() as egress:
            idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(2)]
            # Both slots are held by silent clients: the next one is refused without waiting for them.
            started = time.monotonic()
            reply = _raw(port, ping, timeout=10)
            assert time.monotonic() - started < 10
            assert _status_and_error(reply) == (503, "busy: too many open connections; retry shortly")
            assert b"Retry-After: 1" in reply
            for sock in idle:
                sock.close()
            for _ in range(200):  # the handlers see the close and give their slots back
                reply = _raw(port, ping, timeout=10)
                if int(reply.split(b" ", 2)[1]) != 503:
                    break
                time.sleep(0.05)
            assert int(reply.split(b" ", 2)[1]) == 200
        egress.assert_only(port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
