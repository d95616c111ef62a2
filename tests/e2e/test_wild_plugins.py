"""Plugins shaped like the ones users have, end to end, each against its own SDK release.

``tests/support/wild/mockgpt06`` pins ``dify_plugin>=0.4.0,<0.7.0`` in requirements.txt, as the
article's MockGPT does (resolves to 0.6.2); ``uvlock09`` ships only pyproject.toml + uv.lock pinning
0.9.0, as the official plugins do. Each is packaged, built (SDK check and smoke init included) and
served with the CLI, then the same requests go to ``dify-lambda serve`` and to the plugin's own SDK
release running its serverless server: the event lines must be equal (``usage.latency`` and
``args.traceback`` aside). The streamed LLM answer is also taken through the router, as the Dify host
would, and must carry the same chunks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.handler_proc import normalise_line, split_lines
from support.sdk_matrix import sdk_python
from support.sdk_server import start_sdk_server

from dify_lambda import wire
from dify_lambda.router import Router
from dify_lambda.router.routes import RouteTable

ROOT = Path(__file__).resolve().parents[2]
WILD = ROOT / "tests" / "support" / "wild"
CLI = Path(sys.executable).parent / "dify-lambda"
PLUGINS = {"mockgpt06": "0.6.2", "uvlock09": "0.9.0"}
PROMPT = [{"role": "user", "content": "stream these five words"}]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(pytestconfig: pytest.Config) -> Path:
    env = os.environ.get("DIFY_LAMBDA_TEST_CACHE")
    return Path(env) if env else Path(pytestconfig.cache.mkdir("dify-lambda-build"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=900, check=False)


@contextmanager
def served(build_dir: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [str(CLI), "serve", str(build_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("serving ") and " at " in line, proc.stderr.read() if proc.stderr else line
        yield line.split(" at ", 1)[1].split()[0]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def requests_for(name: str) -> list[tuple[str, dict[str, Any]]]:
    llm = {"provider": name, "model_type": "llm", "model": f"{name}-1", "credentials": {"api_key": "k"}}
    return [
        ("invoke_llm", {**llm, "prompt_messages": PROMPT, "model_parameters": {}, "stop": None,
                        "tools": None, "stream": True}),
        ("invoke_llm", {**llm, "prompt_messages": PROMPT, "model_parameters": {}, "stop": None,
                        "tools": None, "stream": False}),
        ("get_llm_num_tokens", {**llm, "prompt_messages": PROMPT, "tools": []}),
        ("get_ai_model_schemas", llm),
        ("validate_provider_credentials", {"provider": name, "credentials": {"api_key": "k"}}),
        ("invoke_text_embedding", {**llm, "model_type": "text-embedding", "texts": ["a"],
                                   "input_type": "document"}),
    ]  # fmt: skip


def post(url: str, envelope: dict[str, Any]) -> tuple[int, list[bytes]]:
    response = httpx.post(
        url.rstrip("/") + wire.INVOKE_PATH,
        params={"action": envelope["data"]["action"]},
        content=wire.encode_envelope(envelope),
        headers={"Content-Type": "application/json", wire.SESSION_ID_HEADER: envelope["session_id"]},
        timeout=120,
    )
    return response.status_code, [normalise_line(line) for line in split_lines(response.content)]


def zero_latency(chunk: dict[str, Any]) -> dict[str, Any]:
    usage = (chunk.get("delta") or {}).get("usage")
    if isinstance(usage, dict):
        usage["latency"] = 0
    return chunk


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_wild_plugin_runs_like_its_own_sdk(name: str, cache_dir: Path, tmp_path: Path) -> None:
    pinned = PLUGINS[name]
    package = tmp_path / f"{name}.difypkg"
    packed = run("package", str(WILD / name), "-o", str(package))
    assert packed.returncode == 0, packed.stderr
    out = tmp_path / "build"
    built = run(
        "build", str(package), "-o", str(out), "--arch", "x86_64", "--cache-dir", str(cache_dir), "-q"
    )
    assert built.returncode == 0, built.stderr
    report = json.loads((out / "build-report.json").read_text())
    assert report["sdk_version"] == pinned
    assert report["smoke"]["status"] == "passed"

    with served(out) as ours, start_sdk_server(WILD / name, python=sdk_python(pinned)) as sdk:
        for index, (action, data) in enumerate(requests_for(name)):
            envelope = wire.build_envelope(action, data, user_id="u", session_id=f"wild-{index}")
            expected = post(sdk.url, envelope)
            assert post(ours, envelope) == expected, action
            assert expected[1][-1].endswith(b'"type":"end","data":{}}}'), action

        # Through the router, as the Dify host calls it: the same chunks as the SDK streamed.
        stream = wire.build_envelope("invoke_llm", requests_for(name)[0][1], user_id="u", session_id="r")
        sdk_chunks = [
            zero_latency(json.loads(line)["data"]["data"])
            for line in post(sdk.url, stream)[1]
            if json.loads(line)["data"]["type"] == "stream"
        ]
        plugin_id = f"dify-lambda-tests/{name}"
        table = RouteTable.model_validate(
            {"routes": {plugin_id: {"deployments": [{"url": ours, "auth": "none"}]}}}
        )
        router = Router(table)
        try:
            chunks = router.invoke_llm(
                tenant_id="t",
                user_id="u",
                plugin_id=plugin_id,
                provider=name,
                model=f"{name}-1",
                credentials={"api_key": "k"},
                prompt_messages=PROMPT,
            )
            assert [zero_latency(c) for c in chunks] == sdk_chunks
        finally:
            router.close()
    assert len(sdk_chunks) == len(PROMPT[0]["content"].split())
