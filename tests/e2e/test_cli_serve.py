"""``dify-lambda serve`` run as a user would: a subprocess serving MockGPT over real, streaming HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import catalog

from dify_lambda.wire import encode_envelope

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / ".venv" / "bin" / "dify-lambda"
if not CLI.exists():  # a venv elsewhere: the interpreter running the tests has the entry point
    CLI = Path(sys.executable).with_name("dify-lambda")
WAIT = 120.0


class Served:
    def __init__(self, proc: subprocess.Popen[str], url: str, banner: str) -> None:
        self.proc, self.url, self.banner = proc, url, banner


@contextmanager
def serve(path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    with tempfile.TemporaryFile() as log:
        yield from _serve_logged(path, args, env, log)


def _serve_logged(
    path: Path, args: tuple[str, ...], env: dict[str, str] | None, log: Any
) -> Iterator[Served]:
    proc = subprocess.Popen(
        [str(CLI), "serve", str(path), "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        if not banner.startswith("serving "):
            log.seek(0)
            pytest.fail(f"serve did not start: {banner!r} {log.read().decode(errors='replace')[-3000:]}")
        yield Served(proc, banner.split(" at ", 1)[1].split()[0], banner.strip())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def _invoke(client: httpx.Client, url: str, case: catalog.Case, **data: object) -> httpx.Response:
    envelope = catalog.envelope(case, "e2e-session")
    envelope["data"].update(data)
    return client.post(
        f"{url}/invoke?action={case.action}",
        content=encode_envelope(envelope),
        headers={"content-type": "application/json", "dify-plugin-session-id": "e2e-session"},
    )


def _lines(body: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in body.split(b"\n\n") if line]


def test_serve_plugin_source_streams_mockgpt() -> None:
    with (
        serve(ROOT / "plugins" / "mockgpt", "--workers", "2") as served,
        httpx.Client(timeout=WAIT) as client,
    ):
        assert served.banner == f"serving dify-lambda/mockgpt at {served.url} (2 workers)"
        health = client.get(served.url + "/health")
        assert health.status_code == 200 and health.content == b"OK"
        r = _invoke(client, served.url, catalog.case("llm_stream"))
        assert r.status_code == 200
        assert r.headers["transfer-encoding"] == "chunked"
        lines = _lines(r.content)
        assert lines[-1]["data"] == {"type": "end", "data": {}}
        assert all(line["data"]["type"] == "stream" for line in lines[:-1])  # type: ignore[index]
        assert len(lines) > 2
        # SIGTERM stops the server and every worker cleanly
        os.killpg(served.proc.pid, signal.SIGTERM)
        assert served.proc.wait(30) == 0


def _assert_first_word_arrives_before_the_last_exists(url: str) -> None:
    case = catalog.case("llm_stream_timing")
    # words:3 with a pause before each word: the last word does not exist until ~2 pauses after the first.
    data = catalog.llm("words:3", parameters={"word_delay": 1.0})
    envelope = catalog.envelope(case, "e2e-session")
    envelope["data"].update(data)
    with (
        httpx.Client(timeout=WAIT) as client,
        client.stream(
            "POST",
            f"{url}/invoke?action=invoke_llm",
            content=encode_envelope(envelope),
            headers={"content-type": "application/json"},
        ) as r,
    ):
        pieces = r.iter_raw()
        first = b""
        while b"\n\n" not in first:  # one whole event line
            first += next(pieces)
        # The first word is here while the last one has not been produced: nothing was buffered.
        assert b"w1" in first
        assert b"w3" not in first
        assert b'"type":"end"' not in first
        rest = b"".join(pieces)
    whole = _lines(first + rest)
    assert whole[-1]["data"] == {"type": "end", "data": {}}
    assert b"w3" in rest


def test_client_sees_the_first_word_before_the_last_is_produced() -> None:
    with serve(ROOT / "plugins" / "mockgpt") as served:
        _assert_first_word_arrives_before_the_last_exists(served.url)


def test_serve_rejects_a_path_that_is_not_a_plugin(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(CLI), "serve", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "neither a built artifact" in proc.stderr and str(tmp_path) in proc.stderr


@pytest.mark.slow
def test_serve_built_x86_64_artifact(tmp_path_factory: pytest.TempPathFactory) -> None:
    from dify_lambda.packaging.interpreters import find_interpreter

    if find_interpreter("3.12") is None:
        pytest.skip("no local Python 3.12 to run the artifact")
    out = tmp_path_factory.mktemp("build") / "mockgpt"
    build = subprocess.run(
        [str(CLI), "build", str(ROOT / "plugins" / "mockgpt"), "-o", str(out), "--arch", "x86_64", "-q"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    assert (out / "artifact.zip").is_file()
    with serve(out) as served, httpx.Client(timeout=WAIT) as client:
        assert served.banner.startswith("serving dify-lambda/mockgpt at ")
        r = _invoke(client, served.url, catalog.case("llm_stream"))
        assert r.status_code == 200
        assert _lines(r.content)[-1]["data"] == {"type": "end", "data": {}}
        _assert_first_word_arrives_before_the_last_exists(served.url)
    shutil.rmtree(out, ignore_errors=True)
