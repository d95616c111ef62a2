"""SSM route tables for real: the deployer's publisher writes, the router reads (moto), and the CLI
reads ``--routes ssm:<name>`` from a loopback moto server and calls the routed function URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer
from router_servers import RecordingServer, running, write_chunked

from dify_lambda import wire
from dify_lambda.infra.models import DeployResult
from dify_lambda.infra.routes import publish_to_ssm, secret_env_name
from dify_lambda.router.errors import InvalidRouteTableError, RouteSourceError
from dify_lambda.router.sources import RouteCache, route_loader, routes_from_ssm

REGION = "us-east-1"
NAME = "/dify-lambda/routes"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
ROOT = Path(__file__).resolve().parents[3]
CLI = ROOT / ".venv" / "bin" / "dify-lambda"
if not CLI.exists():
    CLI = Path(sys.executable).with_name("dify-lambda")


def deploy_result(name: str, plugin_id: str, url: str, url_auth: Any = "AWS_IAM") -> DeployResult:
    """What the deployer returns for one function; only the route-relevant fields matter here."""
    return DeployResult(
        status="created",
        function_name=name,
        function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:{name}",
        version="1",
        previous_version=None,
        url=url,
        url_auth=url_auth,
        plugin_id=plugin_id,
        unique_identifier=f"{plugin_id}:0.0.1@{'ab' * 32}",
        checksum="ab" * 32,
    )


@pytest.fixture
def ssm() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ssm", region_name=REGION, **CREDENTIALS)


def test_publish_then_read_back_round_trip(ssm: Any) -> None:
    iam = deploy_result("tiny", "acme/tiny", "https://aaa.lambda-url.us-east-1.on.aws/")
    open_url = deploy_result("other", "acme/other", "https://bbb.lambda-url.eu-west-1.on.aws/", "NONE")
    publish_to_ssm(ssm, NAME, iam)
    publish_to_ssm(ssm, NAME, open_url)
    table = routes_from_ssm(ssm, NAME)
    assert table.plugin_ids == ("acme/other", "acme/tiny")
    [tiny] = table.deployments_for("acme/tiny")
    assert (tiny.url, tiny.auth, tiny.region) == (iam.url, "iam", "us-east-1")
    [other] = table.deployments_for("acme/other")
    assert (other.url, other.auth, other.secret_env) == (open_url.url, "secret", secret_env_name("other"))
    # A redeploy moves the plugin's traffic; the router sees it on the next refresh.
    now = [0.0]
    cache = RouteCache(
        route_loader(f"ssm:{NAME}", ssm_client=lambda: ssm), refresh_seconds=1, clock=lambda: now[0]
    )
    assert cache.get().deployments_for("acme/tiny")[0].url == iam.url
    moved = deploy_result("tiny-v2", "acme/tiny", "https://ccc.lambda-url.us-west-2.on.aws/")
    publish_to_ssm(ssm, NAME, moved)
    now[0] = 2.0
    assert [(d.url, d.region) for d in cache.get().deployments_for("acme/tiny")] == [(moved.url, "us-west-2")]


def test_secure_string_yaml_and_real_errors(ssm: Any) -> None:
    url = "https://ddd.lambda-url.us-east-1.on.aws/"
    ssm.put_parameter(
        Name="/secure", Type="SecureString", Value=f"routes:\n  a/b:\n    deployments: [{{url: '{url}'}}]\n"
    )
    assert routes_from_ssm(ssm, "/secure").deployments_for("a/b")[0].url == url
    with pytest.raises(RouteSourceError, match=r"^ssm:/missing: SSM parameter not found$"):
        routes_from_ssm(ssm, "/missing")
    ssm.put_parameter(
        Name="/bad", Type="String", Value=json.dumps({"routes": {"a/b": {"deployments": [{}]}}})
    )
    with pytest.raises(InvalidRouteTableError, match=r"^ssm:/bad: routes\['a/b'\]\.deployments\[0\]\.url"):
        routes_from_ssm(ssm, "/bad")


@pytest.fixture
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def cli_env(endpoint: str, **extra: str) -> dict[str, str]:
    """Fake credentials and the moto endpoint; nothing from the user's AWS config leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **env,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **extra,
    }


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def reply_text(handler: BaseHTTPRequestHandler, body: bytes) -> None:
    sid = json.loads(body)["session_id"]
    chunk = {"delta": {"message": {"role": "assistant", "content": "routed via ssm"}}}
    write_chunked(handler, [wire.session_line(sid, "stream", chunk), wire.end_line(sid)])


@pytest.fixture
def function_url() -> Iterator[RecordingServer]:
    with running(reply_text) as server:
        yield server


def test_cli_reads_routes_from_ssm(moto_server: str, function_url: RecordingServer) -> None:
    ssm = boto3.client("ssm", region_name=REGION, endpoint_url=moto_server, **CREDENTIALS)
    result = deploy_result("echo-fn", "acme/echo", function_url.url, "NONE")
    publish_to_ssm(ssm, NAME, result)
    secret_var = secret_env_name("echo-fn")
    env = cli_env(moto_server, **{secret_var: "s3cr3t-value"})
    data = json.dumps({"provider": "echo", "model_type": "llm", "model": "m", "credentials": {}})

    done = run_cli(
        "invoke", "--routes", f"ssm:{NAME}", "--plugin", "acme/echo", "invoke_llm", "--data", data, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "routed via ssm"
    [request] = function_url.requests
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers[wire.SECRET_HEADER.lower()] == "s3cr3t-value"

    # --region names the SSM client's region: the parameter lives in us-east-1 only.
    elsewhere = run_cli(
        "invoke", "--routes", f"ssm:{NAME}", "--region", "eu-west-1", "--plugin", "acme/echo", "invoke_llm",
        "--data", data, env=env,
    )  # fmt: skip
    assert elsewhere.returncode == 2
    assert f"ssm:{NAME}: SSM parameter not found" in elsewhere.stderr

    missing = run_cli(
        "invoke", "--routes", "ssm:/nope", "--plugin", "acme/echo", "invoke_llm", "--data", data, env=env
    )
    assert missing.returncode == 2
    assert "ssm:/nope: SSM parameter not found" in missing.stderr
    assert len(function_url.requests) == 1, "no call without a route table"


def test_cli_region_only_with_url_or_ssm(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    path.write_text(
        json.dumps({"routes": {"a/b": {"deployments": [{"url": "https://x.lambda-url.us-east-1.on.aws/"}]}}})
    )
    done = run_cli(
        "invoke", "--routes", str(path), "--region", "eu-west-1", "--plugin", "a/b", "invoke_llm",
        "--data", "{}", env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 2
    assert "--region applies to a URL or to --routes ssm:NAME" in done.stderr
