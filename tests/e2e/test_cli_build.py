"""``dify-lambda build`` run as a user would: a subprocess of the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "dify-lambda"


@pytest.fixture(scope="module")
def cache_dir(pytestconfig: pytest.Config) -> Path:
    # Same directory as the functional build tests: wheels are downloaded once per machine.
    env = os.environ.get("DIFY_LAMBDA_TEST_CACHE")
    return Path(env) if env else Path(pytestconfig.cache.mkdir("dify-lambda-build"))


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], cwd=cwd, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.mark.slow
def test_build_from_a_difypkg(cache_dir: Path, tmp_path: Path) -> None:
    pkg = tmp_path / "mockgpt.difypkg"
    packed = run("package", str(ROOT / "plugins/mockgpt"), "-o", str(pkg))
    assert packed.returncode == 0, packed.stderr
    out = tmp_path / "out"
    proc = run("build", str(pkg), "-o", str(out), "--cache-dir", str(cache_dir), "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["plugin_id"] == "dify-lambda/mockgpt"
    for name in ("artifact.zip", "template.yaml", "samconfig.toml", "build-report.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "build-report.json").read_text()) == report
    assert "CodeUri: artifact.zip" in (out / "template.yaml").read_text()


@pytest.mark.slow
def test_human_output_and_progress(cache_dir: Path, tmp_path: Path) -> None:
    proc = run("build", str(ROOT / "plugins/mocklab"), "-o", str(tmp_path), "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    assert "build:ResolveDependencies" in proc.stderr
    assert proc.stdout.startswith("built dify-lambda/mocklab:")
    assert "sha256 " in proc.stdout
    # The chosen memory and why (the manifest asks 256 MB, below the floor), the SDK, what loaded.
    assert (
        "build:ResolveTarget - memory 512 MB: the manifest's resource.memory (256 MB) is below" in proc.stderr
    )
    assert "  sdk       dify_plugin 0.10." in proc.stdout
    assert "  tiktoken  gpt2 (" in proc.stdout
    assert "  smoke     loaded mocklab (" in proc.stdout


@pytest.mark.slow
def test_plugin_that_cannot_load_exits_1_with_its_own_error(cache_dir: Path, tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    shutil.copytree(ROOT / "plugins/mocklab", plugin)
    provider = plugin / "provider" / "mocklab.py"
    provider.write_text(provider.read_text() + "\nraise RuntimeError('mocklab refuses to start')\n")
    out = tmp_path / "out"
    proc = run("build", str(plugin), "-o", str(out), "--cache-dir", str(cache_dir), "-q")
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("dify-lambda: error:")]
    assert errors == [proc.stderr.strip()]
    assert "build:SmokeInit - the plugin cannot load from the artifact:" in errors[0]
    assert "mocklab refuses to start" in errors[0]
    assert not (out / "artifact.zip").exists()
    skipped = run("build", str(plugin), "-o", str(out), "--cache-dir", str(cache_dir), "-q", "--no-smoke")
    assert skipped.returncode == 0, skipped.stderr
    assert "note: smoke init skipped: --no-smoke" in skipped.stdout


@pytest.mark.slow
def test_empty_tiktoken_cache_exits_2_naming_the_file(cache_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = run(
        "build",
        str(ROOT / "plugins/mockgpt"),
        "-o",
        str(tmp_path / "o"),
        "--cache-dir",
        str(cache_dir),
        "--tiktoken-cache",
        str(tmp_path / "empty"),
        "-q",
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert f"build:TiktokenData - --tiktoken-cache {tmp_path / 'empty'}: neither vocab.bpe nor" in proc.stderr


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--python", "3.11"], "--python '3.11' is not supported"),
        (["--python", "3.14"], "--python '3.14' is not supported"),
        (["--arch", "sparc"], "argument --arch: unknown architecture"),
        (["--url-auth", "OPEN"], "--url-auth 'OPEN' is not supported"),
        (["--env", "NOEQUALS"], "--env: expected KEY=VALUE"),
        (["--max-unzipped-mb", "0"], "argument --max-unzipped-mb: must be positive"),
        (["--resolver", "conda"], "--resolver 'conda' is not supported: use uv or pip"),
        (["--memory", "64"], "--memory 64 is outside Lambda's 128..10240 MB"),
        (["--tiktoken-encoding", "nope"], "--tiktoken-encoding 'nope' is not a tiktoken encoding"),
    ],
)
def test_bad_flags_exit_2_with_one_line(flags: list[str], fragment: str, tmp_path: Path) -> None:
    proc = run(
        "build", str(ROOT / "plugins/mockgpt"), "-o", str(tmp_path), "--cache-dir", str(tmp_path), *flags
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("dify-lambda: error:")]
    assert len(errors) == 1, proc.stderr
    assert fragment in errors[0]
    assert not (tmp_path / "artifact.zip").exists()


def test_missing_package_exits_2(tmp_path: Path) -> None:
    proc = run("build", str(tmp_path / "nope.difypkg"), "-o", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("dify-lambda: error:")
    assert "nope.difypkg" in proc.stderr


@pytest.mark.slow
def test_oversize_exits_2(cache_dir: Path, tmp_path: Path) -> None:
    proc = run(
        "build",
        str(ROOT / "plugins/mockgpt"),
        "-o",
        str(tmp_path),
        "--cache-dir",
        str(cache_dir),
        "--max-unzipped-mb",
        "1",
        "-q",
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "build:CheckSize - artifact is" in proc.stderr
