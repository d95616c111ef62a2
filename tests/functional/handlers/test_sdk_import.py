"""The two SDK import modes (DIFY_LAMBDA_SDK_IMPORT), in real plugin processes.

``lazy`` (the default; the conformance suite runs in it) must leave the process unpatched and the
SDK's server stack unimported, load plugins built on the OpenAI-compatible bases exactly like the
SDK does, and fall back to the full import only while nothing of the plugin is imported yet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import catalog
from support.handler_proc import PYTHON, ROOT, HandlerProcess, normalise_line, running_handler, split_lines
from support.sdk_server import SdkServer, start_sdk_server

from dify_lambda import wire
from dify_lambda.handlers.sdk_import import DEFERRED, MODE_ENV

# One xdist worker runs the module (--dist loadgroup): an SDK server and two handlers, once per run.
pytestmark = pytest.mark.xdist_group("test_sdk_import")

SUPPORT = Path(__file__).resolve().parents[2] / "support"
OAI = SUPPORT / "oaiplugin"
TINY = SUPPORT / "tinyplugin"

# Loads the plugin like the handler does and reports what the import left behind, as JSON.
PROBE = """
import json, socket, sys
from pathlib import Path
from dify_lambda.handlers.plugin import SdkPluginRuntime
try:
    runtime = SdkPluginRuntime.load(Path(sys.argv[1]))
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    raise SystemExit(0)
import gevent.socket
print(json.dumps({
    "plugin_id": runtime.plugin_id,
    "patched": socket.socket is gevent.socket.socket,
    "modules": sorted(m for m in sys.modules if m.startswith("dify_plugin") or m == "flask"),
}))
"""


def probe(plugin: Path, mode: str | None) -> tuple[dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIFY_LAMBDA_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if mode is not None:
        env[MODE_ENV] = mode
    proc = subprocess.run(
        [str(PYTHON), "-c", PROBE, str(plugin)],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def _deferred(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == d or m.startswith(f"{d}.") for d in DEFERRED)]


def test_lazy_is_the_default_and_skips_the_patch_and_the_server_stack() -> None:
    state, _ = probe(catalog.PLUGINS_DIR / "mockgpt", None)
    assert state["plugin_id"].endswith("/mockgpt")
    assert state["patched"] is False
    assert _deferred(state["modules"]) == []
    assert "flask" not in state["modules"]
    assert "dify_plugin._gevent" not in state["modules"]


def test_full_mode_runs_the_sdk_init() -> None:
    state, _ = probe(catalog.PLUGINS_DIR / "mockgpt", "full")
    assert state["patched"] is True
    assert "dify_plugin._gevent" in state["modules"]
    assert "dify_plugin.plugin" in state["modules"]


def test_a_bad_mode_is_named() -> None:
    state, _ = probe(catalog.PLUGINS_DIR / "mockgpt", "eager")
    assert state["error"] == "HandlerConfigError"
    assert MODE_ENV in state["message"] and "lazy|full" in state["message"]


def test_oaicompat_bases_are_imported_on_first_use() -> None:
    state, _ = probe(OAI, "lazy")
    assert state["plugin_id"] == "dify-lambda-tests/oaicompat"
    assert state["patched"] is False
    assert "dify_plugin.interfaces.model.openai_compatible.llm" in state["modules"]
    assert "dify_plugin.plugin" not in state["modules"]


# --- a plugin that only works gevent-patched: the fallback ----------------------------------------

NEEDS_PATCH = (
    "import socket\nimport gevent.socket\n"
    "if socket.socket is not gevent.socket.socket:\n"
    "    raise ImportError('this module needs the gevent-patched socket')\n"
)


def _patched_copy(tmp_path: Path, module: str, *, after_helper: bool = False) -> Path:
    root = tmp_path / "tiny"
    shutil.copytree(TINY, root, ignore=shutil.ignore_patterns("__pycache__"))
    target = root / module
    prefix = NEEDS_PATCH
    if after_helper:
        # A plugin module that imports fine and stays in sys.modules before the failing one.
        (root / "models" / "helper.py").write_text("HELPER = True\n")
        prefix = "import models.helper\n" + prefix
    target.write_text(prefix + target.read_text())
    return root


def test_lazy_falls_back_to_full_when_nothing_of_the_plugin_was_imported(tmp_path: Path) -> None:
    # The provider module is the first plugin module registration imports.
    state, stderr = probe(_patched_copy(tmp_path, "provider/tiny.py"), "lazy")
    assert state["plugin_id"] == "dify-lambda-tests/tiny"
    assert state["patched"] is True
    assert f"{MODE_ENV}=lazy" in stderr and "retrying with the full import" in stderr


def test_lazy_fails_clearly_when_the_plugin_was_half_imported(tmp_path: Path) -> None:
    state, _ = probe(_patched_copy(tmp_path, "models/llm/llm.py", after_helper=True), "lazy")
    assert state["error"] == "PluginLoadError"
    assert f"{MODE_ENV}=lazy" in state["message"]
    assert f"set {MODE_ENV}=full" in state["message"]
    assert "models.helper" in state["message"]


def test_full_mode_loads_the_plugin_that_needs_the_patch(tmp_path: Path) -> None:
    state, _ = probe(_patched_copy(tmp_path, "models/llm/llm.py", after_helper=True), "full")
    assert state["plugin_id"] == "dify-lambda-tests/tiny"
    assert state["patched"] is True


# --- the OpenAI-compatible fixture answers like the SDK, in both modes ------------------------------


@pytest.fixture(scope="module")
def oai_servers() -> Iterator[tuple[SdkServer, HandlerProcess, HandlerProcess]]:
    with (
        start_sdk_server(OAI) as sdk,
        running_handler(OAI, {MODE_ENV: "lazy"}) as lazy,
        running_handler(OAI, {MODE_ENV: "full"}) as full,
    ):
        yield sdk, lazy, full


def _schema_request(model_type: str) -> dict[str, Any]:
    data = {
        "provider": "oaicompat",
        "model_type": model_type,
        "model": "fixture-model",
        "credentials": {"endpoint_url": "http://127.0.0.1:9/v1", "mode": "chat", "context_size": "8192"},
    }
    return wire.build_envelope("get_ai_model_schemas", data, user_id="u", session_id=f"oai-{model_type}")


def _lines(url: str, envelope: dict[str, Any]) -> list[bytes]:
    response = httpx.post(
        f"{url}/invoke",
        params={"action": envelope["data"]["action"]},
        content=wire.encode_envelope(envelope),
        headers={"Content-Type": "application/json", wire.SESSION_ID_HEADER: envelope["session_id"]},
        timeout=60.0,
    )
    assert response.status_code == 200, response.text
    return [normalise_line(line) for line in split_lines(response.content)]


@pytest.mark.parametrize("model_type", ["llm", "text-embedding"])
def test_oaicompat_plugin_answers_like_the_sdk(
    model_type: str, oai_servers: tuple[SdkServer, HandlerProcess, HandlerProcess]
) -> None:
    sdk, lazy, full = oai_servers
    envelope = _schema_request(model_type)
    expected = _lines(sdk.url, envelope)
    first = json.loads(expected[0])["data"]
    assert first["type"] == "stream" and first["data"]["model_schema"] is not None
    assert _lines(lazy.url, envelope) == expected
    assert _lines(full.url, envelope) == expected


# --- backwards invocation (httpx to the daemon) works unpatched -------------------------------------

STORED = b"value kept by the daemon"
STORAGE_HOOK = """        text = _text(prompt_messages)
        if text.startswith("storage:"):
            from dify_plugin import get_current_session

            text = get_current_session().storage.get(text[len("storage:") :]).decode()
"""


def _find(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        if key in value:
            return value[key]
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found = _find(item, key)
            if found is not None:
                return found
    return None


class FakeDaemon(BaseHTTPRequestHandler):
    """Answers a storage ``get`` backwards invocation as the daemon does (one response, then end)."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/backwards-invocation/transaction"
        request_id = _find(body, "backwards_request_id")
        assert _find(body, "opt") == "get"
        sid = self.headers["Dify-Plugin-Session-ID"]

        def line(event: str, data: dict[str, Any] | None) -> bytes:
            inner = {"backwards_request_id": request_id, "event": event, "message": "", "data": data}
            return (
                json.dumps({"session_id": sid, "event": "backwards_response", "data": inner}).encode() + b"\n"
            )

        payload = line("response", {"data": STORED.hex()}) + line("end", None)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def daemon_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeDaemon)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_backwards_invocation_answers_like_the_sdk(tmp_path: Path, daemon_url: str) -> None:
    root = tmp_path / "tiny"
    shutil.copytree(TINY, root, ignore=shutil.ignore_patterns("__pycache__"))
    llm = root / "models" / "llm" / "llm.py"
    source = llm.read_text()
    assert "        text = _text(prompt_messages)\n" in source
    llm.write_text(source.replace("        text = _text(prompt_messages)\n", STORAGE_HOOK, 1))
    data = {
        "provider": "tiny",
        "model_type": "llm",
        "model": "tiny-llm",
        "credentials": {"api_key": "tiny-key"},
        "prompt_messages": [{"role": "user", "content": "storage:greeting"}],
        "model_parameters": {},
        "stop": None,
        "tools": None,
        "stream": False,
    }
    envelope = wire.build_envelope("invoke_llm", data, user_id="u", session_id="backwards-1")
    env = {"DIFY_PLUGIN_DAEMON_URL": daemon_url}
    with (
        start_sdk_server(root, env=env) as sdk,
        running_handler(root, {**env, MODE_ENV: "lazy"}) as lazy,
        running_handler(root, {**env, MODE_ENV: "full"}) as full,
    ):
        expected = _lines(sdk.url, envelope)
        assert STORED.decode() in json.loads(expected[0])["data"]["data"]["delta"]["message"]["content"]
        assert _lines(lazy.url, envelope) == expected
        assert _lines(full.url, envelope) == expected
