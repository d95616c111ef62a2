"""Find a local CPython interpreter of a given minor version (``"3.12"``, ``"3.13"``).

Used to byte-compile artifacts for their target Python and to run built artifacts locally.
Looks at ``$DIFY_LAMBDA_PYTHON<major><minor>`` (e.g. ``DIFY_LAMBDA_PYTHON312``), ``pythonX.Y`` on
``PATH`` (skipping pyenv shims that cannot run), then pyenv's installed versions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

from dify_lambda import wire

__all__ = ["find_interpreter"]


def _runs_as(candidate: str, version: str) -> bool:
    try:
        out = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == version


@cache
def find_interpreter(version: str) -> Path | None:
    """Return an interpreter path whose ``sys.version_info[:2]`` is ``version``, or None."""
    env = os.environ.get(wire.ENV_PYTHON + version.replace(".", ""))
    candidates: list[str] = [env] if env else []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = sorted((root / "versions").glob(f"{version}.*"), reverse=True)
    candidates.extend(str(v / "bin" / f"python{version}") for v in versions)
    for cand in candidates:
        if _runs_as(cand, version):
            return Path(cand)
    return None
