"""Start-up integration in fresh interpreters: the ``.pth`` hook, and the router under gevent.

Both run in subprocesses: the hook must see a fresh import system, and gevent must patch a
process of its own (never the pytest process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

FAKE_BASE = """
class BasePluginClient:
    def _stream_request(self, method, path, params=None, headers=None, data=None, files=None):
        yield '{"code":0,"message":"success","data":{"from":"daemon"}}'
"""


def _tree(root: Path, module: str) -> None:
    parts = module.split(".")
    for i in range(1, len(parts)):
        pkg = root.joinpath(*parts[:i])
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").touch()
    root.joinpath(*parts[:-1], parts[-1] + ".py").write_text(
        FAKE_BASE.replace("BasePluginClient", "BasePluginManager") if "manager" in module else FAKE_BASE
    )


def _run(code: str, env: dict[str, str], cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, check=False, cwd=cwd, env={**os.environ, **env},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_pth_hook_installs_when_dify_imports_its_client(tmp_path: Path) -> None:
    _tree(tmp_path / "app", "core.plugin.impl.base")
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  a/b:\n    deployments:\n      - {url: 'http://127.0.0.1:9/', auth: none}\n")
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "dify_lambda_router.pth").write_text(
        "import dify_lambda.router.autoinstall as _dl; _dl.enable()\n"
    )
    code = f"""
        import site, sys
        site.addsitedir({str(site_dir)!r})          # what the venv does at start-up
        print('httpx' in sys.modules)              # nothing heavy imported by the hook itself
        sys.path.insert(0, {str(tmp_path / "app")!r})
        from core.plugin.impl.base import BasePluginClient
        print(hasattr(BasePluginClient._stream_request, "__dify_lambda_original__"))
        lines = list(BasePluginClient()._stream_request("POST", "plugin/t/dispatch/llm/invoke",
                     headers={{"X-Plugin-ID": "other/plugin"}}, data={{"data": {{}}}}))
        print(lines[0])
    """
    out = _run(code, {"DIFY_LAMBDA_ROUTES": str(routes)}, tmp_path).splitlines()
    assert out[0] == "False"
    assert out[1] == "True"
    assert json.loads(out[2])["data"] == {"from": "daemon"}


def test_hook_is_a_no_op_without_routes_and_never_breaks_startup(tmp_path: Path) -> None:
    _tree(tmp_path / "app", "core.plugin.manager.base")
    code = f"""
        import sys
        import dify_lambda.router.autoinstall as hook
        print(hook.enable())
        sys.path.insert(0, {str(tmp_path / "app")!r})
        import os
        os.environ["DIFY_LAMBDA_ROUTES"] = {str(tmp_path / "missing.yaml")!r}
        print(hook.enable())
        from core.plugin.manager.base import BasePluginManager   # install fails: logged, not raised
        print(hasattr(BasePluginManager._stream_request, "__dify_lambda_original__"))
    """
    env = {k: v for k, v in os.environ.items() if k != "DIFY_LAMBDA_ROUTES"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, env=env,
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "False"]
    assert "missing.yaml" in out.stderr and "cannot read route table" in out.stderr


GEVENT_SCRIPT = """
from gevent import monkey
monkey.patch_all()

import json, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import gevent
from dify_lambda import wire
from dify_lambda.router import Router, Timeouts, StreamEvent
from dify_lambda.router.errors import IdleTimeoutError
from dify_lambda.router.routes import parse_route_table

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        env = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        sid, slow = env["session_id"], env["data"].get("slow", False)
        self.send_response(200); self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
        for i in range(5):
            if slow and i == 1:
                time.sleep(3)
            line = wire.session_line(sid, "stream", {"i": i})
            self.wfile.write(b"%x\\r\\n%s\\r\\n" % (len(line), line)); self.wfile.flush()
            time.sleep(0.01)
        end = wire.end_line(sid)
        self.wfile.write(b"%x\\r\\n%s\\r\\n0\\r\\n\\r\\n" % (len(end), end)); self.wfile.flush()

server = ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}"
table = parse_route_table({"routes": {"a/b": {"deployments": [{"url": url, "auth": "none"}]}}}, source="t")
router = Router(table, timeouts=Timeouts(first_event=10, idle=1.0, total=30))

def call(slow):
    try:
        got = [e.data["i"] for e in router.invoke("a/b", "invoke_llm", {"slow": slow}, user_id="u")
               if isinstance(e, StreamEvent)]
        return ("ok", got)
    except IdleTimeoutError as exc:
        return ("idle", exc.delivered)

jobs = [gevent.spawn(call, i == 0) for i in range(20)]
gevent.joinall(jobs, timeout=60)
print(json.dumps([j.value for j in jobs]))
"""


def test_router_under_gevent_greenlets(tmp_path: Path) -> None:
    out = _run(GEVENT_SCRIPT, {}, tmp_path)
    results = json.loads(out.splitlines()[-1])
    assert results[0] == ["idle", 1]  # the slow stream times out on its own...
    assert all(r == ["ok", [0, 1, 2, 3, 4]] for r in results[1:])  # ...the other 19 are unaffected
