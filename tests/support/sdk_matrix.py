"""The SDK matrix: one virtualenv per ``dify_plugin`` release, built once and cached, for conformance runs.

Each release gets ``.cache/sdk-matrix/<version>/`` (gitignored): ``python -m venv`` from the test
interpreter, ``pip install dify-plugin==<version>`` plus what the handler needs next to it, and a
``.pth`` file putting this checkout on ``sys.path`` (the handler's code is the checkout's, never a
copy). A ``.installed`` stamp marks a finished venv; a lock file serialises concurrent builders.
The release of the project venv itself (``.[dev]``) needs no extra venv.

``DIFY_LAMBDA_SDK_MATRIX`` picks the releases: unset or ``ci`` (the oldest supported minor, 0.6,
0.9 and the project's own), ``all`` (the newest patch of every supported minor, plus the 0.9.0 and
0.10.0 that official plugins lock; every release in both SDK import modes), or a comma-separated
list of versions.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from dify_lambda.handlers.sdk_versions import parse_version

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "sdk-matrix"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
MATRIX_ENV = "DIFY_LAMBDA_SDK_MATRIX"
#: What the handler imports besides the SDK (and the pydantic/yaml the SDK brings).
HANDLER_REQUIREMENTS = ("aws-lambda-powertools>=3.0,<4",)

#: The newest release of each supported minor (docs/handler.md), and the locks official plugins use.
EVERY_MINOR = ("0.2.4", "0.3.5", "0.4.5", "0.5.1", "0.6.2", "0.7.4", "0.8.0", "0.9.1", "0.10.2")
ALSO_PINNED = ("0.9.0", "0.10.0")
#: The CI subset: the oldest minor, the article's MockGPT pin, the official plugins' most common
#: lock; the project venv adds the newest 0.10.
CI = ("0.2.4", "0.6.2", "0.9.0")

__all__ = ["MATRIX_ENV", "SdkRelease", "is_full_matrix", "matrix", "project_sdk_version", "sdk_python"]


class SdkRelease(tuple[int, int, int]):
    """A release as (major, minor, patch), printable as its version string."""

    @classmethod
    def of(cls, version: str) -> SdkRelease:
        parsed = parse_version(version)
        if parsed is None:
            raise ValueError(f"{MATRIX_ENV}: {version[:40]!r} is not a dify_plugin version")
        return cls(parsed)

    def __str__(self) -> str:
        return ".".join(str(part) for part in self)


def project_sdk_version() -> str:
    """The release installed in the project venv (this interpreter's, which is the same venv)."""
    return metadata.version("dify_plugin")


def is_full_matrix(env: dict[str, str] | None = None) -> bool:
    """``DIFY_LAMBDA_SDK_MATRIX=all``: every release also in the ``full`` import mode."""
    return (os.environ if env is None else env).get(MATRIX_ENV, "").strip() == "all"


def matrix(env: dict[str, str] | None = None) -> list[str]:
    """The versions to run, oldest first, without duplicates."""
    raw = (os.environ if env is None else env).get(MATRIX_ENV, "").strip()
    own = project_sdk_version()
    if raw in ("", "ci"):
        chosen = [*CI, own]
    elif raw == "all":
        chosen = [*EVERY_MINOR, *ALSO_PINNED, own]
    else:
        chosen = [part.strip() for part in raw.split(",") if part.strip()]
    return sorted(set(chosen), key=SdkRelease.of)


def sdk_python(version: str) -> Path:
    """The interpreter of the venv that has ``dify-plugin==version``; builds it on first use."""
    if version == project_sdk_version():
        return PROJECT_PYTHON if PROJECT_PYTHON.exists() else Path(sys.executable)
    venv = CACHE / version
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if stamp.exists():
        return python
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            _build(venv, version)
            stamp.touch()
    return python


def _build(venv: Path, version: str) -> None:
    # The project venv's pip installs into a pip-less venv, without compiling every module (a
    # quarter of the time); importing the SDK once then compiles what the tests run.
    subprocess.run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    install += ["--no-compile", "--disable-pip-version-check", f"dify-plugin=={version}"]
    result = subprocess.run([*install, *HANDLER_REQUIREMENTS], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise RuntimeError(f"could not install dify-plugin=={version} into {venv}:\n{tail}")
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "dify_lambda_checkout.pth").write_text(f"{ROOT}\n", encoding="utf-8")
    warm = (
        "import dify_plugin, dify_plugin.plugin, aws_lambda_powertools.logging, aws_lambda_powertools.metrics"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([str(python), "-c", warm], capture_output=True, check=True, env=env)
