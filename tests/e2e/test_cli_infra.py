"""``dify-lambda deploy | ls | rollback | connector`` run as a user would, against a moto server."""

from __future__ import annotations

import io
import json
import os
import signal
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

# One xdist worker runs the module (--dist loadgroup): a moto server, once per run.
pytestmark = pytest.mark.xdist_group("test_cli_infra")

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
def env(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    # The server runs in this process; IAM loads AWS managed policies (the execution role's) when
    # its backend is created after the reset, and only this variable turns that on for a server.
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    # The reset reloads the managed policies (seconds of CPU): httpx's 5 s default fails it on a busy
    # machine running the suite on several workers.
    httpx.post(f"{moto_endpoint}/moto-api/reset", timeout=120).raise_for_status()
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
    # A build that misses the dependency cache reaches the package index: keep the machine's trust store.
    values.update({k: os.environ[k] for k in ("SSL_CERT_FILE", "SSL_CERT_DIR") if k in os.environ})
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


def build_dir(root: Path, checksum: str, content: bytes, *, schema: int = 2) -> Path:
    """A hand-made `dify-lambda build` output: the artifact and the report's deploy part."""
    root.mkdir(parents=True)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("plugin/main.py", content)
    (root / "artifact.zip").write_bytes(out.getvalue())
    report = {
        "schema": schema,
        "plugin_id": "acme/tiny",
        "version": "0.0.1",
        "checksum": checksum,
        "providers": ["tiny"],
        "artifact": "artifact.zip",
        "function": {
            "runtime": "python3.12",
            "architecture": "x86_64",
            "memory_mb": 256,
            "timeout": 60,
            "environment": {"INSTALL_METHOD": "serverless", "FROM_THE_REPORT": "yes"},
        },
    }
    (root / "build-report.json").write_text(json.dumps(report))
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
    cfg = client(env, "lambda").get_function_configuration(FunctionName="dify-acme-tiny-0-0-1")
    assert (cfg["MemorySize"], cfg["Timeout"], cfg["Architectures"]) == (256, 60, ["x86_64"]), (
        "the report's spec"
    )
    assert cfg["Environment"]["Variables"]["FROM_THE_REPORT"] == "yes"
    table = yaml.safe_load(routes.read_text())
    [deployment] = table["routes"]["acme/tiny"]["deployments"]
    assert deployment["auth"] == "iam"
    ssm_doc = json.loads(client(env, "ssm").get_parameter(Name="/dify/routes")["Parameter"]["Value"])
    assert ssm_doc["routes"]["acme/tiny"]["deployments"] == [deployment]

    again = run(env, "deploy", str(first), "--role-arn", arn, "-q")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("unchanged:")

    no_previous = run(env, "rollback", "dify-acme-tiny-0-0-1")
    assert no_previous.returncode == 1, "a failed operation on valid input"
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


def test_dry_run_rollback_forward_keep_and_rm(env: dict[str, str], tmp_path: Path) -> None:
    first = build_dir(tmp_path / "b1", "ab" * 32, b"v1")
    second = build_dir(tmp_path / "b2", "cd" * 32, b"v2")
    routes = tmp_path / "routes.yaml"

    dry = run(env, "deploy", str(first), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["status"] == "created"
    assert planned["steps"][0].startswith("create execution role")
    assert json.loads(run(env, "ls", "--json").stdout) == [], "a dry run changes nothing"

    assert run(env, "deploy", str(first), "--routes", str(routes), "-q").returncode == 0
    assert run(env, "deploy", str(second), "-q").returncode == 0
    assert run(env, "rollback", "dify-acme-tiny-0-0-1", "--json").returncode == 0

    forward_plan = run(env, "deploy", str(second), "--dry-run")
    assert forward_plan.returncode == 0, forward_plan.stderr
    assert "update the plugin identity tags" in forward_plan.stdout
    assert "move alias live 1 -> 2" in forward_plan.stdout
    forward = run(env, "deploy", str(second), "--json", "--keep", "1")
    assert forward.returncode == 0, forward.stderr
    assert forward.stderr == "", "--json keeps stderr quiet"
    result = json.loads(forward.stdout)
    assert (result["status"], result["version"], result["pruned"]) == ("updated", "2", ["1"])

    declined = subprocess.run(
        [str(CLI), "rm", "dify-acme-tiny-0-0-1", "--routes", str(routes)],
        env=env,
        input="n\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert declined.returncode == 1
    assert "nothing removed" in declined.stderr
    assert len(json.loads(run(env, "ls", "--json").stdout)) == 1

    removed = run(env, "rm", "dify-acme-tiny-0-0-1", "--routes", str(routes), "--yes", "--json")
    assert removed.returncode == 0, removed.stderr
    report = json.loads(removed.stdout)
    assert report["role_removed"] == "dify-lambda-dify-acme-tiny-0-0-1"
    assert report["routes"] == [str(routes)]
    assert json.loads(run(env, "ls", "--json").stdout) == []
    assert "acme/tiny" not in (yaml.safe_load(routes.read_text()).get("routes") or {})
    roles = client(env, "iam").list_roles()["Roles"]
    assert not [r for r in roles if r["RoleName"].startswith("dify-lambda-")]


def test_deploy_errors_are_one_clear_line(env: dict[str, str], tmp_path: Path) -> None:
    missing = run(env, "deploy", str(tmp_path / "nothing.difypkg"))
    assert missing.returncode == 2
    assert "nothing.difypkg" in missing.stderr
    bad_name = run(env, "deploy", str(build_dir(tmp_path / "b", "ab" * 32, b"x")), "--name", "other-fn")
    assert bad_name.returncode == 2
    assert "must start with 'dify-'" in bad_name.stderr
    old = run(env, "deploy", str(build_dir(tmp_path / "old", "ab" * 32, b"x", schema=1)))
    assert old.returncode == 2
    assert len(old.stderr.strip().splitlines()) == 1
    assert "build-report.json" in old.stderr and "rebuild with `dify-lambda build`" in old.stderr
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
        proc.terminate()  # SIGTERM, as Docker and ECS send it: a clean exit
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        launches = [line for line in err.splitlines() if " launch " in line]
        assert len(launches) == 1 and launches[0].endswith(
            ": refused: invalid package: " + filename + ": not a zip archive"
        )
        assert "stopping: 0 launch(es) in flight" in err
        assert key not in err
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
    assert deployed.stderr == "", "--json: no progress lines, stdout is the one document"
    cfg = client(env, "lambda").get_function_configuration(FunctionName=result["function_name"])
    assert cfg["Environment"]["Variables"]["DIFY_LAMBDA_SECRET"] not in deployed.stdout + deployed.stderr

    shown = run(env, "ls", "--show-secrets", "--json")
    [row] = json.loads(shown.stdout)
    assert row["endpoint"].endswith("/" + cfg["Environment"]["Variables"]["DIFY_LAMBDA_SECRET"])


def test_interrupt_at_the_rm_prompt_is_one_line_and_exit_130(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "deploy", str(build_dir(tmp_path / "b", "ab" * 32, b"v1")), "-q").returncode == 0
    proc = subprocess.Popen(
        [str(CLI), "rm", "dify-acme-tiny-0-0-1"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = b""
    while b"[y/N]" not in seen:
        chunk = proc.stderr.read(1)
        assert chunk, seen
        seen += chunk
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert rest.decode().strip() == "dify-lambda: error: interrupted"
    assert len(json.loads(run(env, "ls", "--json").stdout)) == 1, "nothing removed"
