"""Option resolution against manifest values (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dify_lambda.errors import UnsupportedTargetError
from dify_lambda.packaging.build.options import (
    MAX_MEMORY_MB,
    MEMORY_FLOOR_MB,
    BuildOptions,
    choose_memory,
    default_cache_dir,
    memory_mb_from_bytes,
    resolve_target,
)

MIB = 1024 * 1024


def resolve(options: BuildOptions | None = None, arch=("amd64", "arm64"), runner="3.12", memory=2048 * MIB):
    return resolve_target(
        options or BuildOptions(), declared_arch=list(arch), runner_version=runner, resource_memory=memory
    )


def test_defaults_come_from_the_manifest() -> None:
    target = resolve()
    assert (target.arch, target.python, target.memory_mb, target.timeout, target.url_auth) == (
        "x86_64",
        "3.12",
        2048,
        900,
        "AWS_IAM",
    )
    assert target.memory_reason == "from the manifest's resource.memory"
    assert target.runtime == "python3.12"
    assert target.abi == "cp312"
    assert target.machine == "x86_64"


def test_arm64_only_manifest_defaults_to_arm64() -> None:
    target = resolve(arch=("arm64",))
    assert target.arch == "arm64"
    assert target.machine == "aarch64"


def test_explicit_options_win() -> None:
    target = resolve(BuildOptions(arch="arm64", python="3.13", memory_mb=2048, timeout=60, url_auth="NONE"))
    assert (target.arch, target.python, target.memory_mb, target.timeout, target.url_auth) == (
        "arm64",
        "3.13",
        2048,
        60,
        "NONE",
    )
    assert target.abi == "cp313"


@pytest.mark.parametrize("python", ["3.11", "3.14", "2.7", "python3.12"])
def test_unsupported_python_names_the_flag(python: str) -> None:
    with pytest.raises(UnsupportedTargetError, match=r"--python .*3\.12, 3\.13"):
        resolve(BuildOptions(python=python))


@pytest.mark.parametrize("runner", ["3.10", "3.11", "3.14", "", "python3"])
def test_an_unserved_manifest_python_builds_for_the_oldest_served_one(runner: str) -> None:
    # As the daemon does: it installs every plugin on its own Python whatever the manifest says.
    target = resolve(runner=runner)
    assert target.python == "3.12"
    assert "meta.runner.version is not a served Lambda Python" in target.python_note
    assert "--python" in target.python_note
    # The note never carries the manifest's value (it may be anything).
    assert target.python_note == resolve(runner="2.7").python_note


@pytest.mark.parametrize("runner", ["3.12", "3.13"])
def test_a_served_manifest_python_is_used_without_a_note(runner: str) -> None:
    target = resolve(runner=runner)
    assert (target.python, target.python_note) == (runner, "")


@pytest.mark.parametrize("arch", ["amd64", "aarch64", "sparc", ""])
def test_unknown_architecture(arch: str) -> None:
    with pytest.raises(UnsupportedTargetError, match="--arch"):
        resolve(BuildOptions(arch=arch))


def test_architecture_not_declared_by_the_manifest() -> None:
    with pytest.raises(UnsupportedTargetError, match=r"meta\.arch \(amd64\)"):
        resolve(BuildOptions(arch="arm64"), arch=("amd64",))


@pytest.mark.parametrize(
    ("memory_bytes", "expected"),
    [(1, 1), (1048576, 1), (128 * MIB, 128), (256 * MIB + 1, 257), (64 * 1024 * MIB, 65536)],
)
def test_memory_conversion_rounds_up(memory_bytes: int, expected: int) -> None:
    assert memory_mb_from_bytes(memory_bytes) == expected


@pytest.mark.parametrize(
    ("memory_bytes", "expected", "reason"),
    [
        (None, MEMORY_FLOOR_MB, "sets no resource.memory"),
        (1, MEMORY_FLOOR_MB, "resource.memory (1 MB) is below the"),
        ((MEMORY_FLOOR_MB - 1) * MIB, MEMORY_FLOOR_MB, f"({MEMORY_FLOOR_MB - 1} MB) is below"),
        (MEMORY_FLOOR_MB * MIB, MEMORY_FLOOR_MB, "from the manifest"),
        (3000 * MIB, 3000, "from the manifest"),
        (64 * 1024 * MIB, MAX_MEMORY_MB, "(65536 MB) is above Lambda's 10240 MB maximum"),
    ],
)
def test_memory_default_is_never_changed_silently(
    memory_bytes: int | None, expected: int, reason: str
) -> None:
    memory, why = choose_memory(None, memory_bytes)
    assert memory == expected
    assert reason in why


def test_explicit_memory_below_the_floor_is_kept() -> None:
    assert choose_memory(128, 4096 * MIB) == (128, "from --memory")


@pytest.mark.parametrize("memory", [64, 10241])
def test_explicit_memory_out_of_range(memory: int) -> None:
    with pytest.raises(UnsupportedTargetError, match="--memory"):
        resolve(BuildOptions(memory_mb=memory))


@pytest.mark.parametrize("timeout", [0, 901])
def test_timeout_out_of_range(timeout: int) -> None:
    with pytest.raises(UnsupportedTargetError, match="--timeout"):
        resolve(BuildOptions(timeout=timeout))


def test_unknown_url_auth() -> None:
    with pytest.raises(UnsupportedTargetError, match="--url-auth 'PUBLIC'"):
        resolve(BuildOptions(url_auth="PUBLIC"))


def test_default_cache_dir_honours_the_environment() -> None:
    assert default_cache_dir({"DIFY_LAMBDA_CACHE": "/srv/cache"}) == Path("/srv/cache")
    assert default_cache_dir({}).parts[-2:] == (".cache", "dify-lambda")
