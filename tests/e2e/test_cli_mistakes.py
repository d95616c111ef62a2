"""Ordinary mistakes, driven through the CLI as a user makes them: one line, the documented exit code.

Exit codes (README, "Exit codes"): 0 success, 1 an operation or check failed on valid input,
2 bad input. No traceback without ``--debug``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "dify-lambda"
PLUGIN = ROOT / "plugins" / "mockgpt"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No AWS configuration at all, unless added."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.update(extra)
    return env


def run(
    *args: str, env: dict[str, str] | None = None, stdout: int | None = subprocess.PIPE, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args],
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dify-lambda: error: "), lines[0]
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def test_port_in_use_is_bad_input(busy_port: int, tmp_path: Path) -> None:
    proc = run("serve", str(PLUGIN), "--port", str(busy_port), env=clean_env(tmp_path))
    assert proc.returncode == 2
    assert "already in use" in one_error_line(proc)


def test_no_aws_credentials_is_bad_input(tmp_path: Path) -> None:
    proc = run("ls", "--region", "us-east-1", env=clean_env(tmp_path))
    assert proc.returncode == 2
    assert "no AWS credentials" in one_error_line(proc)


def test_no_aws_region_is_bad_input(tmp_path: Path) -> None:
    proc = run(
        "rollback", "dify-x", env=clean_env(tmp_path, AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b")
    )
    assert proc.returncode == 2
    assert "--region" in one_error_line(proc)


def test_output_pointing_at_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("not a directory\n")
    proc = run("build", str(PLUGIN), "-o", str(target), "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "-o/--output" in line and "not a directory" in line
    assert not (tmp_path / "cache").exists(), "nothing was resolved"


def test_missing_overlay_file_is_refused_before_any_work(tmp_path: Path) -> None:
    proc = run("build", str(PLUGIN), "--template-overlay", str(tmp_path / "nope.yaml"), "-o", str(tmp_path))
    assert proc.returncode == 2
    assert "--template-overlay" in one_error_line(proc)


def test_bad_arch_spelling_is_bad_input_and_manifest_spellings_are_accepted(tmp_path: Path) -> None:
    proc = run("build", str(PLUGIN), "--arch", "sparc", "-o", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "unknown architecture" in one_error_line(proc)
    for spelling in ("amd64", "aarch64"):
        # The arch is accepted; the build then stops on the next, deliberately bad, option.
        later = run("build", str(PLUGIN), "--arch", spelling, "--function-name", "bad name")
        assert later.returncode == 2
        assert "--function-name" in one_error_line(later)


def test_bad_function_name_is_bad_input(tmp_path: Path) -> None:
    proc = run("rm", "not-ours", "--yes", env=clean_env(tmp_path))
    assert proc.returncode == 2
    assert "must start with 'dify-'" in one_error_line(proc)


def test_missing_package_is_bad_input(tmp_path: Path) -> None:
    proc = run("inspect", str(tmp_path / "missing.difypkg"))
    assert proc.returncode == 2
    assert "missing.difypkg" in one_error_line(proc)


def test_invalid_route_file_is_refused_before_deploying(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes: [not, a, mapping]\n")
    proc = run("deploy", str(tmp_path / "whatever"), "--routes", str(routes), env=clean_env(tmp_path))
    assert proc.returncode == 2
    assert "--routes" in one_error_line(proc)


def test_broken_pipe_is_one_line_and_exit_1(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # whatever the command prints, nobody reads it
    try:
        proc = run("package", str(PLUGIN), "-o", str(tmp_path / "x.difypkg"), stdout=write_end)
    finally:
        os.close(write_end)
    assert proc.returncode == 1
    assert "broken pipe" in one_error_line(proc)


def test_usage_error_is_one_line_and_exit_2() -> None:
    proc = run("deploy")
    assert proc.returncode == 2
    assert "required" in one_error_line(proc)


def test_debug_adds_the_traceback(tmp_path: Path) -> None:
    proc = run("ls", "--region", "us-east-1", "--debug", env=clean_env(tmp_path))
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("dify-lambda: error: no AWS credentials")
