"""Build-time proof on plugins shaped like the ones in the wild (tests/support/wild).

Each is built for real (wheels from the index, shared cache), then smoke-initialised by the builder
itself; the tiktoken plugin is also run unpacked under a plain Runtime API loop with no network.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.fake_runtime_api import FakeRuntimeApi

from dify_lambda import wire
from dify_lambda.handlers.errors import UnsupportedSdkError
from dify_lambda.handlers.plugin import check_sdk_version
from dify_lambda.packaging.build import BuildOptions, BuildResult, build
from dify_lambda.packaging.build.smoke import SdkRangeError, SmokeInitError
from dify_lambda.packaging.build.tiktoken_data import ENCODINGS
from dify_lambda.packaging.interpreters import find_interpreter

ROOT = Path(__file__).resolve().parents[3]
WILD = ROOT / "tests" / "support" / "wild"
EVENTS = ROOT / "events"
PROMPT = "Tiktoken counts these words: naïve café, 12345 and ünïcödé!"

# One xdist worker runs the module (--dist loadgroup): its builds, once per run.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_build_proof")]


@pytest.fixture(scope="module")
def wild(build_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], BuildResult]:
    """``wild(name)``: this module's build of ``tests/support/wild/<name>`` for x86_64/3.12 (once each)."""
    results: dict[str, BuildResult] = {}

    def get(name: str) -> BuildResult:
        if name not in results:
            out = tmp_path_factory.mktemp(name)
            results[name] = build(
                WILD / name, out, BuildOptions(arch="x86_64", python="3.12", cache_dir=build_cache)
            )
        return results[name]

    return get


def _in_range(version: str) -> bool:
    try:
        check_sdk_version(version)
    except UnsupportedSdkError:
        return False
    return True


@pytest.mark.parametrize(("name", "pinned"), [("uvlock09", "0.9.0"), ("mockgpt06", "0.6.")])
def test_sdk_pins_build_or_stop_in_one_line(
    name: str, pinned: str, build_cache: Path, tmp_path: Path
) -> None:
    # Accepted exactly when the handler's own range (handlers.plugin) accepts the pinned SDK.
    try:
        result = build(
            WILD / name, tmp_path, BuildOptions(arch="x86_64", python="3.12", cache_dir=build_cache)
        )
    except SdkRangeError as exc:
        text = str(exc)
        assert "\n" not in text
        assert text.startswith(f"build:CheckSdk - dify_plugin {pinned}")
        version = text.split()[2]
        assert not _in_range(version)
        assert not (tmp_path / "artifact.zip").exists()
        return
    report = result.report
    assert report.sdk_version.startswith(pinned) and _in_range(report.sdk_version)
    assert report.smoke["status"] == "passed"
    assert report.smoke["providers"] == [{"name": name, "models": [f"llm/{name}-1"]}]
    if name == "uvlock09":
        assert report.requirements_source == "uv.lock"


def test_heavy_native_dependency_loads(wild: Callable[[str], BuildResult]) -> None:
    report = wild("numpyheavy").report
    assert any(d.name == "numpy" for d in report.dependencies)
    assert report.smoke["status"] == "passed"
    assert report.smoke["providers"] == [{"name": "numpyheavy", "models": ["llm/numpyheavy-1"]}]


def test_provider_glob_matching_nothing(build_cache: Path, tmp_path: Path) -> None:
    # The SDK loads such a provider (the glob lists no model); the reader may still refuse it.
    from dify_lambda.errors import PackageError

    try:
        result = build(WILD / "emptyglob", tmp_path, BuildOptions(arch="x86_64", cache_dir=build_cache))
    except PackageError as exc:
        assert "\n" not in str(exc)
        assert "models/rerank/*.yaml" in str(exc)
        return
    assert result.report.smoke["providers"] == [{"name": "emptyglob", "models": ["llm/emptyglob-1"]}]


def test_smoke_init_reports_the_plugins_own_error(build_cache: Path, tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    shutil.copytree(WILD / "numpyheavy", plugin)
    llm = plugin / "models" / "llm" / "llm.py"
    llm.write_text("import numpy_is_misspelled\n" + llm.read_text())
    options = BuildOptions(arch="x86_64", python="3.12", cache_dir=build_cache)
    with pytest.raises(SmokeInitError) as info:
        build(plugin, tmp_path / "out", options)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("build:SmokeInit - the plugin cannot load from the artifact: ")
    assert "numpy_is_misspelled" in text
    assert not (tmp_path / "out" / "artifact.zip").exists()
    # --no-smoke builds it anyway, and says so.
    result = build(plugin, tmp_path / "unchecked", dataclasses.replace(options, smoke=False))
    assert result.artifact.is_file()
    assert result.report.smoke["status"] == "skipped"
    assert "smoke init skipped: --no-smoke" in result.report.notes


def test_smoke_init_runs_the_plugin_without_network(build_cache: Path, tmp_path: Path) -> None:
    # A plugin whose import phones home (a loopback server stands in for the internet and the
    # credentials endpoint): in the smoke init it has no network, so nothing arrives and the
    # plugin, which raises if its request got through, still loads.
    hits: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    plugin = tmp_path / "plugin"
    shutil.copytree(WILD / "numpyheavy", plugin)
    llm = plugin / "models" / "llm" / "llm.py"
    phone_home = (
        "import urllib.request as _u\n"
        "try:\n"
        f"    _u.urlopen('http://127.0.0.1:{server.server_address[1]}/canary', timeout=5)\n"
        "except OSError:\n"
        "    pass\n"
        "else:\n"
        "    raise RuntimeError('reached the network during the smoke init')\n"
    )
    llm.write_text(phone_home + llm.read_text())
    try:
        result = build(
            plugin, tmp_path / "out", BuildOptions(arch="x86_64", python="3.12", cache_dir=build_cache)
        )
    finally:
        server.shutdown()
        server.server_close()
    assert hits == []
    assert result.report.smoke["status"] == "passed", result.report.smoke


def test_foreign_architecture_is_skipped_with_a_note(built: Callable[[str, str], BuildResult]) -> None:
    report = built("mockgpt", "arm64").report
    assert report.smoke["status"] == "skipped"
    assert report.smoke["note"] == "smoke init skipped: this host is x86_64, the artifact is arm64"
    assert report.smoke["note"] in report.notes


def test_smoke_lists_providers_and_models(built: Callable[[str, str], BuildResult]) -> None:
    report = built("mockgpt", "x86_64").report
    assert report.smoke["status"] == "passed"
    assert report.smoke["providers"] == [
        # mockgpt-1-polling is a customizable model (credentials), not a predefined one
        {"name": "mockgpt", "models": ["llm/mockgpt-1"]}
    ]
    doc = json.loads(built("mockgpt", "x86_64").report_path.read_text())
    assert doc["smoke"] == report.smoke


def _count_with_tiktoken(cache: Path, text: str) -> int:
    """The gpt2 token count tiktoken itself gives (in a subprocess: the test process stays clean)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tiktoken; print(len(tiktoken.get_encoding('gpt2').encode(sys.argv[1])))",
            text,
        ],
        env={**os.environ, "TIKTOKEN_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return int(out.stdout)


def _num_tokens_event(text: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "invoke_llm_stream.json").read_text())
    envelope = wire.build_envelope(
        "get_llm_num_tokens",
        {
            "provider": "tiktokencount",
            "model_type": "llm",
            "model": "tiktokencount-1",
            "credentials": {},
            "prompt_messages": [{"role": "user", "content": text}],
            "tools": [],
        },
        user_id="u1",
        session_id="s-count",
    )
    event["body"] = wire.encode_envelope(envelope).decode()
    event["rawQueryString"] = "action=get_llm_num_tokens"
    event["queryStringParameters"] = {"action": "get_llm_num_tokens"}
    return event


def test_tiktoken_counts_offline_from_the_artifact(
    wild: Callable[[str], BuildResult], tiktoken_gpt2: Path, tmp_path: Path
) -> None:
    result = wild("tiktokencount")
    report = result.report
    assert report.tiktoken["status"] == "shipped"
    assert report.tiktoken["encodings"] == ["gpt2"]
    assert report.tiktoken["dir"] == "/var/task/tiktoken_cache"
    assert (
        report.sizes.data
        == report.tiktoken["bytes"]
        == sum((tiktoken_gpt2 / item.cache_name).stat().st_size for item in ENCODINGS["gpt2"])
    )
    template = result.template.read_text()
    assert "TIKTOKEN_CACHE_DIR: /var/task/tiktoken_cache" in template
    python = find_interpreter("3.12")
    assert python is not None
    root = tmp_path / "task"
    with zipfile.ZipFile(result.artifact) as zf:
        zf.extractall(root)
        assert {n for n in zf.namelist() if n.startswith("tiktoken_cache/")} == {
            f"tiktoken_cache/{item.cache_name}" for item in ENCODINGS["gpt2"]
        }
    wrapper = root / "dify_lambda" / "handlers" / "exec_wrapper.sh"
    wrapper.chmod(0o755)
    api = FakeRuntimeApi()
    blackhole = "http://127.0.0.1:9"  # any download attempt fails: the files must come from the artifact
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "LAMBDA_TASK_ROOT": str(root),
        "PYTHONPATH": str(root),
        "DIFY_LAMBDA_PLUGIN_ROOT": str(root / "plugin"),
        "TIKTOKEN_CACHE_DIR": str(root / "tiktoken_cache"),
        "INSTALL_METHOD": "serverless",
        "AWS_REGION": "us-east-1",
        "HTTPS_PROXY": blackhole,
        "HTTP_PROXY": blackhole,
        "https_proxy": blackhole,
        "http_proxy": blackhole,
        "TMPDIR": str(tmp_path),
    }
    # The managed runtime's own command line: the wrapper runs its interpreter.
    proc = subprocess.Popen([str(wrapper), str(python), "/var/runtime/bootstrap.py"], env=env, cwd=root)
    try:
        inv = api.enqueue(_num_tokens_event(PROMPT))
        assert inv.finished.wait(120)
        assert api.violations == []
        lines = [json.loads(line) for line in inv.body.split(b"\n\n") if line.strip()]
    finally:
        proc.kill()
        proc.wait()
        api.close()
    expected = _count_with_tiktoken(tiktoken_gpt2, PROMPT)
    assert expected != len(PROMPT.split())  # a real BPE count, not a word count
    assert lines[0]["event"] == "session"
    assert lines[0]["data"]["type"] == "stream"
    assert lines[0]["data"]["data"] == {"num_tokens": expected}
    assert lines[-1]["data"]["type"] == "end"
