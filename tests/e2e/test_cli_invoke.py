"""``dify-lambda invoke`` run as a user would, against the SDK's own serverless server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.catalog import GOOD_CREDENTIALS, PLUGIN_IDS
from support.sdk_server import PLUGINS_DIR, SdkServer, start_sdk_server

# One xdist worker runs the module (--dist loadgroup): SDK servers, once per run.
pytestmark = pytest.mark.xdist_group("test_cli_invoke")

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / ".venv" / "bin" / "dify-lambda"
if not CLI.exists():
    CLI = Path(sys.executable).with_name("dify-lambda")

LLM = {
    "provider": "mockgpt", "model_type": "llm", "model": "mockgpt-1", "credentials": GOOD_CREDENTIALS,
    "prompt_messages": [{"role": "user", "content": "echo:alpha beta gamma"}],
    "model_parameters": {"word_delay": 0}, "stop": None, "tools": None, "stream": True,
}  # fmt: skip


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *map(str, args)], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="module")
def gpt() -> Iterator[SdkServer]:
    with start_sdk_server(PLUGINS_DIR / "mockgpt") as server:
        yield server


@pytest.fixture(scope="module")
def lab() -> Iterator[SdkServer]:
    with start_sdk_server(PLUGINS_DIR / "mocklab") as server:
        yield server


def test_llm_prints_text_and_usage(gpt: SdkServer, tmp_path: Path) -> None:
    (tmp_path / "llm.json").write_text(json.dumps(LLM))
    result = run("invoke", gpt.url, "invoke_llm", "--data", f"@{tmp_path / 'llm.json'}", "--auth", "none")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["alpha", "beta", "gamma"]
    assert "usage: prompt_tokens=" in result.stderr and "total_tokens=" in result.stderr


def test_plugin_error_is_one_line_and_exit_1(gpt: SdkServer) -> None:
    data = {**LLM, "prompt_messages": [{"role": "user", "content": "raise:ratelimit"}]}
    result = run("invoke", gpt.url, "invoke_llm", "--data", json.dumps(data), "--auth", "none")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dify-lambda: plugin error: InvokeRateLimitError: ")


def test_routes_mode_prints_json(lab: SdkServer, tmp_path: Path) -> None:
    pid = PLUGIN_IDS["mocklab"]
    routes = {
        "routes": {pid: {"deployments": [{"url": lab.url, "auth": "secret", "secret_env": "LAB_SECRET"}]}}
    }
    (tmp_path / "routes.json").write_text(json.dumps(routes))
    data = {"provider": "mocklab", "model_type": "text-embedding", "model": "mocklab-embed-64",
            "credentials": GOOD_CREDENTIALS, "texts": ["a", "b"], "input_type": "document"}  # fmt: skip
    result = run(
        "invoke", "--routes", tmp_path / "routes.json", "--plugin", pid, "get_text_embedding_num_tokens",
        "--data", json.dumps(data), env={"LAB_SECRET": "unused-by-the-sdk-server"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert isinstance(payload["num_tokens"], list) and len(payload["num_tokens"]) == 2


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["invoke", "http://127.0.0.1:9/", "invoke_llm"], "--data"),
        (["invoke", "http://127.0.0.1:9/", "bogus_action", "--data", "{}"], "unknown ACTION 'bogus_action'"),
        (["invoke", "invoke_llm", "--data", "{}"], "give a function URL, or --routes FILE with --plugin ID"),
        (["invoke", "http://127.0.0.1:9/", "invoke_llm", "--data", "[1]"], "must be a JSON object"),
        (["invoke", "http://127.0.0.1:9/", "invoke_llm", "--data", "{nope"], "invalid JSON at line 1"),
        (["invoke", "http://127.0.0.1:9/", "invoke_llm", "--data", "{}", "--auth", "secret"], "--secret-env"),
        (
            ["invoke", "http://127.0.0.1:9/", "invoke_llm", "--data", "{}", "--auth", "basic"],
            "invalid choice",
        ),
    ],
)
def test_bad_flags_exit_2(args: list[str], fragment: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert fragment in result.stderr


def test_bad_route_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text("routes:\n  a/b:\n    deployments:\n      - url: ftp://x\n")
    result = run(
        "invoke", "--routes", tmp_path / "routes.yaml", "--plugin", "a/b", "invoke_llm", "--data", "{}"
    )
    assert result.returncode == 2
    assert "routes.yaml: routes['a/b'].deployments[0].url:" in result.stderr


def test_loopback_url_ending_in_invoke_with_an_envelope_needs_no_auth_and_masks_credentials(
    gpt: SdkServer, tmp_path: Path
) -> None:
    envelope = {
        "session_id": "e2e",
        "event": "request",
        "data": {
            "user_id": "u-1",
            "type": "model",
            "action": "validate_provider_credentials",
            "provider": "mockgpt",
            "credentials": GOOD_CREDENTIALS,
        },
    }
    (tmp_path / "envelope.json").write_text(json.dumps(envelope))
    url = gpt.url.rstrip("/") + "/invoke"
    # No AWS credentials at all: a loopback URL is called unsigned.
    no_aws = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_CONFIG_FILE": str(tmp_path / "none")}
    result = run(
        "invoke", url, "validate_provider_credentials", "--data", f"@{tmp_path / 'envelope.json'}", env=no_aws
    )
    assert result.returncode == 0, result.stderr
    assert "IAM is not used" in result.stderr
    payload = json.loads(result.stdout)
    assert payload["result"] is True
    secret = GOOD_CREDENTIALS["api_key"]
    assert secret not in result.stdout
    assert payload["credentials"]["api_key"] == "********"

    shown = run(
        "invoke",
        url,
        "validate_provider_credentials",
        "--data",
        f"@{tmp_path / 'envelope.json'}",
        "--show-secrets",
        env=no_aws,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["credentials"] == GOOD_CREDENTIALS
