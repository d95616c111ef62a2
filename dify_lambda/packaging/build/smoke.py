"""Build-time proof that the artifact can start: the SDK range check and a smoke init.

``check_sdk_range`` compares the resolved ``dify_plugin`` with the range the handler serves (the
handler's own :func:`~dify_lambda.handlers.plugin.check_sdk_version`, one definition of the range).

``smoke_init`` unpacks the artifact into a temporary directory and loads the plugin there the way the
Lambda init does: a fresh interpreter of the target Python, isolated (``-I -S``: no user site, no
host site-packages, no ``PYTHON*`` variables), the environment cleared down to what Lambda sets plus
the function's own variables from the template (``/var/task`` mapped to the unpacked root; URL auth and
secret settings left out, since they would reach AWS), the
working directory at the task root with the task root first on ``sys.path`` (as the runtime's
bootstrap does), then the streaming loop's own init (``dify_lambda.handlers.stream.load_application``).
What loaded (providers and their predefined models) goes into the build report. It runs only when
this host can run the target: same machine architecture and the target's Python found locally
(:func:`~dify_lambda.packaging.interpreters.find_interpreter`); otherwise it is skipped with a note.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dify_lambda import wire
from dify_lambda.errors import BuildError
from dify_lambda.packaging.build.options import Target
from dify_lambda.packaging.interpreters import find_interpreter

__all__ = [
    "SdkRangeError",
    "SmokeInitError",
    "SmokeResult",
    "check_sdk_range",
    "host_can_run",
    "lambda_environment",
    "smoke_init",
    "unpack_parent",
]

LAMBDA_TASK_ROOT = wire.LAMBDA_TASK_ROOT
#: Left out of the smoke init: the wrapper (the probe runs the loop's init itself) and the URL auth and
#: secret settings, which would reach AWS at init; the smoke init proves the plugin loads, not the auth.
_NOT_IN_SMOKE = frozenset(
    {
        "AWS_LAMBDA_EXEC_WRAPPER",
        wire.ENV_URL_AUTH,
        wire.ENV_SECRET,
        wire.ENV_SECRET_ARN,
        wire.ENV_SECRET_PARAMETER,
    }
)
_TIMEOUT = 600
_MAX_LINE = 400
#: A memory-backed directory for the unpacked copy, when the host has one (Linux).
_MEMORY_DIR = Path("/dev/shm")


class SdkRangeError(BuildError):
    """The resolved ``dify_plugin`` is outside the range the handler serves."""


class SmokeInitError(BuildError):
    """The built artifact cannot load its plugin."""


def check_sdk_range(distributions: Mapping[str, str]) -> str:
    """The resolved ``dify_plugin`` version; raises :class:`SdkRangeError` outside the handler's range."""
    from dify_lambda.handlers.errors import UnsupportedSdkError
    from dify_lambda.handlers.plugin import check_sdk_version

    version = next(
        (v for n, v in distributions.items() if n.lower().replace("-", "_") == "dify_plugin"), None
    )
    if version is None:
        raise SdkRangeError(
            "the resolved dependencies do not include dify_plugin: add it to the plugin's requirements"
        )
    try:
        check_sdk_version(version)
    except UnsupportedSdkError as exc:
        raise SdkRangeError(str(exc).replace("rebuild the function with", "pin")) from None
    return version


@dataclass(frozen=True, slots=True)
class SmokeResult:
    """``status`` is ``passed`` or ``skipped`` (with ``note``); a failure raises instead."""

    status: str
    note: str = ""
    seconds: float = 0.0
    sdk_version: str = ""
    #: Provider name -> its predefined models (``type/model``), as the loaded plugin reports them.
    providers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: True when this very artifact passed on an earlier build (smoke_cache.py) and was not loaded again.
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "cached": self.cached,
            "note": self.note,
            "seconds": self.seconds,
            "sdk_version": self.sdk_version,
            "providers": [{"name": n, "models": list(m)} for n, m in self.providers.items()],
        }


def _host_machine() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def host_can_run(target: Target) -> tuple[Path | None, str]:
    """(interpreter, "") when this host can run ``target``, else (None, why not)."""
    host = _host_machine()
    if host != target.machine:
        return None, f"this host is {host}, the artifact is {target.arch}"
    interpreter = find_interpreter(target.python)
    if interpreter is None:
        return (
            None,
            f"no local Python {target.python} (set DIFY_LAMBDA_PYTHON{target.python.replace('.', '')})",
        )
    return interpreter, ""


def lambda_environment(
    target: Target, task_root: Path, function_env: Mapping[str, str], tmp: Path
) -> dict[str, str]:
    """The variables Lambda sets for a function, with ``/var/task`` mapped to ``task_root`` (pure)."""
    env = {
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{target.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": "dify-lambda-smoke",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(target.memory_mb),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "TMPDIR": str(tmp),
        "HOME": str(tmp),
    }
    for key, value in function_env.items():
        if key in _NOT_IN_SMOKE:
            continue
        under_root = value == LAMBDA_TASK_ROOT or value.startswith(LAMBDA_TASK_ROOT + "/")
        env[key] = str(task_root) + value[len(LAMBDA_TASK_ROOT) :] if under_root else value
    return env


def _unpack(artifact: Path, dest: Path) -> None:
    # The artifact is ours (written by write_zip moments ago), so plain extraction is safe.
    with zipfile.ZipFile(artifact) as zf:
        for info in zf.infolist():
            path = dest / info.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, path.open("wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                path.chmod(mode)


def unpack_parent(unzipped: int, memory_dir: Path = _MEMORY_DIR) -> Path | None:
    """Where the smoke init unpacks: ``memory_dir`` when it is a writable, exec-allowed directory with
    room for twice the artifact, else None (the system temporary directory).

    The unpacked copy lives a few seconds; on disk, writing and deleting its 100+ MB of small files
    was the smoke init's largest cost. ``noexec`` mounts are passed over: extension modules could not
    be mapped from them.
    """
    try:
        st = os.statvfs(memory_dir)
    except OSError:
        return None
    if st.f_flag & (os.ST_NOEXEC | os.ST_RDONLY) or not os.access(memory_dir, os.W_OK | os.X_OK):
        return None
    return memory_dir if st.f_bavail * st.f_frsize > 2 * unzipped else None


def _probe_source() -> str:
    return (Path(__file__).with_name("smoke_probe.py")).read_text("utf-8")


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else "no output"
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "..."


def smoke_init(
    artifact: Path,
    target: Target,
    function_env: Mapping[str, str],
    cache: SmokeCacheLike | None = None,
    artifact_sha256: str = "",
) -> SmokeResult:
    """Load the plugin from the unpacked ``artifact``; raise :class:`SmokeInitError` when it cannot.

    With a ``cache`` and the artifact's SHA-256, a pass of the same artifact on the same interpreter
    is reused instead of loading it again (smoke_cache.py).
    """
    interpreter, why_not = host_can_run(target)
    if interpreter is None:
        return SmokeResult("skipped", f"smoke init skipped: {why_not}")
    key = (
        cache.key(artifact_sha256, interpreter, function_env, _probe_source())
        if cache and artifact_sha256
        else ""
    )
    if cache is not None and key:
        found = cache.lookup(key)
        if found is not None:
            return found
    result = _run_smoke(artifact, target, function_env, interpreter)
    if cache is not None and key and result.status == "passed":
        cache.store(key, result)
    return result


class SmokeCacheLike(Protocol):
    def key(
        self, artifact_sha256: str, interpreter: Path, function_env: Mapping[str, str], probe: str
    ) -> str: ...
    def lookup(self, key: str) -> SmokeResult | None: ...
    def store(self, key: str, result: SmokeResult) -> None: ...


def _run_smoke(
    artifact: Path, target: Target, function_env: Mapping[str, str], interpreter: Path
) -> SmokeResult:
    started = time.perf_counter()
    with zipfile.ZipFile(artifact) as zf:
        unzipped = sum(info.file_size for info in zf.infolist())
    parent = unpack_parent(unzipped)
    with tempfile.TemporaryDirectory(prefix="dify-lambda-smoke-", dir=parent) as tmp_name:
        tmp = Path(tmp_name)
        root, scratch = tmp / "task", tmp / "tmp"
        root.mkdir()
        scratch.mkdir()
        _unpack(artifact, root)
        out_file = scratch / "smoke.json"
        env = lambda_environment(target, root, function_env, scratch)
        try:
            proc = subprocess.run(
                [str(interpreter), "-I", "-S", "-c", _probe_source(), str(root), str(out_file)],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SmokeInitError(f"the plugin did not finish loading within {_TIMEOUT} s") from None
        try:
            doc = json.loads(out_file.read_text("utf-8"))
        except (OSError, ValueError):
            doc = None
    return smoke_result(doc, proc.stderr or proc.stdout, time.perf_counter() - started)


def smoke_result(doc: Any, output: str, seconds: float) -> SmokeResult:
    """What the probe's JSON document (or, without one, its output) says about the plugin."""
    if isinstance(doc, dict) and doc.get("sandbox"):
        # No network namespace here: the probe stopped before any plugin code ran.
        why = _one_line(str(doc["sandbox"]))
        return SmokeResult(
            "skipped",
            f"smoke init skipped: this host cannot cut the plugin off the network ({why});"
            " the plugin's code was not run here",
        )
    if not isinstance(doc, dict) or not doc.get("ok"):
        error = doc.get("error") if isinstance(doc, dict) else None
        reason = _one_line(str(error)) if error else _one_line(output)
        raise SmokeInitError(
            f"the plugin cannot load from the artifact: {reason} (--no-smoke skips this check)"
        )
    providers = {str(p["name"]): tuple(str(m) for m in p.get("models", ())) for p in doc.get("providers", ())}
    return SmokeResult(
        "passed",
        str(doc.get("note", "")),
        round(seconds, 3),
        str(doc.get("sdk_version", "")),
        providers,
    )
