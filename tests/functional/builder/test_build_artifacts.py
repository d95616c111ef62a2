"""Both demo plugins build for x86_64 and arm64 into correct, reproducible artifacts."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dify_lambda.packaging.build import BuildOptions, build
from dify_lambda.packaging.build.runtime import FORBIDDEN_TOP_LEVEL
from dify_lambda.packaging.interpreters import find_interpreter
from dify_lambda.packaging.sam import load_template

pytestmark = pytest.mark.slow

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"

#: ELF e_machine values.
EM_X86_64 = 62
EM_AARCH64 = 183
CASES = [("mockgpt", "x86_64"), ("mockgpt", "arm64"), ("mocklab", "x86_64"), ("mocklab", "arm64")]
RUNTIME_TOP = {
    "dify_lambda/__init__.py",
    "dify_lambda/errors.py",
    "dify_lambda/wire.py",
    "dify_lambda/py.typed",
}


def _elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF"
    return int.from_bytes(data[18:20], "little")


@pytest.mark.parametrize(("plugin", "arch"), CASES)
def test_layout_modes_and_binaries(built, plugin: str, arch: str) -> None:
    result = built(plugin, arch)
    with zipfile.ZipFile(result.artifact) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert not any(n.endswith("/") for n in names), "no directory entries"
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        modes = {i.filename: i.external_attr >> 16 for i in infos}
        assert set(modes.values()) <= {0o100644, 0o100755}
        assert modes["dify_lambda/handlers/exec_wrapper.sh"] == 0o100755
        # plugin files under plugin/, the runtime slice only, dependencies at the root
        assert "plugin/manifest.yaml" in names
        assert "plugin/main.py" in names
        runtime = {n for n in names if n.startswith("dify_lambda/") and "__pycache__" not in n}
        assert runtime >= RUNTIME_TOP
        assert all(n in RUNTIME_TOP or n.startswith("dify_lambda/handlers/") for n in runtime)
        assert "dify_lambda/handlers/buffered.py" in runtime
        for forbidden in FORBIDDEN_TOP_LEVEL:
            assert not any(n.startswith(forbidden) for n in names), forbidden
        assert not any(n.startswith(("boto3", "botocore", "moto")) for n in names)
        assert any(n.startswith("dify_plugin/") for n in names)
        assert any(n.startswith("aws_lambda_powertools/") for n in names)
        assert not any(n.startswith(("bin/", "gevent/tests/")) for n in names)
        assert any(n.endswith(".dist-info/METADATA") for n in names)
        so = [n for n in names if n.startswith("pydantic_core/_pydantic_core.") and n.endswith(".so")]
        assert len(so) == 1
        machine = "aarch64" if arch == "arm64" else "x86_64"
        assert f"cpython-312-{machine}-linux-gnu" in so[0]
        assert _elf_machine(zf.read(so[0])) == (EM_AARCH64 if arch == "arm64" else EM_X86_64)


@pytest.mark.parametrize(("plugin", "arch"), CASES)
def test_report_matches_the_artifact(built, plugin: str, arch: str) -> None:
    result = built(plugin, arch)
    report = json.loads(result.report_path.read_text())
    assert report["artifact_sha256"] == hashlib.sha256(result.artifact.read_bytes()).hexdigest()
    assert report["sizes"]["zipped"] == result.artifact.stat().st_size
    with zipfile.ZipFile(result.artifact) as zf:
        assert report["sizes"]["unzipped"] == sum(i.file_size for i in zf.infolist())
    sizes = report["sizes"]
    assert sizes["unzipped"] == sizes["plugin"] + sizes["dependencies"] + sizes["runtime"] + sizes["data"]
    assert report["plugin_id"] == f"dify-lambda/{plugin}"
    assert report["unique_identifier"].startswith(f"dify-lambda/{plugin}:")
    assert report["unique_identifier"].endswith("@" + report["checksum"])
    assert report["function"]["architecture"] == arch
    assert report["python"] == "3.12"
    assert report["providers"]
    names = {d["name"].lower().replace("_", "-") for d in report["dependencies"]}
    assert {"dify-plugin", "aws-lambda-powertools", "pydantic-core", "gevent"} <= names
    assert "boto3" not in names
    assert report["compile"]["dependencies"] in {"compiled", "partial", "skipped"}
    if find_interpreter("3.12") is not None:
        assert report["compile"]["plugin_and_runtime"] == "compiled"
    assert report["build_seconds"] > 0
    assert report["steps"][0]["step"] == "ReadPackage"
    # The template is rendered from the spec the report records (what `dify-lambda deploy` creates).
    props = load_template(result.template.read_text())["Resources"]["PluginFunction"]["Properties"]
    fn = report["function"]
    assert (
        props["Runtime"],
        props["Architectures"],
        props["MemorySize"],
        props["Timeout"],
        props["Handler"],
    ) == (
        fn["runtime"],
        [fn["architecture"]],
        fn["memory_mb"],
        fn["timeout"],
        fn["handler"],
    )
    assert {k: v for k, v in props["Environment"]["Variables"].items() if isinstance(v, str)} == fn[
        "environment"
    ]


def test_compiled_pyc_are_unchecked_hash_based(built) -> None:
    result = built("mockgpt", "x86_64")
    if result.report.compile.dependencies != "compiled":
        pytest.skip("python3.12 interpreter not found: nothing compiled")
    with zipfile.ZipFile(result.artifact) as zf:
        pyc = zf.read("dify_plugin/__pycache__/__init__.cpython-312.pyc")
        assert "dify_lambda/handlers/__pycache__/app.cpython-312.pyc" in zf.namelist()
    flags = int.from_bytes(pyc[4:8], "little")
    assert flags == 0b01, "hash-based, check_source off (unchecked-hash)"


def test_rebuild_gives_the_same_sha256(built, build_cache: Path, tmp_path: Path) -> None:
    first = built("mockgpt", "x86_64")
    again = build(PLUGINS / "mockgpt", tmp_path / "again", BuildOptions(arch="x86_64", cache_dir=build_cache))
    assert again.report.cache_hit is True
    assert again.report.artifact_sha256 == first.report.artifact_sha256
    assert again.artifact.read_bytes() == first.artifact.read_bytes()
    assert again.template.read_text() == first.template.read_text()


def test_fresh_resolution_reproduces_the_cached_build(built, build_cache: Path, tmp_path: Path) -> None:
    # No dependency cache: pip installs, prune and compile run again (pip's download cache is reused).
    first = built("mocklab", "arm64")
    options = BuildOptions(arch="arm64", cache_dir=build_cache, use_cache=False)
    fresh = build(PLUGINS / "mocklab", tmp_path / "fresh", options)
    assert fresh.report.cache_hit is False
    assert fresh.report.artifact_sha256 == first.report.artifact_sha256


def test_another_cache_dir_gives_the_same_sha256(built, tmp_path: Path) -> None:
    # The cache directory's path used to reach the artifact through RECORD rows of pruned bin/ scripts.
    first = built("mockgpt", "x86_64")
    other = build(
        PLUGINS / "mockgpt",
        tmp_path / "out",
        BuildOptions(arch="x86_64", cache_dir=tmp_path / "elsewhere" / "c"),
    )
    assert other.report.cache_hit is False
    assert other.report.artifact_sha256 == first.report.artifact_sha256
    with zipfile.ZipFile(other.artifact) as zf:
        records = [zf.read(n).decode() for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
    assert records
    assert not any("../bin/" in text or "\nbin/" in text for text in records)


def test_x86_64_artifact_loads_its_plugin(built, tmp_path: Path) -> None:
    python = find_interpreter("3.12")
    if python is None:
        pytest.skip("no local python3.12 to run the artifact with")
    result = built("mockgpt", "x86_64")
    root = tmp_path / "task"
    with zipfile.ZipFile(result.artifact) as zf:
        zf.extractall(root)
    wrapper = root / "dify_lambda/handlers/exec_wrapper.sh"
    wrapper.chmod(0o755)
    assert wrapper.stat().st_mode & stat.S_IXUSR
    script = (
        "import json, dify_plugin\n"
        "from dify_lambda.handlers.app import application_from_env, buffered_result\n"
        "app = application_from_env()\n"
        "event = {'version': '2.0', 'rawPath': '/health', 'rawQueryString': '', 'headers': {},\n"
        "         'requestContext': {'http': {'method': 'GET', 'path': '/health'},\n"
        "             'authorizer': {'iam': {'userArn': 'arn:aws:iam::123456789012:user/t'}}},\n"
        "         'isBase64Encoded': False}\n"
        "health = buffered_result(app.handle_event(event))\n"
        "print(json.dumps({'sdk': dify_plugin.__file__, 'health': health}))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(root),
        "DIFY_LAMBDA_PLUGIN_ROOT": str(root / "plugin"),
        "DIFY_LAMBDA_URL_AUTH": "AWS_IAM",
        "INSTALL_METHOD": "serverless",
        "HOME": str(tmp_path),
    }
    # -S: no site-packages of the interpreter, so only the artifact's dependencies are importable.
    proc = subprocess.run(
        [str(python), "-S", "-c", script],
        cwd=root / "plugin",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["sdk"].startswith(str(root)), "dify_plugin must come from the artifact"
    assert out["health"]["statusCode"] == 200
    assert out["health"]["body"] == "OK"


def test_project_interpreter_is_not_the_target(built) -> None:
    # The arm64 build ran on this (x86_64 or other) host: what shipped is for the target only.
    result = built("mocklab", "arm64")
    with zipfile.ZipFile(result.artifact) as zf:
        sos = [n for n in zf.namelist() if n.endswith(".so")]
    assert sos
    assert not any(f"{sys.implementation.cache_tag}-x86_64" in n for n in sos)


def test_python_313_target(build_cache: Path, tmp_path: Path) -> None:
    result = build(PLUGINS / "mockgpt", tmp_path, BuildOptions(python="3.13", cache_dir=build_cache))
    assert result.report.function.runtime == "python3.13"
    assert "Runtime: python3.13" in result.template.read_text()
    with zipfile.ZipFile(result.artifact) as zf:
        names = zf.namelist()
    assert any(n.startswith("pydantic_core/_pydantic_core.cpython-313-x86_64-linux-gnu") for n in names)
    assert not any("cpython-312" in n for n in names)
    if find_interpreter("3.13") is not None:
        assert "dify_plugin/__pycache__/__init__.cpython-313.pyc" in names
