"""The base distribution installs into a Dify-like venv without moving Dify's pins, and routes there.

One wheel of this repository is built, then installed (base only, no extra) into a fresh venv under
constraints taken from Dify's own pins (Dify 1.2 pins pydantic ~2.9.2 and, through
aliyun-python-sdk-core, jmespath 0.10.0; Dify 1.12 ships httpx 0.27.2). In that venv a script
enables the start-up hook, imports a stand-in for Dify's plugin client and sends one routed call
(SigV4-signed by botocore) to a loopback function URL, and one hosted-quota call that must go to
Dify's own path. pip's cache is reused, so only the first run downloads anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from router_servers import running, write_chunked

from dify_lambda import wire

# One xdist worker runs the module (--dist loadgroup): a venv with the base install, once per run.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_router_host_install")]

REPO = Path(__file__).resolve().parents[3]
#: Dify's pins the router must live with (see the module docstring).
DIFY_PINS = ("pydantic==2.9.2", "jmespath==0.10.0", "httpx==0.27.2")
#: Distributions of the `cli` extra (and what only they pull in): never in the base install.
CLI_ONLY = ("boto3", "aws-lambda-powertools", "cryptography", "s3transfer")

FAKE_DIFY_BASE = """
class BasePluginClient:
    def _stream_request(self, method, path, params=None, headers=None, data=None, files=None):
        yield '{"code":0,"message":"success","data":{"from":"daemon"}}'
"""

SCRIPT = """
import importlib.metadata, json, sys
import dify_lambda.router.autoinstall as hook
assert hook.enable()
sys.path.insert(0, sys.argv[1])
from core.plugin.impl.base import BasePluginClient  # the hook installs the router here

llm = {"provider": "mock", "model_type": "llm", "model": "m", "credentials": {"key": "v"},
       "prompt_messages": [], "model_parameters": {}, "stop": None, "tools": None, "stream": True}
headers = {"X-Plugin-ID": "acme/mock", "Content-Type": "application/json"}
def send(body):
    return list(BasePluginClient()._stream_request(
        "POST", "plugin/t1/dispatch/llm/invoke", None, headers, json.dumps(body), None))
print(json.dumps({
    "routed": send({"user_id": "u1", "data": llm}),
    "hosted_quota": send({"user_id": "u1", "data": {**llm, "credentials": {}, "redirect": {"x": 1}}}),
    "dists": sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()),
    "pydantic": importlib.metadata.version("pydantic"),
    # an ssm: route table is read through botocore alone (no boto3 here); no call is made
    "ssm_client": type(__import__("dify_lambda.router.dify").router.dify._default_ssm_client()).__name__,
}))
"""


def _pip(python: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True, text=True, timeout=600, check=False, cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("host-install")
    # Build from a copy, so setuptools' build/ and egg-info never land in the work tree.
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "dify_lambda", src / "dify_lambda", ignore=shutil.ignore_patterns("__pycache__"))
    built = _pip(Path(sys.executable), "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(src))
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (root / "dist").glob("dify_lambda-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    constraints = root / "dify-pins.txt"
    constraints.write_text("\n".join(DIFY_PINS) + "\n")
    installed = _pip(venv / "bin" / "python", "install", "-q", "-c", str(constraints), str(wheel))
    assert installed.returncode == 0, installed.stderr[-2000:]
    yield venv


def test_base_install_keeps_dify_pins_and_pip_check_is_clean(base_venv: Path) -> None:
    check = _pip(base_venv / "bin" / "python", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    frozen = _pip(base_venv / "bin" / "python", "freeze").stdout.lower().splitlines()
    for pin in DIFY_PINS:
        assert pin in frozen
    names = {line.split("==", 1)[0] for line in frozen}
    assert names.isdisjoint(CLI_ONLY), sorted(names & set(CLI_ONLY))


def _function_url(handler: BaseHTTPRequestHandler, body: bytes) -> None:
    sid = json.loads(body)["session_id"]
    chunk = {"model": "m", "prompt_messages": [], "delta": {"index": 0, "message": {"content": "hi"}}}
    write_chunked(handler, [wire.session_line(sid, "stream", chunk), wire.end_line(sid)])


def test_router_works_in_the_base_install(base_venv: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    pkg = app / "core" / "plugin" / "impl"
    pkg.mkdir(parents=True)
    for directory in (app / "core", app / "core" / "plugin", pkg):
        (directory / "__init__.py").touch()
    (pkg / "base.py").write_text(FAKE_DIFY_BASE)
    with running(_function_url) as server:
        routes = tmp_path / "routes.yaml"
        routes.write_text(
            "routes:\n  acme/mock:\n    deployments:\n"
            f"      - {{url: '{server.url}/', auth: iam, region: us-east-1}}\n"
        )
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "DIFY_LAMBDA_", "PYTHON"))
        }
        env |= {
            "DIFY_LAMBDA_ROUTES": str(routes),
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",  # a fake key: only the signature's shape is checked
            "AWS_SECRET_ACCESS_KEY": "fake-secret-for-tests",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        }
        out = subprocess.run(
            [str(base_venv / "bin" / "python"), "-c", textwrap.dedent(SCRIPT), str(app)],
            capture_output=True, text=True, timeout=120, check=False, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout)
        assert len(server.requests) == 1  # the hosted-quota call never reached the function URL
        assert server.requests[0]["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 ")
        # docs/dify-integration.md §5: `dify-lambda invoke --routes FILE` works without the cli extra.
        llm = {
            "provider": "mock",
            "model_type": "llm",
            "model": "m",
            "credentials": {},
            "prompt_messages": [],
        }
        cli = subprocess.run(
            [str(base_venv / "bin" / "dify-lambda"), "invoke", "--routes", str(routes),
             "--plugin", "acme/mock", "invoke_llm", "--data", json.dumps(llm)],
            capture_output=True, text=True, timeout=120, check=False, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr[-3000:]
        assert cli.stdout.split() == ["hi"]
    (line,) = result["routed"]
    assert json.loads(line)["data"]["delta"]["message"]["content"] == "hi"
    assert [json.loads(x)["data"] for x in result["hosted_quota"]] == [{"from": "daemon"}]
    assert result["pydantic"] == "2.9.2"
    assert result["ssm_client"] == "SSM"


def test_cli_without_the_extra_says_what_to_install(base_venv: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [str(base_venv / "bin" / "dify-lambda"), "ls", "--region", "us-east-1"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "dify-lambda: this command needs the cli extra: pip install 'dify-lambda[cli]'"
    ]
