"""``serve`` of built artifacts: the template's environment and its overrides, the unpack cache, the
platform check and listen errors, on hand-made artifacts that run a stub app through the exec wrapper."""

from __future__ import annotations

import hashlib
import json
import socket
import tempfile
import zipfile
from pathlib import Path

import httpx
import pytest
from support.stub_artifact import STUB_ENV, artifact_tree, zip_tree

from dify_lambda.emulator import ArtifactPlatformError, ListenError, ServeTargetError, serve
from dify_lambda.emulator.function_env import load_env_vars_file
from dify_lambda.emulator.platform_check import host_arch
from dify_lambda.emulator.target import resolve_target
from dify_lambda.packaging.interpreters import find_interpreter

OTHER_ARCH = "arm64" if host_arch() == "x86_64" else "x86_64"
ELF_MACHINE = {"x86_64": 62, "arm64": 183}
needs_312 = pytest.mark.skipif(find_interpreter("3.12") is None, reason="no local Python 3.12")

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  AuthType: {Type: String, Default: AWS_IAM}
  SecretArn: {Type: String, Default: ''}
Conditions:
  HasSecret: !Not [!Equals [!Ref SecretArn, '']]
Globals:
  Function:
    Environment:
      Variables:
        FROM_GLOBALS: global
        SHADOWED: global
Resources:
  PluginFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: artifact.zip
      MemorySize: 512
      Environment:
        Variables:
          SHADOWED: function
          DIFY_LAMBDA_URL_AUTH: !Ref AuthType
          SECRET_ARN: !If [HasSecret, !Ref SecretArn, !Ref AWS::NoValue]
          UNRESOLVED: !GetAtt Other.Arn
          PLUGIN_DIR: /var/task/plugin
          FROM_FILE: template
          FROM_FILE_FUNCTION: template
          FROM_ENV: template
          TRUE_FLAG: true
"""


def _build_dir(tmp_path: Path, *, arch: str | None = None, template: str | None = TEMPLATE) -> Path:
    tree = artifact_tree(tmp_path / "tree")
    out = tmp_path / "build"
    out.mkdir()
    zip_tree(tree, out / "artifact.zip")
    (out / "build-report.json").write_text(
        json.dumps({"python": "3.12", "function": {"architecture": arch or host_arch()}})
    )
    if template is not None:
        (out / "template.yaml").write_text(template)
    return out


def _fake_extension(root: Path, arch: str) -> None:
    """An ELF header naming ``arch``: all the platform check reads of an extension module."""
    head = bytearray(64)
    head[:4] = b"\x7fELF"
    head[4], head[5] = 2, 1  # 64-bit, little endian
    head[18:20] = ELF_MACHINE[arch].to_bytes(2, "little")
    (root / "native").mkdir(exist_ok=True)
    (root / "native" / "_speedups.so").write_bytes(bytes(head))


@needs_312
def test_template_environment_with_env_vars_and_env_overrides(tmp_path: Path) -> None:
    build = _build_dir(tmp_path)
    env_file = tmp_path / "env.json"
    env_file.write_text(
        json.dumps(
            {
                "Parameters": {
                    "FROM_FILE": "parameters",
                    "FROM_FILE_FUNCTION": "parameters",
                    "NOT_DECLARED": "x",
                },
                "PluginFunction": {"FROM_FILE_FUNCTION": "function block", "UNRESOLVED": "given"},
                "SomeOtherFunction": {"FROM_FILE": "not this one"},
            }
        )
    )
    env_vars = load_env_vars_file(env_file)
    overrides = {**STUB_ENV, "FROM_ENV": "cli", "ADDED_BY_ENV": "cli"}
    cache = tmp_path / "cache"
    with (
        serve(build, env=overrides, env_vars=env_vars, cache_dir=cache) as fn,
        httpx.Client(timeout=60) as client,
    ):
        seen = client.get(fn.url + "/env").json()
        root = fn.target.root
        notes = fn.target.notes
    assert seen["FROM_GLOBALS"] == "global"
    assert seen["SHADOWED"] == "function"  # the function's map wins over Globals
    assert seen["DIFY_LAMBDA_URL_AUTH"] == "AWS_IAM"  # Ref -> the parameter's Default
    assert "SECRET_ARN" not in seen  # Fn::If on a false condition -> AWS::NoValue
    assert seen["PLUGIN_DIR"] == str(root / "plugin")  # /var/task is the local artifact root
    assert seen["TRUE_FLAG"] == "true"
    assert seen["FROM_FILE"] == "parameters"
    assert seen["FROM_FILE_FUNCTION"] == "function block"  # the function's block wins over Parameters
    assert seen["UNRESOLVED"] == "given"  # declared but unresolvable: the file may still set it
    assert "NOT_DECLARED" not in seen  # sam local only overrides declared variables
    assert seen["FROM_ENV"] == "cli" and seen["ADDED_BY_ENV"] == "cli"  # --env wins and may add
    assert seen["LAMBDA_TASK_ROOT"] == str(root)
    assert seen["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"  # as Lambda sets it from MemorySize
    assert any("NOT_DECLARED" in note and "ignored" in note for note in notes)
    assert not any("UNRESOLVED" in note for note in notes)


@needs_312
def test_unresolvable_variables_are_left_unset_with_a_note(tmp_path: Path) -> None:
    build = _build_dir(tmp_path)
    target = resolve_target(build, cache_dir=tmp_path / "cache")
    assert "UNRESOLVED" not in target.env
    assert any("UNRESOLVED" in note and "cannot resolve" in note for note in target.notes)
    given = resolve_target(build, cache_dir=tmp_path / "cache", env={"UNRESOLVED": "x"})
    assert not any("UNRESOLVED" in note for note in given.notes)


@needs_312
def test_a_zip_is_unpacked_once_per_content(tmp_path: Path) -> None:
    build = _build_dir(tmp_path, template=None)
    cache = tmp_path / "cache"
    digest = hashlib.sha256((build / "artifact.zip").read_bytes()).hexdigest()
    with serve(build, env=STUB_ENV, cache_dir=cache) as fn, httpx.Client(timeout=60) as client:
        first_root = fn.target.root
        assert client.get(fn.url + "/ok").content == b"hello world"
    assert first_root == cache / "serve" / digest
    assert first_root.is_dir()  # kept after close
    (first_root / "sentinel").write_text("from the first serve")
    with serve(build, env=STUB_ENV, cache_dir=cache) as fn, httpx.Client(timeout=60) as client:
        assert fn.target.root == first_root
        assert client.get(fn.url + "/ok").content == b"hello world"
    # Not unpacked again, and nothing but the entry in the cache (no temporary siblings).
    assert (first_root / "sentinel").read_text() == "from the first serve"
    assert [p.name for p in (cache / "serve").iterdir()] == [digest]


@needs_312
def test_an_unusable_cache_falls_back_to_a_temporary_directory(tmp_path: Path) -> None:
    build = _build_dir(tmp_path, template=None)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    target = resolve_target(build, cache_dir=not_a_dir)
    try:
        assert target.scratch is not None and target.root == target.scratch
        assert any("cannot use the unpack cache" in note for note in target.notes)
    finally:
        target.cleanup()
    assert not target.root.exists()


@needs_312
def test_a_report_for_another_zip_is_noted_as_stale(tmp_path: Path) -> None:
    build = _build_dir(tmp_path, template=None)
    report = json.loads((build / "build-report.json").read_text())
    (build / "build-report.json").write_text(json.dumps({**report, "artifact_sha256": "0" * 64}))
    for use_cache in (True, False):
        target = resolve_target(build, cache_dir=tmp_path / "cache", use_cache=use_cache)
        target.cleanup()
        assert any("may be stale" in note for note in target.notes)
    digest = hashlib.sha256((build / "artifact.zip").read_bytes()).hexdigest()
    (build / "build-report.json").write_text(json.dumps({**report, "artifact_sha256": digest}))
    assert not any("stale" in n for n in resolve_target(build, cache_dir=tmp_path / "cache").notes)


@needs_312
def test_no_cache_unpacks_into_a_directory_deleted_on_close(tmp_path: Path) -> None:
    build = _build_dir(tmp_path, template=None)
    with serve(build, env=STUB_ENV, use_cache=False, cache_dir=tmp_path / "cache") as fn:
        root = fn.target.root
        assert root.is_dir()
    assert not root.exists()
    assert not (tmp_path / "cache").exists()


def test_a_refused_zip_leaves_nothing_in_the_cache(tmp_path: Path) -> None:
    archive = tmp_path / "not-an-artifact.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("hello.txt", b"x")
    cache = tmp_path / "cache"
    with pytest.raises(ServeTargetError, match="not a dify-lambda artifact"):
        resolve_target(archive, cache_dir=cache)
    assert list((cache / "serve").iterdir()) == []


def test_a_report_for_another_arch_is_refused_before_unpacking(tmp_path: Path) -> None:
    build = _build_dir(tmp_path, arch=OTHER_ARCH)
    cache = tmp_path / "cache"
    with pytest.raises(ArtifactPlatformError) as err:
        resolve_target(build, cache_dir=cache)
    message = str(err.value)
    assert "\n" not in message
    assert f"built for {OTHER_ARCH} (build-report.json)" in message and f"--arch {host_arch()}" in message
    assert not cache.exists()


def test_a_report_for_another_python_than_python_is_refused_before_unpacking(tmp_path: Path) -> None:
    build = _build_dir(tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(
        ArtifactPlatformError, match=r"Python 3\.12 \(build-report\.json\).*Python 3\.13 \(--python\)"
    ):
        resolve_target(build, python="3.13", cache_dir=cache)
    assert not cache.exists()


@needs_312
def test_a_report_beside_another_zip_does_not_describe_it(tmp_path: Path) -> None:
    build = _build_dir(tmp_path, arch=OTHER_ARCH)
    other = build / "other.zip"
    other.write_bytes((build / "artifact.zip").read_bytes())
    target = resolve_target(other, cache_dir=tmp_path / "cache")
    assert target.kind == "artifact"
    assert "SHADOWED" not in target.env  # nor does the template


@needs_312
def test_an_extension_module_for_another_arch_is_refused(tmp_path: Path) -> None:
    tree = artifact_tree(tmp_path / "tree")
    _fake_extension(tree, OTHER_ARCH)
    with pytest.raises(ArtifactPlatformError, match=rf"built for {OTHER_ARCH} \(native/_speedups\.so\)"):
        resolve_target(tree)
    _fake_extension(tree, host_arch())
    assert resolve_target(tree).kind == "artifact"


@needs_312
def test_wheels_for_another_python_are_refused(tmp_path: Path) -> None:
    tree = artifact_tree(tmp_path / "tree")
    info = tree / "fastlib-1.0.dist-info"
    info.mkdir()
    machine = "x86_64" if host_arch() == "x86_64" else "aarch64"
    (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nTag: cp313-cp313-manylinux_2_17_{machine}\n")
    with pytest.raises(
        ArtifactPlatformError, match=r"Python 3\.13 \(fastlib-1\.0\.dist-info/WHEEL\).*Python 3\.12"
    ):
        resolve_target(tree)


@needs_312
def test_port_in_use_is_one_line_and_leaves_no_extraction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = _build_dir(tmp_path, template=None)
    # A temporary directory of this test's own: other tests running in parallel use the system one.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    before = set(scratch.glob("dify-lambda-serve-*"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ListenError) as err:
            serve(build, port=port, env=STUB_ENV, use_cache=False)
    assert str(err.value).startswith(f"cannot listen on 127.0.0.1:{port}: ")
    assert "\n" not in str(err.value)
    assert set(scratch.glob("dify-lambda-serve-*")) == before
