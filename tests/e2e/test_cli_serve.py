"""``dify-lambda serve`` run as a user would: a subprocess serving MockGPT over real, streaming HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
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

# One xdist worker runs the module (--dist loadgroup): a built artifact, once per run.
pytestmark = pytest.mark.xdist_group("test_cli_serve")

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


@pytest.fixture(scope="module")
def built_mockgpt(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dify-lambda build plugins/mockgpt`` for this machine, once per module (wheels cached per session)."""
    from dify_lambda.emulator.platform_check import host_arch
    from dify_lambda.packaging.interpreters import find_interpreter

    if find_interpreter("3.12") is None:
        pytest.skip("no local Python 3.12 to run the artifact")
    env_cache = os.environ.get("DIFY_LAMBDA_TEST_CACHE")
    cache = Path(env_cache) if env_cache else Path(pytestconfig.cache.mkdir("dify-lambda-build"))
    out = tmp_path_factory.mktemp("build") / "mockgpt"
    command = [str(CLI), "build", str(ROOT / "plugins" / "mockgpt"), "-o", str(out), "--arch", host_arch()]
    build = subprocess.run(
        [*command, "--cache-dir", str(cache), "-q"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    assert (out / "artifact.zip").is_file()
    return out


def _copy_build(build: Path, dest: Path) -> Path:
    shutil.copytree(build, dest)
    return dest


@pytest.mark.slow
def test_serve_built_artifact_twice_unpacks_once(built_mockgpt: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    digest = json.loads((built_mockgpt / "build-report.json").read_text())["artifact_sha256"]
    with serve(built_mockgpt, "--cache-dir", str(cache)) as served, httpx.Client(timeout=WAIT) as client:
        assert served.banner.startswith("serving dify-lambda/mockgpt at ")
        r = _invoke(client, served.url, catalog.case("llm_stream"))
        assert r.status_code == 200
        assert _lines(r.content)[-1]["data"] == {"type": "end", "data": {}}
        _assert_first_word_arrives_before_the_last_exists(served.url)
    entry = cache / "serve" / digest
    (entry / "sentinel").write_text("first serve")
    with serve(built_mockgpt, "--cache-dir", str(cache)) as served, httpx.Client(timeout=WAIT) as client:
        r = _invoke(client, served.url, catalog.case("llm_stream"))
        assert _lines(r.content)[-1]["data"] == {"type": "end", "data": {}}
    # The second serve used the same unpacked tree; the cache holds that entry only.
    assert (entry / "sentinel").read_text() == "first serve"
    assert [p.name for p in (cache / "serve").iterdir()] == [digest]


@pytest.mark.slow
def test_serve_applies_the_template_environment_and_env_overrides(
    built_mockgpt: Path, tmp_path: Path
) -> None:
    """The template's DIFY_LAMBDA_URL_AUTH (AWS_IAM) is overridden from an --env-vars file, and --env adds
    the secret a public URL needs: a call without the secret is refused, with it the plugin answers."""
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"PluginFunction": {"DIFY_LAMBDA_URL_AUTH": "NONE"}}))
    secret = "e2e-local-secret"
    args = (
        "--env-vars",
        str(env_file),
        "--env",
        f"DIFY_LAMBDA_SECRET={secret}",
        "--cache-dir",
        str(tmp_path),
    )
    with serve(built_mockgpt, *args) as served, httpx.Client(timeout=WAIT) as client:
        refused = _invoke(client, served.url, catalog.case("llm_stream"))
        assert refused.status_code == 401
        case = catalog.case("llm_stream")
        envelope = catalog.envelope(case, "e2e-session")
        r = client.post(
            f"{served.url}/invoke?action={case.action}",
            content=encode_envelope(envelope),
            headers={"content-type": "application/json", "x-dify-lambda-secret": secret},
        )
        assert r.status_code == 200
        assert _lines(r.content)[-1]["data"] == {"type": "end", "data": {}}


def _run_serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
@pytest.mark.parametrize("cached", [True, False])
def test_port_in_use_is_one_line_exit_2_and_leaves_no_temporary_directory(
    built_mockgpt: Path, tmp_path: Path, cached: bool
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    cache = tmp_path / "cache"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        flags = ["--cache-dir", str(cache)] if cached else ["--no-cache"]
        proc = _run_serve(str(built_mockgpt), "--port", str(port), *flags, env={"TMPDIR": str(scratch)})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(f"dify-lambda: error: cannot listen on 127.0.0.1:{port}: ")
    assert list(scratch.iterdir()) == []
    if cached:  # only the complete entry, no half-unpacked sibling
        assert [p.name for p in (cache / "serve").iterdir()] == [
            json.loads((built_mockgpt / "build-report.json").read_text())["artifact_sha256"]
        ]


@pytest.mark.slow
def test_unknown_host_is_one_line_exit_2(built_mockgpt: Path, tmp_path: Path) -> None:
    proc = _run_serve(
        str(built_mockgpt), "--host", "no-such-host.invalid", "--port", "0", "--cache-dir", str(tmp_path)
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("dify-lambda: error: cannot listen on no-such-host.invalid:0: ")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_an_artifact_built_for_another_arch_is_refused_in_one_line(
    built_mockgpt: Path, tmp_path: Path
) -> None:
    from dify_lambda.emulator.platform_check import host_arch

    other = "arm64" if host_arch() == "x86_64" else "x86_64"
    build = _copy_build(built_mockgpt, tmp_path / "foreign")
    report = json.loads((build / "build-report.json").read_text())
    report["function"]["architecture"] = other
    (build / "build-report.json").write_text(json.dumps(report))
    proc = _run_serve(str(build), "--port", "0", "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert f"built for {other} (build-report.json)" in proc.stderr and f"--arch {host_arch()}" in proc.stderr
    assert not (tmp_path / "cache").exists()  # refused before unpacking


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON (line 1"),
        ("[]", "the top level must be an object"),
        ('{"Parameters": "SECRET-VALUE"}', "'Parameters' must be an object"),
    ],
)
def test_a_bad_env_vars_file_is_one_line_without_its_values(
    tmp_path: Path, content: str, fragment: str
) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text(content)
    proc = _run_serve(str(ROOT / "plugins" / "mockgpt"), "--port", "0", "--env-vars", str(env_file))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert fragment in proc.stderr
    assert "SECRET-VALUE" not in proc.stderr


def test_a_bad_env_assignment_is_one_line_without_its_value() -> None:
    proc = _run_serve(str(ROOT / "plugins" / "mockgpt"), "--port", "0", "--env", "SECRET-VALUE")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "dify-lambda: error: --env #1: expected KEY=VALUE with KEY a variable name"
