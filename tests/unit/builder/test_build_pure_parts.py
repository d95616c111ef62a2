"""Pure helpers of the dependency installer, the compiler, the runtime scan and the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from dify_lambda.errors import ArtifactTooLargeError, BuildError, DependencyResolutionError
from dify_lambda.infra.builder import artifact_from_report
from dify_lambda.packaging.build.artifact import (
    ArtifactEntry,
    check_unzipped_size,
    entry_mode,
    largest_contributors,
)
from dify_lambda.packaging.build.compile import DRIVER, compile_command
from dify_lambda.packaging.build.deps import (
    IndexOptions,
    MissingWheel,
    MissingWheelsError,
    _listed_line,
    failed_requirement,
    is_pure_wheel,
    pip_install_args,
    platform_tags,
    uv_install_args,
)
from dify_lambda.packaging.build.options import Target
from dify_lambda.packaging.build.report import REPORT_SCHEMA, BuildReport, CompileStatus, Dependency, Sizes
from dify_lambda.packaging.build.runtime import _check_internal, imports_of, runtime_requirements
from dify_lambda.packaging.spec import FunctionSpec

X86 = Target("x86_64", "3.12", 256, 900, "AWS_IAM")
ARM = Target("arm64", "3.13", 256, 900, "AWS_IAM")


def test_platform_tags_cover_manylinux2014_to_2_34() -> None:
    tags = platform_tags(ARM)
    assert tags[0] == "manylinux2014_aarch64"
    assert tags[1] == "manylinux_2_17_aarch64"
    assert tags[-1] == "manylinux_2_34_aarch64"
    assert all(t.endswith("_aarch64") for t in tags)
    assert "manylinux_2_35_aarch64" not in tags
    assert all(t.endswith("_x86_64") for t in platform_tags(X86))


INDEX = IndexOptions("http://127.0.0.1:9/simple", ("http://127.0.0.1:9/more",), (Path("/w"),))


def test_pip_install_args() -> None:
    args = pip_install_args(
        X86, Path("/t"), Path("/r.txt"), cache_dir=Path("/c"), index=INDEX, wheelhouse=Path("/h")
    )
    assert args[:5] == ["install", "--target", "/t", "--no-compile", "--only-binary=:all:"]
    joined = " ".join(args)
    assert "--python-version 3.12 --implementation cp --abi cp312" in joined
    assert "--platform manylinux_2_34_x86_64" in joined
    assert "--cache-dir /c" in joined
    assert "--index-url http://127.0.0.1:9/simple --extra-index-url http://127.0.0.1:9/more" in joined
    assert "--find-links /w --find-links /h" in joined
    assert "--no-binary" not in joined
    assert args[-2:] == ["-r", "/r.txt"]


def test_uv_install_args() -> None:
    args = uv_install_args(ARM, Path("/t"), Path("/r.txt"), python="/py", cache_dir=Path("/c"), index=INDEX)
    assert args[:6] == ["pip", "install", "--target", "/t", "--python", "/py"]
    joined = " ".join(args)
    assert "--python-platform aarch64-manylinux_2_34 --python-version 3.13" in joined
    assert "--only-binary :all:" in joined
    assert "--cache-dir /c" in joined
    assert "--index-url http://127.0.0.1:9/simple --extra-index-url http://127.0.0.1:9/more" in joined
    assert "--find-links /w" in joined
    assert args[-2:] == ["-r", "/r.txt"]
    assert "--no-cache" in uv_install_args(ARM, Path("/t"), Path("/r.txt"))


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("ERROR: No matching distribution found for foo-bar==1.2\n", "foo-bar==1.2"),
        (
            "ERROR: Could not find a version that satisfies the requirement nopkg (from versions: none)",
            "nopkg",
        ),
        ("ERROR: something else entirely", None),
        (
            "  cause: Because h5pure==1.0 has no usable wheels and you require h5pure==1.0, we can "
            "conclude that your requirements are unsatisfiable.",
            "h5pure==1.0",
        ),
        ("  cause: Because ghost-x was not found in the package registry and you require ghost-x", "ghost-x"),
        ("  cause: Because there are no versions of nopkg and you require nopkg, we can conclude", "nopkg"),
        ("error: Failed to fetch: `http://127.0.0.1:9/simple/x/`", None),
    ],
)
def test_failed_requirement(output: str, expected: str | None) -> None:
    assert failed_requirement(output) == expected


@pytest.mark.parametrize(
    ("name", "pure"),
    [
        ("foo-1.0-py3-none-any.whl", True),
        ("foo-1.0-py2.py3-none-any.whl", True),
        ("foo-1.0-cp312-cp312-linux_x86_64.whl", False),
        ("foo-1.0-cp312-abi3-manylinux_2_17_x86_64.whl", False),
        ("foo-1.0-py2-none-any.whl", False),
        ("garbage.whl", False),
    ],
)
def test_is_pure_wheel(name: str, pure: bool) -> None:
    assert is_pure_wheel(name) is pure


def test_missing_wheels_error_lists_every_package() -> None:
    err = MissingWheelsError(
        [
            MissingWheel("cpkg", "==1.0", "cp312-manylinux_2_34_x86_64", "only an sdist with compiled code"),
            MissingWheel("ghost", None, "cp312-manylinux_2_34_x86_64", "not found on the package index"),
        ]
    )
    assert isinstance(err, DependencyResolutionError)
    text = str(err)
    assert "cpkg ==1.0 (cp312-manylinux_2_34_x86_64): only an sdist" in text
    assert "ghost (cp312-manylinux_2_34_x86_64): not found" in text
    assert "--find-links" in text
    assert "\n" not in text


def test_compile_command_is_reproducible_and_lambda_rooted() -> None:
    cmd = compile_command(Path("/py/python3.12"), Path("/build/tree"))
    assert cmd[:3] == ["/py/python3.12", "-s", "-c"]
    assert cmd[3] == DRIVER
    assert cmd[4:] == ["/build/tree", "/var/task"]
    # Unchecked-hash .pyc (no mtime inside, never revalidated on the read-only task root).
    assert "_code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False)" in DRIVER
    # The compiler's own directory is off sys.path before it imports anything of the tree's names.
    assert DRIVER.index("del sys.path[0]") < DRIVER.index("import importlib")


def test_imports_of_resolves_relative_imports() -> None:
    source = (
        "import os\nfrom . import http\nfrom .errors import X\nfrom ..wire import Y\n"
        "import aws_lambda_powertools.x\n"
    )
    found = imports_of(source, "dify_lambda.handlers.app", "dify_lambda/handlers/app.py")
    assert {"os", "dify_lambda.handlers", "dify_lambda.handlers.http", "dify_lambda.handlers.errors"} <= found
    assert "dify_lambda.wire" in found
    assert "aws_lambda_powertools.x" in found


def test_imports_of_package_init() -> None:
    found = imports_of("from .app import A\n", "dify_lambda.handlers", "dify_lambda/handlers/__init__.py")
    assert "dify_lambda.handlers.app" in found


@pytest.mark.parametrize(
    "name", ["dify_lambda.router", "dify_lambda.packaging.build", "dify_lambda.infra.aws", "dify_lambda.cli"]
)
def test_runtime_may_not_import_host_parts(name: str) -> None:
    with pytest.raises(BuildError, match=name.replace(".", r"\.")):
        _check_internal([name], "dify_lambda/handlers/app.py")


def test_runtime_may_import_the_shipped_parts() -> None:
    _check_internal(["dify_lambda.wire", "dify_lambda.errors.AuthError", "dify_lambda.handlers.http"], "x.py")


def test_runtime_requirements_mapping() -> None:
    lines, unknown = runtime_requirements(["aws_lambda_powertools", "boto3", "dify_plugin", "mystery"])
    assert lines == ("aws-lambda-powertools>=3.0,<4", "pydantic>=2.11,<3")
    assert unknown == ("mystery",)


SPEC = FunctionSpec("python3.12", "x86_64", 256, 900, url_auth="NONE", environment={"A": "1"})


def test_report_serializes() -> None:
    report = BuildReport(
        plugin_id="a/b",
        unique_identifier="a/b:0.0.1@" + "0" * 64,
        version="0.0.1",
        providers=("p",),
        checksum="0" * 64,
        python="3.12",
        function=SPEC,
        artifact="artifact.zip",
        artifact_sha256="f" * 64,
        sizes=Sizes(10, 5, 1, 8, 1, (("x", 8),)),
        requirements_source="requirements.txt",
        requirements=("dify_plugin",),
        dependencies=(Dependency("dify-plugin", "0.10.2"),),
        cache_hit=True,
        cache_key="k",
        build_seconds=1.5,
        compile=CompileStatus("compiled", "compiled", "/py"),
        pruned_paths=1,
        pruned_bytes=2,
        steps=(("ReadPackage", 0.1),),
    )
    data = report.to_dict()
    assert data["sizes"]["largest"] == [{"name": "x", "bytes": 8}]
    assert data["dependencies"] == [{"name": "dify-plugin", "version": "0.10.2"}]
    assert data["steps"] == [{"step": "ReadPackage", "seconds": 0.1}]
    assert data["cache_hit"] is True
    assert data["schema"] == REPORT_SCHEMA == 2
    assert data["function"]["memory_mb"] == 256 and data["function"]["environment"] == {"A": "1"}
    # What the deployer reads back is the very spec the build resolved.
    assert artifact_from_report(data, Path("out"), "r").spec == SPEC


def _entry(arcname: str, size: int, part: str = "dependencies") -> ArtifactEntry:
    return ArtifactEntry(arcname, Path("/nowhere") / arcname, size, False, part)


def test_largest_contributors_group_by_top_level() -> None:
    entries = [
        _entry("gevent/a.so", 30),
        _entry("gevent/b.py", 10),
        _entry("plugin/main.py", 5, "plugin"),
        _entry("plugin/x.yaml", 5, "plugin"),
        _entry("six.py", 20),
    ]
    assert largest_contributors(entries) == [("gevent", 40), ("six.py", 20), ("plugin", 10)]
    assert largest_contributors(entries, 1) == [("gevent", 40)]


def test_size_limit() -> None:
    entries = [_entry(f"pkg{i}/m.so", 1024 * 1024) for i in range(12)]
    assert check_unzipped_size(entries, 12 * 1024 * 1024) == 12 * 1024 * 1024
    with pytest.raises(ArtifactTooLargeError) as info:
        check_unzipped_size(entries, 11 * 1024 * 1024)
    text = str(info.value)
    assert "12.0 MB unzipped, over the 11.0 MB limit" in text
    assert text.count("(1.0 MB)") == 10


def test_entry_modes() -> None:
    assert entry_mode(True) == 0o100755
    assert entry_mode(False) == 0o100644


def test_listed_line_matches_normalized_names() -> None:
    assert (
        _listed_line(["Foo_Bar>=1 ; python_version>'3'", "x"], "foo-bar==2")
        == "Foo_Bar>=1 ; python_version>'3'"
    )
    assert _listed_line(["x"], "transitive") is None
