"""Hostile requirements against ``dify-lambda build``: refused in one line, nothing runs, nothing leaves.

Every case runs the CLI in a subprocess whose only package index is a loopback server the test
starts (it serves an sdist whose build code would create a canary file) and whose proxies point at
a second loopback server that records any request: a request there means something tried to leave
the machine. pip's configuration files are switched off (``PIP_CONFIG_FILE=/dev/null``) and uv's
user configuration points at an empty directory, so the operator's choices are the flags alone.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.pkgfactory import plugin_files, write_tree

CLI = Path(sys.executable).parent / "dify-lambda"
SECRET = "hostile-corpus-secret-value"


@dataclass
class Recorder:
    """A loopback HTTP server that records every request; ``files`` are served, the rest is 404/502."""

    files: dict[str, bytes] = field(default_factory=dict)
    status: int = 404
    requests: list[str] = field(default_factory=list)
    port: int = 0

    def start(self) -> ThreadingHTTPServer:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                recorder.requests.append(f"{self.command} {self.path}")
                body = recorder.files.get(self.path)
                self.send_response(200 if body is not None else recorder.status)
                kind = "text/html" if self.path.endswith("/") else "application/octet-stream"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_CONNECT = _answer

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def evil_sdist(canary: Path) -> bytes:
    """An sdist whose in-tree build backend (and setup.py) create ``canary`` when anything builds it."""
    touch = f"open({str(canary)!r}, 'w').close()\n"
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "evilbackend"\n'
        'backend-path = ["."]\n[project]\nname = "evilpkg"\nversion = "1.0"\n',
        "evilbackend.py": touch,
        "setup.py": touch,
        "PKG-INFO": "Metadata-Version: 2.1\nName: evilpkg\nVersion: 1.0\n",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"evilpkg-1.0/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class World:
    index: Recorder
    outside: Recorder
    canary: Path
    env: dict[str, str]

    @property
    def index_url(self) -> str:
        return f"http://127.0.0.1:{self.index.port}/simple"

    def fill(self, text: bytes) -> bytes:
        text = text.replace(b"{index}", str(self.index.port).encode())
        return text.replace(b"{outside}", str(self.outside.port).encode())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    canary = tmp_path / "canary-build-ran"
    sdist = evil_sdist(canary)
    index = Recorder(
        files={
            "/simple/evilpkg/": b'<html><body><a href="/files/evilpkg-1.0.tar.gz">evilpkg-1.0.tar.gz</a>'
            b"</body></html>",
            "/files/evilpkg-1.0.tar.gz": sdist,
        }
    )
    outside = Recorder(status=502)
    servers = [index.start(), outside.start()]
    proxy = f"http://127.0.0.1:{outside.port}"
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    env = {
        **os.environ,
        "PIP_CONFIG_FILE": os.devnull,
        "XDG_CONFIG_HOME": str(xdg),
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[var] = proxy
    for var in [k for k in env if k.startswith(("UV_", "PIP_")) and k != "PIP_CONFIG_FILE"]:
        del env[var]
    try:
        yield World(index, outside, canary, env)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, bytes | None]
    fragment: str
    flags: tuple[str, ...] = ()
    #: Run the CLI with the plugin directory as the working directory (the operator stands in it).
    cwd_in_package: bool = False
    #: The resolver may ask the operator's index for project pages (never for the sdist itself).
    resolves: bool = False


REQ = "requirements.txt"
CASES = [
    Case(
        "direct-url",
        {REQ: b"dify_plugin\nevilpkg @ http://127.0.0.1:{index}/files/evilpkg-1.0.tar.gz\n"},
        "requirements.txt:2: evilpkg: direct URL, VCS and path references are refused",
    ),
    Case(
        "vcs-url",
        {REQ: b"evilpkg @ git+http://127.0.0.1:{outside}/evil.git\n"},
        "requirements.txt:1: evilpkg: direct URL",
    ),
    Case(
        "bare-url",
        {REQ: b"http://127.0.0.1:{outside}/files/evilpkg-1.0.tar.gz\n"},
        "requirements.txt:1: local paths, URLs and VCS references are not accepted",
    ),
    Case(
        "glued-find-links",
        {REQ: b"-fhttp://127.0.0.1:{outside}/files/\nevilpkg\n"},
        "requirements.txt:1: pip options are not accepted",
    ),
    Case(
        "glued-index-url",
        {REQ: b"-ihttp://127.0.0.1:{outside}/simple\nevilpkg\n"},
        "requirements.txt:1: pip options are not accepted",
    ),
    Case(
        "abbreviated-extra-index",
        {REQ: b"evilpkg\n--extra-index=http://127.0.0.1:{outside}/simple\n"},
        "requirements.txt:2: pip options are not accepted",
    ),
    Case("environ", {REQ: b"-r/proc/self/environ\n"}, "requirements.txt:1: pip options are not accepted"),
    Case("editable", {REQ: b"-e .\n"}, "requirements.txt:1: pip options are not accepted"),
    Case(
        "local-sdist",
        {REQ: b"./evilpkg-1.0.tar.gz\n"},
        "requirements.txt:1: local paths, URLs and VCS references are not accepted",
    ),
    Case(
        "hash-option",
        {REQ: b"evilpkg==1.0 --hash=sha256:00\n"},
        "requirements.txt:1: per-requirement options (such as --hash) are not accepted",
    ),
    Case(
        "continuation", {REQ: b"evilpkg==1.0 \\\n  --no-binary\n"}, "requirements.txt:1: line continuations"
    ),
    Case("env-reference", {REQ: b"evilpkg==${AWS_SECRET_ACCESS_KEY}\n"}, "requirements.txt:1: environment"),
    Case("not-utf8", {REQ: b"dify_plugin\nevil\xff\xfe\n"}, "requirements.txt:2: not UTF-8"),
    Case("oversize", {REQ: b"evilpkg\n" * 40_000}, "requirements.txt: larger than 256 KiB"),
    Case(
        "pyproject-url",
        {
            REQ: None,
            "pyproject.toml": b'[project]\nname = "p"\n'
            b'dependencies = ["evilpkg @ http://127.0.0.1:{index}/files/evilpkg-1.0.tar.gz"]\n',
        },
        "pyproject.toml [project].dependencies entry 1: evilpkg: direct URL",
    ),
    Case(
        "uv-lock-url",
        {
            REQ: None,
            "pyproject.toml": b'[project]\nname = "p"\n',
            "uv.lock": b'version = 1\n[[package]]\nname = "p"\nversion = "0"\nsource = { virtual = "." }\n'
            b'dependencies = [{ name = "evilpkg" }]\n[[package]]\nname = "evilpkg"\nversion = "1.0"\n'
            b'source = { url = "http://127.0.0.1:{index}/files/evilpkg-1.0.tar.gz" }\n',
        },
        "uv.lock: package evilpkg comes from a url source",
    ),
    Case(
        "sdist-only-uv",
        {REQ: b"evilpkg==1.0\n"},
        "no compatible wheel for evilpkg ==1.0",
        resolves=True,
    ),
    Case(
        "sdist-only-pip",
        {REQ: b"evilpkg==1.0\n"},
        "no compatible wheel for evilpkg ==1.0",
        flags=("--resolver", "pip"),
        resolves=True,
    ),
    *(
        Case(
            f"package-config-in-cwd-{resolver}",
            {
                REQ: b"evilpkg==1.0\n",
                "uv.toml": b'index-url = "http://127.0.0.1:{outside}/uv-toml"\nno-build = false\n',
                "pip.conf": b"[global]\nindex-url = http://127.0.0.1:{outside}/pip-conf\n",
                "pip/__init__.py": b"",
                "pip/__main__.py": b"open(CANARY, 'w').close()\n",
                "sitecustomize.py": b"open(CANARY, 'w').close()\n",
            },
            "no compatible wheel for evilpkg ==1.0",
            flags=("--resolver", resolver),
            cwd_in_package=True,
            resolves=True,
        )
        for resolver in ("uv", "pip")
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_requirements(case: Case, world: World, tmp_path: Path) -> None:
    files = plugin_files()
    for rel, content in case.files.items():
        if content is None:
            files.pop(rel, None)
        else:
            files[rel] = world.fill(content.replace(b"CANARY", repr(str(world.canary)).encode()))
    plugin = write_tree(tmp_path / "plugin", files)
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            str(CLI),
            "build",
            str(plugin),
            "-o",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--index-url",
            world.index_url,
            "-q",
            *case.flags,
        ],
        cwd=plugin if case.cwd_in_package else tmp_path,
        env=world.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dify-lambda: error: build:"), lines[0]
    assert case.fragment in lines[0], lines[0]
    assert SECRET not in proc.stderr + proc.stdout
    assert not world.canary.exists()
    assert not (out / "artifact.zip").exists()
    assert world.outside.requests == []
    if case.resolves:
        assert world.index.requests, "the resolver never asked the operator's index"
        assert all(r.startswith("GET /simple/") for r in world.index.requests), world.index.requests
    else:
        assert world.index.requests == []
