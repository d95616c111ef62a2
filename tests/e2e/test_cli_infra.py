"""``dify-lambda deploy | ls | rollback | connector`` run as a user would, against a moto server."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml
from moto.server import ThreadedMotoServer
from support.daemon_client import DaemonClient

CLI = Path(sys.executable).parent / "dify-lambda"
REGION = "us-east-1"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    httpx.post(f"{endpoint}/moto-api/config", json={"lambda": {"use_docker": False}}).raise_for_status()
    try:
        yield endpoint
    finally:
        server.stop()
        # stop() leaves the listening socket open; close it so no ResourceWarning leaks into later tests.
        if server._server is not None:
            server._server.server_close()


@pytest.fixture
def env(moto_endpoint: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    httpx.post(f"{moto_endpoint}/moto-api/reset").raise_for_status()
    httpx.post(f"{moto_endpoint}/moto-api/config", json={"lambda": {"use_docker": False}}).raise_for_status()
    values = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        # Builds ship tiktoken's files; this machine takes them offline (tests/conftest.py).
        "DIFY_LAMBDA_TIKTOKEN_CACHE": os.environ.get("DIFY_LAMBDA_TIKTOKEN_CACHE", ""),
    }
    yield values


def client(env: dict[str, str], service: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def role_arn(env: dict[str, str]) -> str:
    return str(
        client(env, "iam").create_role(RoleName="e2e", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"][
            "Arn"
        ]
    )


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def build_dir(root: Path, checksum: str, content: bytes) -> Path:
    """A hand-made `dify-lambda build` output: report, template and artifact."""
    root.mkdir(parents=True)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("plugin/main.py", content)
    (root / "artifact.zip").write_bytes(out.getvalue())
    report = {
        "plugin_id": "acme/tiny",
        "version": "0.0.1",
        "checksum": checksum,
        "providers": ["tiny"],
        "artifact": "artifact.zip",
    }
    (root / "build-report.json").write_text(json.dumps(report))
    template = {
        "Resources": {
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Runtime": "python3.12",
                    "Architectures": ["x86_64"],
                    "MemorySize": 256,
                    "Timeout": 60,
                    "Handler": "dify_lambda.handlers.buffered.lambda_handler",
                    "Environment": {
                        "Variables": {
                            "INSTALL_METHOD": "serverless",
                            "DIFY_LAMBDA_URL_AUTH": {"Ref": "AuthType"},
                        }
                    },
                },
            }
        }
    }
    (root / "template.yaml").write_text(yaml.safe_dump(template))
    return root


def test_deploy_ls_rollback(env: dict[str, str], tmp_path: Path) -> None:
    arn = role_arn(env)
    first = build_dir(tmp_path / "b1", "ab" * 32, b"v1")
    routes = tmp_path / "routes.yaml"

    created = run(
        env, "deploy", str(first), "--role-arn", arn, "--routes", str(routes), "--routes-ssm", "/dify/routes"
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created: acme/tiny:0.0.1@" + "ab" * 32)
    assert "dify-acme-tiny-0-0-1" in created.stdout
    assert created.stderr.strip(), "progress lines are printed while it works"
    table = yaml.safe_load(routes.read_text())
    [deployment] = table["routes"]["acme/tiny"]["deployments"]
    assert deployment["auth"] == "iam"
    ssm_doc = json.loads(client(env, "ssm").get_parameter(Name="/dify/routes")["Parameter"]["Value"])
    assert ssm_doc["routes"]["acme/tiny"]["deployments"] == [deployment]

    again = run(env, "deploy", str(first), "--role-arn", arn, "-q")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("unchanged:")

    no_previous = run(env, "rollback", "dify-acme-tiny-0-0-1")
    assert no_previous.returncode == 2
    assert "no older published version" in no_previous.stderr

    second = build_dir(tmp_path / "b2", "cd" * 32, b"v2")
    updated = run(env, "deploy", str(second), "--role-arn", arn, "--json", "-q")
    assert updated.returncode == 0, updated.stderr
    result = json.loads(updated.stdout)
    assert (result["status"], result["version"], result["previous_version"]) == ("updated", "2", "1")

    listed = run(env, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["plugin_id"], row["version"], row["alias_version"], row["auth"]) == (
        "acme/tiny",
        "0.0.1",
        "2",
        "AWS_IAM",
    )
    assert row["url"] == deployment["url"]

    back = run(env, "rollback", "dify-acme-tiny-0-0-1")
    assert back.returncode == 0, back.stderr
    assert "live 2 -> 1" in back.stdout

    table_ls = run(env, "ls")
    assert "acme/tiny" in table_ls.stdout and "AWS_IAM" in table_ls.stdout


def test_deploy_errors_are_one_clear_line(env: dict[str, str], tmp_path: Path) -> None:
    missing = run(env, "deploy", str(tmp_path / "nothing.difypkg"))
    assert missing.returncode == 2
    assert "nothing.difypkg" in missing.stderr
    bad_name = run(env, "deploy", str(build_dir(tmp_path / "b", "ab" * 32, b"x")), "--name", "other-fn")
    assert bad_name.returncode == 2
    assert "must start with 'dify-'" in bad_name.stderr
    no_region = run({k: v for k, v in env.items() if k != "AWS_REGION"}, "ls")
    assert no_region.returncode == 2
    assert "--region" in no_region.stderr


def test_connector_serves_the_daemon_api(env: dict[str, str]) -> None:
    missing_key = run(env, "connector", "--port", "0")
    assert missing_key.returncode == 2
    assert "DIFY_LAMBDA_CONNECTOR_API_KEY" in missing_key.stderr

    key = "e2e-connector-key-0123456789"
    proc = subprocess.Popen(
        [str(CLI), "connector", "--host", "127.0.0.1", "--port", "0"],
        env={**env, "DIFY_LAMBDA_CONNECTOR_API_KEY": key},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first_line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in first_line, first_line
        url = first_line.rsplit(" ", 1)[1].strip()
        daemon = DaemonClient(url, key)
        daemon.ping()
        filename = "acme@tiny@0.0.1@" + "ab" * 32 + ".difypkg"
        assert daemon.find_instance(filename) is None
        outcome = daemon.launch(b"not a zip", filename)
        assert outcome.error is not None and outcome.error.startswith("invalid package")
        daemon.close()
        assert httpx.post(f"{url}/ping", headers={"Authorization": "nope"}).status_code == 401
        assert client(env, "lambda").list_functions()["Functions"] == []
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.slow
def test_deploy_a_plugin_directory_builds_it_first(
    env: dict[str, str], tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    cache = os.environ.get("DIFY_LAMBDA_TEST_CACHE") or str(pytestconfig.cache.mkdir("dify-lambda-build"))
    plugin = Path(__file__).resolve().parents[2] / "plugins" / "mockgpt"
    out = tmp_path / "build"
    deployed = run(
        {**env, "DIFY_LAMBDA_CACHE": cache},
        "deploy",
        str(plugin),
        "--build-dir",
        str(out),
        "--role-arn",
        role_arn(env),
        "--url-auth",
        "NONE",
        "--json",
    )
    assert deployed.returncode == 0, deployed.stderr
    result = json.loads(deployed.stdout)
    assert result["status"] == "created"
    assert result["url_auth"] == "NONE"
    assert (out / "artifact.zip").is_file()
    assert "ResolveDependencies" in deployed.stderr
    cfg = client(env, "lambda").get_function_configuration(FunctionName=result["function_name"])
    assert cfg["Environment"]["Variables"]["DIFY_LAMBDA_SECRET"] not in deployed.stdout + deployed.stderr

    shown = run(env, "ls", "--show-secrets", "--json")
    [row] = json.loads(shown.stdout)
    assert row["endpoint"].endswith("/" + cfg["Environment"]["Variables"]["DIFY_LAMBDA_SECRET"])
