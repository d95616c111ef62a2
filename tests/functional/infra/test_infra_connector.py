"""The connector over loopback HTTP, driven by a daemon-like client, with moto and a fake builder."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import httpx
import pytest
from infra_helpers import API_KEY, FailingLambda, FakeBuilder, RunningConnector, start_connector
from support.daemon_client import DaemonClient, DaemonError, multipart_body
from support.pkgfactory import dump, good_package, manifest_doc, set_path

from dify_lambda.errors import BuildError
from dify_lambda.infra.artifact import BuiltArtifact, Progress
from dify_lambda.infra.aws import AwsClients
from dify_lambda.infra.builder import BuildRequest
from dify_lambda.infra.connector.service import ConnectorSettings
from dify_lambda.packaging.reader import PluginPackage
from dify_lambda.wire import ALIAS_NAME, TAG_CHECKSUM


def package(version: str = "0.0.1") -> tuple[bytes, PluginPackage]:
    data = good_package(manifest_dot_yaml=dump(set_path(manifest_doc(), "version", version)))
    return data, PluginPackage.from_bytes(data)


@pytest.fixture
def daemon(connector: RunningConnector) -> DaemonClient:
    client = DaemonClient(connector.url, API_KEY)
    yield client  # type: ignore[misc]
    client.close()


def function_names(aws: AwsClients) -> list[str]:
    return [f["FunctionName"] for f in aws.lambda_.list_functions()["Functions"]]


def test_ping_by_post_and_get_answers_json_pong(connector: RunningConnector, daemon: DaemonClient) -> None:
    daemon.ping()
    response = httpx.get(f"{connector.url}/ping", headers={"Authorization": API_KEY})
    assert response.status_code == 200
    assert json.loads(response.content) == "pong"


def test_bearer_prefix_is_tolerated(connector: RunningConnector) -> None:
    response = httpx.post(f"{connector.url}/ping", headers={"Authorization": f"Bearer {API_KEY}"})
    assert json.loads(response.content) == "pong"


def test_every_route_needs_the_key(connector: RunningConnector) -> None:
    routes = ["GET /ping", "POST /ping", "GET /v1/runner/instances", "POST /v1/launch", "GET /nowhere"]
    for header in (None, "wrong", f"Bearer {API_KEY}x", API_KEY[:-1], "x" + API_KEY):
        for route in routes:
            method, path = route.split()
            headers = {"Authorization": header} if header is not None else {}
            response = httpx.request(method, f"{connector.url}{path}", headers=headers)
            assert response.status_code == 401, (header, route)
            assert "unauthorized" in response.json()["error"]


def test_daemon_with_wrong_key_fails_its_startup_ping(connector: RunningConnector) -> None:
    client = DaemonClient(connector.url, "not-the-key")
    with pytest.raises(DaemonError, match="expected 'pong'"):
        client.ping()
    client.close()


def test_launch_lifecycle(aws: AwsClients, connector: RunningConnector, daemon: DaemonClient) -> None:
    data, pkg = package()
    assert daemon.find_instance(pkg.serverless_filename) is None

    outcome = daemon.launch(data, pkg.serverless_filename, unique_identifier=pkg.unique_identifier)
    assert outcome.error is None, outcome.error
    assert outcome.ok
    assert outcome.skipped_lines == []
    stages = [(c["Stage"], c["State"]) for c in outcome.chunks]
    assert stages[0] == ("start", "running")
    assert ("build", "running") in stages
    assert ("run", "running") in stages
    assert stages[-2:] == [("run", "success"), ("end", "success")]
    assert ("info", "Building plugin...") in outcome.events
    assert ("info", "Launching plugin...") in outcome.events

    name, endpoint = outcome.function_name, outcome.function_url
    assert name is not None and endpoint is not None
    assert name.startswith("dify-acme-tiny-0-0-1-")
    cfg = aws.lambda_.get_function_configuration(FunctionName=name)
    env = cfg["Environment"]["Variables"]
    url = aws.lambda_.get_function_url_config(FunctionName=name, Qualifier=ALIAS_NAME)
    assert url["AuthType"] == "NONE"
    assert endpoint == f"{url['FunctionUrl'].rstrip('/')}/{env['DIFY_LAMBDA_SECRET']}"
    assert env["DIFY_LAMBDA_URL_AUTH"] == "NONE"
    assert env["DIFY_PLUGIN_DAEMON_URL"] == "http://daemon.internal:5002"
    assert env["INSTALL_METHOD"] == "serverless"
    assert aws.lambda_.list_tags(Resource=cfg["FunctionArn"])["Tags"][TAG_CHECKSUM] == pkg.checksum
    assert connector.builder.calls == [pkg.checksum]
    # No line ever carries the package bytes.
    assert all("manifest" not in c["Message"] for c in outcome.chunks)

    found = daemon.find_instance(pkg.serverless_filename)
    assert found is not None
    assert (found.name, found.endpoint) == (name, endpoint)
    assert found.resource_name == cfg["FunctionArn"]

    again = daemon.launch(data, pkg.serverless_filename)
    assert again.ok
    assert (again.function_name, again.function_url) == (name, endpoint)
    assert connector.builder.calls == [pkg.checksum], "relaunch of the same checksum builds nothing"
    assert function_names(aws) == [name]

    via_lookup = daemon.launch_plugin(data, pkg.serverless_filename)
    assert (via_lookup.function_name, via_lookup.function_url) == (name, endpoint)


def test_another_version_gets_its_own_function(aws: AwsClients, daemon: DaemonClient) -> None:
    one, pkg_one = package("0.0.1")
    two, pkg_two = package("0.0.2")
    first = daemon.launch(one, pkg_one.serverless_filename)
    second = daemon.launch(two, pkg_two.serverless_filename)
    assert first.ok and second.ok
    assert first.function_name != second.function_name
    assert sorted(function_names(aws)) == sorted([first.function_name, second.function_name])


def test_concurrent_launches_of_one_package_build_once(
    aws: AwsClients, connector: RunningConnector, daemon: DaemonClient
) -> None:
    data, pkg = package()
    outcomes = []

    def run() -> None:
        client = DaemonClient(connector.url, API_KEY)
        outcomes.append(client.launch(data, pkg.serverless_filename))
        client.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o.ok for o in outcomes] == [True, True, True]
    assert len({(o.function_name, o.function_url) for o in outcomes}) == 1
    assert connector.builder.calls == [pkg.checksum]
    assert len(function_names(aws)) == 1


def test_bad_filename_in_instances_lookup_is_an_error(daemon: DaemonClient) -> None:
    with pytest.raises(DaemonError, match="bad filename"):
        daemon.find_instance("not-a-package.zip")


def test_not_a_zip_is_a_failed_line_and_creates_nothing(aws: AwsClients, daemon: DaemonClient) -> None:
    _, pkg = package()
    outcome = daemon.launch(b"this is not a zip file", pkg.serverless_filename)
    assert outcome.error is not None
    assert outcome.error.startswith("invalid package:")
    assert outcome.chunks[-1]["State"] == "failed"
    assert function_names(aws) == []


def test_bad_manifest_is_a_failed_line(aws: AwsClients, daemon: DaemonClient) -> None:
    data = good_package(manifest_dot_yaml=dump(set_path(manifest_doc(), "author", ...)))
    outcome = daemon.launch(data, "acme@tiny@0.0.1@" + "ab" * 32 + ".difypkg")
    assert outcome.error is not None and "invalid package" in outcome.error
    assert "manifest" in outcome.error
    assert function_names(aws) == []


def test_filename_checksum_must_match_the_package(aws: AwsClients, daemon: DaemonClient) -> None:
    data, pkg = package()
    wrong = pkg.serverless_filename.replace(pkg.checksum, "0" * 64)
    outcome = daemon.launch(data, wrong)
    assert outcome.error is not None and "checksum does not match" in outcome.error
    assert function_names(aws) == []


def test_unverified_package_is_refused_by_default(aws: AwsClients, daemon: DaemonClient) -> None:
    data, pkg = package()
    outcome = daemon.launch(data, pkg.serverless_filename, verified=False)
    assert outcome.error is not None and "--allow-unverified" in outcome.error
    assert function_names(aws) == []


def test_unverified_package_is_launched_when_allowed(aws: AwsClients, tmp_path: Path) -> None:
    server, _service, thread = start_connector(
        aws, FakeBuilder(), settings=ConnectorSettings(allow_unverified=True), work_root=tmp_path
    )
    try:
        client = DaemonClient(server.url, API_KEY)
        data, pkg = package()
        outcome = client.launch(data, pkg.serverless_filename, verified=False)
        client.close()
        assert outcome.ok
        env = aws.lambda_.get_function_configuration(FunctionName=outcome.function_name)["Environment"]
        assert "DIFY_PLUGIN_DAEMON_URL" not in env["Variables"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_build_failure_is_reported_and_creates_nothing(aws: AwsClients, tmp_path: Path) -> None:
    builder = FakeBuilder(fail_with=BuildError("no manylinux wheel for gevent (cp312, aarch64)"))
    server, _service, thread = start_connector(aws, builder, work_root=tmp_path)
    try:
        client = DaemonClient(server.url, API_KEY)
        data, pkg = package()
        outcome = client.launch(data, pkg.serverless_filename)
        client.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert outcome.error is not None and "no manylinux wheel for gevent" in outcome.error
    assert outcome.chunks[-1]["Stage"] == "build"
    assert function_names(aws) == []
    assert list(tmp_path.iterdir()) == [], "the launch's work directory is removed"


@pytest.mark.parametrize(
    ("fields", "files", "expected"),
    [
        ([("verified", "true")], [], "form file 'context'"),
        ([], [("context", "acme@tiny@0.0.1@" + "ab" * 32 + ".difypkg", b"x")], "'verified' is missing"),
        (
            [("verified", "yes")],
            [("context", "acme@tiny@0.0.1@" + "ab" * 32 + ".difypkg", b"x")],
            "'verified' must be",
        ),
        ([("verified", "true")], [("context", "tiny.difypkg", b"x")], "bad context filename"),
        (
            [("verified", "true"), ("metadata", "{")],
            [("context", "acme@tiny@0.0.1@" + "ab" * 32 + ".difypkg", b"x")],
            "'metadata' is not JSON",
        ),
    ],
)
def test_malformed_launch_forms_get_400_and_create_nothing(
    aws: AwsClients,
    connector: RunningConnector,
    fields: list[tuple[str, str]],
    files: list[tuple[str, str, bytes]],
    expected: str,
) -> None:
    content_type, body = multipart_body(fields, files)
    response = httpx.post(
        f"{connector.url}/v1/launch",
        content=body,
        headers={"Authorization": API_KEY, "Content-Type": content_type},
    )
    assert response.status_code == 400
    assert expected in response.json()["error"]
    assert function_names(aws) == []


def test_launch_needs_multipart(connector: RunningConnector) -> None:
    response = httpx.post(
        f"{connector.url}/v1/launch",
        content=b"{}",
        headers={"Authorization": API_KEY, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]


def test_oversize_content_length_is_refused_before_the_body_is_read(
    aws: AwsClients, connector: RunningConnector
) -> None:
    # Announce a huge body but send none: the answer must come from the header alone.
    host, port = connector.server.server_address[:2]
    with socket.create_connection((str(host), port)) as sock:
        sock.sendall(
            (
                "POST /v1/launch HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {API_KEY}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                "Content-Length: 999999999\r\n\r\n"
            ).encode()
        )
        sock.settimeout(30)
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            piece = sock.recv(4096)
            if not piece:
                break
            reply += piece
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    message = json.loads(body)["error"]
    assert "--max-package-mb" in message
    assert "999999999" not in message, "the message names the limit, never the value sent"
    assert function_names(aws) == []


def test_unknown_route_is_404(connector: RunningConnector) -> None:
    response = httpx.get(f"{connector.url}/v1/nothing", headers={"Authorization": API_KEY})
    assert response.status_code == 404
    assert "no such route" in response.json()["error"]
    assert "nothing" not in response.json()["error"], "the path sent is not echoed"


class BlockingBuilder(FakeBuilder):
    """Blocks inside the build until released, then reports progress (as a real build would)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def __call__(self, request: BuildRequest, progress: Progress) -> BuiltArtifact:
        self.release.wait(timeout=60)
        return super().__call__(request, progress)


def test_launch_over_budget_ends_with_failed_line_and_deploys_nothing(
    aws: AwsClients, tmp_path: Path
) -> None:
    builder = BlockingBuilder()
    server, service, thread = start_connector(
        aws, builder, settings=ConnectorSettings(launch_budget_s=0.5), work_root=tmp_path
    )
    try:
        client = DaemonClient(server.url, API_KEY)
        data, pkg = package()
        outcome = client.launch(data, pkg.serverless_filename)
        client.close()
        assert outcome.error is not None and "did not finish within" in outcome.error
    finally:
        builder.release.set()
        assert service.wait_idle(timeout=60), "the cancelled worker stops at its next step"
        server.shutdown()
        server.server_close()
        thread.join()
    assert function_names(aws) == []


def test_deploy_failure_during_launch_leaves_no_function(aws: AwsClients, tmp_path: Path) -> None:
    broken = AwsClients(
        region=aws.region,
        lambda_=FailingLambda(aws.lambda_, "publish_version"),
        iam=aws.iam,
        s3=aws.s3,
        ssm=aws.ssm,
        sts=aws.sts,
    )
    server, _service, thread = start_connector(broken, FakeBuilder(), work_root=tmp_path)
    try:
        client = DaemonClient(server.url, API_KEY)
        data, pkg = package()
        outcome = client.launch(data, pkg.serverless_filename)
        client.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert outcome.error is not None and "deploying dify-acme-tiny-0-0-1-" in outcome.error
    assert "injected failure" not in outcome.error, "internal exception text stays in the log"
    assert outcome.chunks[-1]["Stage"] == "run"
    assert function_names(aws) == []
    assert not [r for r in aws.iam.list_roles()["Roles"] if r["RoleName"].startswith("dify-lambda-")]
