"""What ``serve PATH`` runs: a built artifact (zip, build directory or unpacked tree) or a plugin source.

An artifact runs exactly as Lambda starts it: the exec wrapper, with ``LAMBDA_TASK_ROOT`` and
``PYTHONPATH`` at the artifact root and a local interpreter of the artifact's Python version as
``DIFY_LAMBDA_PYTHON``. A plugin source directory runs the loop with the current interpreter and
this checkout's ``dify_lambda`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dify_lambda import wire
from dify_lambda.emulator.errors import ServeTargetError
from dify_lambda.emulator.function_env import function_environment, template_function
from dify_lambda.emulator.platform_check import check_platform, report_evidence, tree_evidence
from dify_lambda.emulator.unpack import cached_unpack, safe_extract, sha256_of
from dify_lambda.errors import BuildError
from dify_lambda.packaging.layout import ARTIFACT_FILE, REPORT_FILE, TEMPLATE_FILE, default_cache_dir
from dify_lambda.packaging.sam import load_template

__all__ = ["ServeTarget", "resolve_target"]


@dataclass
class ServeTarget:
    """A runnable worker command, its environment and the plugin it serves."""

    kind: str  # "artifact" or "source"
    root: Path
    plugin_id: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    #: A temporary extraction directory to delete on close.
    scratch: Path | None = None
    notes: list[str] = field(default_factory=list)

    def cleanup(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


def _manifest(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_bytes())
    except (OSError, yaml.YAMLError) as exc:
        raise ServeTargetError(f"{path}: cannot read the plugin manifest ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or not doc.get("name"):
        raise ServeTargetError(f"{path}: not a plugin manifest (no 'name')")
    return doc


def _plugin_id(doc: dict[str, Any]) -> str:
    author = str(doc.get("author") or "").strip()
    name = str(doc["name"]).strip()
    return f"{author}/{name}" if author else name


def _runner_version(doc: dict[str, Any]) -> str:
    runner = (doc.get("meta") or {}).get("runner") or {}
    return str(runner.get("version") or "").strip()


def _is_unpacked_artifact(path: Path) -> bool:
    return (path / wire.EXEC_WRAPPER).is_file() and (path / "plugin" / "manifest.yaml").is_file()


def _read_report(build_dir: Path | None) -> dict[str, Any] | None:
    if build_dir is None or not (build_dir / REPORT_FILE).is_file():
        return None
    try:
        report = json.loads((build_dir / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ServeTargetError(f"{build_dir / REPORT_FILE}: not valid JSON") from None
    return report if isinstance(report, dict) else None


def _read_template(build_dir: Path | None) -> dict[str, Any] | None:
    if build_dir is None or not (build_dir / TEMPLATE_FILE).is_file():
        return None
    path = build_dir / TEMPLATE_FILE
    try:
        return load_template(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ServeTargetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except BuildError as exc:
        raise ServeTargetError(str(exc)) from None


def _artifact_python(
    report: dict[str, Any] | None, manifest: dict[str, Any], override: str | None
) -> tuple[str, str]:
    """The Python to run the artifact on, and where that choice came from."""
    if override:
        return override, "--python"
    version = str((report or {}).get("python") or "").strip()
    if version:
        return version, REPORT_FILE
    version = _runner_version(manifest)
    if not version:
        raise ServeTargetError("plugin/manifest.yaml has no meta.runner.version; pass --python")
    return version, "plugin/manifest.yaml meta.runner.version"


def _local_interpreter(version: str) -> Path:
    from dify_lambda.packaging.interpreters import find_interpreter

    key = wire.ENV_PYTHON + version.replace(".", "")
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    base = Path(sys.base_prefix) / "bin" / f"python{version}"
    if version == here and not os.environ.get(key) and os.access(base, os.X_OK):
        # This process's base interpreter (outside any venv) is the right version: no need to
        # probe candidates, which costs a subprocess each (half a second through a pyenv shim).
        return base
    found = find_interpreter(version)
    if found is None:
        raise ServeTargetError(
            f"no local Python {version} found to run the artifact; install it or set {key}"
        )
    return found


def _check_unpacked(where: Path, label: Path) -> None:
    if not _is_unpacked_artifact(where):
        raise ServeTargetError(
            f"{label}: not a dify-lambda artifact (no {wire.EXEC_WRAPPER} or plugin/manifest.yaml)"
        )


def _unpack(
    zip_path: Path, cache_dir: Path | None, use_cache: bool, notes: list[str]
) -> tuple[Path, Path | None, str | None]:
    """The unpacked root of ``zip_path``, the scratch directory to delete on close (None if cached)
    and the zip's sha256 when it was computed."""
    if use_cache:
        root_dir = cache_dir if cache_dir is not None else default_cache_dir()
        try:
            entry, digest = cached_unpack(zip_path, root_dir, lambda tree: _check_unpacked(tree, zip_path))
            return entry, None, digest
        except OSError as exc:
            notes.append(
                f"cannot use the unpack cache in {root_dir} ({exc.strerror or type(exc).__name__}); "
                "unpacking into a temporary directory"
            )
    scratch = Path(tempfile.mkdtemp(prefix="dify-lambda-serve-"))
    try:
        safe_extract(zip_path, scratch)
        _check_unpacked(scratch, zip_path)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return scratch, scratch, None


def resolve_target(
    path: Path,
    *,
    python: str | None = None,
    env_vars: Mapping[str, Mapping[str, str]] | None = None,
    env: Mapping[str, str] | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> ServeTarget:
    """Classify ``path`` and build the worker command and the function's environment.

    A zip is unpacked once per content into ``<cache_dir>/serve/<sha256>`` (``cache_dir`` defaults to
    the dify-lambda cache root); ``use_cache=False`` unpacks into a temporary directory deleted on close.
    ``env_vars`` is a loaded ``--env-vars`` file (``function_env.load_env_vars_file``), ``env`` the
    ``--env`` assignments (``serve()`` applies them last; here they only settle the notes).
    """
    path = path.expanduser().resolve()
    if not path.exists():
        raise ServeTargetError(f"{path}: no such file or directory")
    build_dir: Path | None = None
    root: Path | None = None
    zip_path: Path | None = None
    if path.is_file():
        # The build report and template beside a zip describe it only if it is the build's artifact.
        zip_path, build_dir = path, (path.parent if path.name == ARTIFACT_FILE else None)
    elif _is_unpacked_artifact(path):
        root, build_dir = path, path
    elif (path / ARTIFACT_FILE).is_file():
        zip_path, build_dir = path / ARTIFACT_FILE, path
    elif (path / "manifest.yaml").is_file():
        return _source_target(path, python, env_vars)
    else:
        raise ServeTargetError(
            f"{path}: neither a built artifact (artifact.zip, or {wire.EXEC_WRAPPER} + plugin/manifest.yaml) "
            "nor a plugin source directory (manifest.yaml)"
        )
    # Everything that can refuse the target without unpacking runs first.
    report = _read_report(build_dir)
    template = _read_template(build_dir)
    reported = report_evidence(report, REPORT_FILE)
    if reported is not None and (python or reported.python):
        check_platform(
            [reported],
            python=python or str(reported.python),
            python_source="--python" if python else REPORT_FILE,
        )
    notes: list[str] = []
    scratch: Path | None = None
    if zip_path is not None:
        root, scratch, digest = _unpack(zip_path, cache_dir, use_cache, notes)
        expected = str((report or {}).get("artifact_sha256") or "")
        if expected and expected != (digest or sha256_of(zip_path)):
            notes.append(
                f"{REPORT_FILE} describes another {ARTIFACT_FILE} (sha256 differs): "
                "the report and the template beside it may be stale"
            )
    assert root is not None
    try:
        manifest = _manifest(root / "plugin" / "manifest.yaml")
        version, source = _artifact_python(report, manifest, python)
        evidence = ([reported] if reported else []) + tree_evidence(root)
        check_platform(evidence, python=version, python_source=source)
        interpreter = _local_interpreter(version)
        wrapper = root / wire.EXEC_WRAPPER
        if not os.access(wrapper, os.X_OK):
            raise ServeTargetError(f"{wrapper} is not executable; Lambda could not start it either")
    except BaseException:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    region = os.environ.get("AWS_REGION") or "us-east-1"
    function = template_function(template, task_root=root, region=region) if template is not None else None
    function_env = function_environment(function, env_vars, env)
    notes.extend(function_env.notes)
    worker_env = {
        **function_env.variables,
        # What serve itself needs wins over the template (the template's paths are Lambda's).
        "LAMBDA_TASK_ROOT": str(root),
        "PYTHONPATH": str(root),
        wire.ENV_PYTHON: str(interpreter),
        "_HANDLER": wire.HANDLER,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{version}",
        "PYTHONNOUSERSITE": "1",
        # /var/task is read-only on Lambda; the unpacked tree is a shared cache entry here.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if function is not None and function.memory_mb is not None:
        worker_env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = function.memory_mb
    # Lambda runs the wrapper with the managed runtime's command line; the loop ignores it.
    command = [str(wrapper), str(interpreter), "-m", "awslambdaric", wire.HANDLER]
    return ServeTarget(
        kind="artifact",
        root=root,
        plugin_id=_plugin_id(manifest),
        command=command,
        env=worker_env,
        cwd=root,
        scratch=scratch,
        notes=notes,
    )


def _source_target(
    path: Path, python: str | None, env_vars: Mapping[str, Mapping[str, str]] | None
) -> ServeTarget:
    manifest = _manifest(path / "manifest.yaml")
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    notes = []
    if python and python != here:
        notes.append(f"--python {python} ignored: a plugin source directory runs on this Python ({here})")
    pin = _sdk_pin_note(path)
    if pin:
        notes.append(pin)
    repo = Path(__file__).resolve().parents[2]
    env = {
        # No template: every variable of the --env-vars file applies.
        **function_environment(None, env_vars).variables,
        "PYTHONPATH": str(repo),
        wire.ENV_PLUGIN_ROOT: str(path),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{here}",
    }
    return ServeTarget(
        kind="source",
        root=path,
        plugin_id=_plugin_id(manifest),
        command=[sys.executable, "-m", "dify_lambda.handlers.stream"],
        env=env,
        cwd=path,
        notes=notes,
    )


def _sdk_pin_note(path: Path) -> str | None:
    """A note when the plugin pins a ``dify_plugin`` this environment's release does not satisfy.

    A source directory runs on the SDK installed here, not on the one its requirements resolve to;
    the built artifact carries the pinned one. Unreadable requirements give no note (build reports them).
    """
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from dify_lambda.errors import PackageError
    from dify_lambda.packaging import requirements as reqs

    try:
        # The requirements the package step would ship, chosen by the same rule (requirements.txt first).
        files = {n: (path / n).read_bytes() for n in reqs.REQUIREMENT_SOURCES if (path / n).is_file()}
        generated = reqs.generate_requirements(path, files, exporter=None)
        text = generated.content if generated else files.get("requirements.txt")
        if text is None:
            return None
        lines = reqs.parse_requirements_text(text, "requirements")
    except (OSError, PackageError, BuildError):
        return None
    wanted = [r for r in map(Requirement, lines) if canonicalize_name(r.name) == "dify-plugin"]
    try:
        here = metadata.version("dify_plugin")
    except metadata.PackageNotFoundError:
        here = ""
    if not wanted or (here and all(r.specifier.contains(here, prereleases=True) for r in wanted)):
        return None
    pinned = ", ".join(str(r.specifier) or "any" for r in wanted)
    return (
        f"the plugin pins dify_plugin {pinned} but this environment has {here or 'none'}; a source directory"
        " runs on this environment's SDK: build it and serve the artifact to run the pinned release"
    )
