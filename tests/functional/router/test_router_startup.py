"""Start-up integration in fresh interpreters: the ``.pth`` hook, and the router under gevent.

Both run in subprocesses: the hook must see a fresh import system, and gevent must patch a
process of its own (never the pytest process).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

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


HOSTILE_HOOK = """
    import json, site, sys
    sys.path.insert(0, {tests!r})
    from support.egress import Egress
    egress = Egress().__enter__()
    site.addsitedir({site_dir!r})
    sys.path.insert(0, {app!r})
    from core.plugin.impl.base import BasePluginClient      # the hook runs here, bounded
    print(hasattr(BasePluginClient._stream_request, "__dify_lambda_original__"))
    lines = list(BasePluginClient()._stream_request("POST", "plugin/t/dispatch/llm/invoke",
                 headers={{"X-Plugin-ID": "a/b"}}, data={{"data": {{}}}}))
    print(json.loads(lines[0])["data"]["from"])
    print(json.dumps([str(a) for a in egress.outside({port})]))
"""


class _Silent:
    """A TCP server that accepts connections and never answers (an SSM endpoint gone quiet)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.mark.parametrize(
    "kind", ["fifo", "dev-zero", "directory", "oversize", "deep-json", "deep-yaml", "silent-ssm"]
)
def test_hostile_route_locations_never_hold_startup(tmp_path: Path, kind: str) -> None:
    _tree(tmp_path / "app", "core.plugin.impl.base")
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "dify_lambda_router.pth").write_text(
        "import dify_lambda.router.autoinstall as _dl; _dl.enable()\n"
    )
    silent = _Silent()
    env = {
        # The bound is the subject only for the silent SSM endpoint; the others must fail on their
        # own, however busy the machine (make test runs several workers), never on the clock.
        "DIFY_LAMBDA_ROUTES_TIMEOUT": "2" if kind == "silent-ssm" else "120",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_SSM": f"http://127.0.0.1:{silent.port}",
    }
    expected = {
        "fifo": "is not a regular file",
        "dev-zero": "is not a regular file",
        "directory": "is not a regular file",
        "oversize": "route table is over 1048576 bytes",
        "deep-json": "route table nests too deeply",
        "deep-yaml": "route table nests too deeply",
        "silent-ssm": "route table not loaded within 2 s (DIFY_LAMBDA_ROUTES_TIMEOUT)",
    }[kind]
    if kind == "fifo":
        location = tmp_path / "routes.yaml"
        os.mkfifo(location)
    elif kind == "dev-zero":
        location = Path("/dev/zero")
    elif kind == "directory":
        location = tmp_path
    elif kind == "oversize":
        location = tmp_path / "routes.yaml"
        location.write_text("routes: {}\n" + "#" * (2 << 20))
    elif kind == "deep-json":
        location = tmp_path / "routes.json"
        location.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "deep-yaml":
        location = tmp_path / "routes.yaml"
        location.write_text("routes: " + "[" * 20_000 + "]" * 20_000 + "\n")
    env["DIFY_LAMBDA_ROUTES"] = "ssm:/dify-lambda/routes" if kind == "silent-ssm" else str(location)
    code = HOSTILE_HOOK.format(
        tests=str(Path(__file__).resolve().parents[2]),
        site_dir=str(site_dir),
        app=str(tmp_path / "app"),
        port=silent.port,
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120,
            cwd=tmp_path, env={**os.environ, **env}, check=False,
        )  # fmt: skip
    finally:
        silent.close()
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n", 2)[:2] == ["False", "daemon"]
    assert json.loads(out.stdout.splitlines()[2]) == [], "nothing left the machine"
    errors = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, out.stderr
    assert errors[0].startswith("dify-lambda router was not installed (")
    assert expected in errors[0]
    assert errors[0].endswith("); model calls keep going to the daemon")
