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
import stat
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from dify_lambda.emulator.errors import ServeTargetError
from dify_lambda.errors import UnsafePackageError
from dify_lambda.packaging.build import ARTIFACT_FILE, REPORT_FILE

__all__ = ["WRAPPER", "ServeTarget", "resolve_target"]

WRAPPER = "dify_lambda/handlers/exec_wrapper.sh"
BUFFERED_HANDLER = "dify_lambda.handlers.buffered.lambda_handler"
#: Lambda's unzipped code limit; a local zip above it is refused like Lambda would.
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024


@dataclass
class ServeTarget:
    """A runnable worker command, its environment and the plugin it serves."""

    kind: str  # "artifact" or "source"
    root: Path
    plugin_id: str
    python_version: str
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


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a zip refusing absolute paths, ``..``, symlinks and oversize content; keep mode bits."""
    try:
        zf = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ServeTargetError(f"{archive}: not a readable zip ({exc})") from None
    with zf:
        total = 0
        for info in zf.infolist():
            name = PurePosixPath(info.filename)
            if name.is_absolute() or ".." in name.parts or "\\" in info.filename:
                raise UnsafePackageError(f"{archive}: entry {info.filename!r} escapes the artifact root")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafePackageError(f"{archive}: entry {info.filename!r} is a symbolic link")
            total += info.file_size
            if total > MAX_UNZIPPED_BYTES:
                raise UnsafePackageError(f"{archive}: more than {MAX_UNZIPPED_BYTES} bytes unzipped")
        for info in zf.infolist():
            target = dest.joinpath(*PurePosixPath(info.filename).parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)


def _is_unpacked_artifact(path: Path) -> bool:
    return (path / WRAPPER).is_file() and (path / "plugin" / "manifest.yaml").is_file()


def _artifact_python(report_dir: Path | None, manifest: dict[str, Any], override: str | None) -> str:
    if override:
        return override
    if report_dir is not None and (report_dir / REPORT_FILE).is_file():
        try:
            report = json.loads((report_dir / REPORT_FILE).read_text())
        except (OSError, ValueError):
            raise ServeTargetError(f"{report_dir / REPORT_FILE}: not valid JSON") from None
        version = str(report.get("python") or "").strip() if isinstance(report, dict) else ""
        if version:
            return version
    version = _runner_version(manifest)
    if not version:
        raise ServeTargetError("plugin/manifest.yaml has no meta.runner.version; pass --python")
    return version


def _local_interpreter(version: str) -> Path:
    from dify_lambda.packaging.interpreters import find_interpreter

    found = find_interpreter(version)
    if found is None:
        key = "DIFY_LAMBDA_PYTHON" + version.replace(".", "")
        raise ServeTargetError(
            f"no local Python {version} found to run the artifact; install it or set {key}"
        )
    return found


def resolve_target(path: Path, *, python: str | None = None) -> ServeTarget:
    """Classify ``path`` and build the worker command; extracts zips into a temporary directory."""
    path = path.expanduser().resolve()
    if not path.exists():
        raise ServeTargetError(f"{path}: no such file or directory")
    scratch: Path | None = None
    report_dir: Path | None = None
    root: Path | None = None
    zip_path: Path | None = None
    if path.is_file():
        zip_path, report_dir = path, path.parent
    elif _is_unpacked_artifact(path):
        root, report_dir = path, path
    elif (path / ARTIFACT_FILE).is_file():
        zip_path, report_dir = path / ARTIFACT_FILE, path
    elif (path / "manifest.yaml").is_file():
        return _source_target(path, python)
    else:
        raise ServeTargetError(
            f"{path}: neither a built artifact (artifact.zip, or {WRAPPER} + plugin/manifest.yaml) "
            "nor a plugin source directory (manifest.yaml)"
        )
    if zip_path is not None:
        scratch = Path(tempfile.mkdtemp(prefix="dify-lambda-serve-"))
        try:
            safe_extract(zip_path, scratch)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        root = scratch
        if not _is_unpacked_artifact(root):
            shutil.rmtree(scratch, ignore_errors=True)
            raise ServeTargetError(
                f"{zip_path}: not a dify-lambda artifact (no {WRAPPER} or plugin/manifest.yaml)"
            )
    assert root is not None
    try:
        manifest = _manifest(root / "plugin" / "manifest.yaml")
        version = _artifact_python(report_dir, manifest, python)
        interpreter = _local_interpreter(version)
        wrapper = root / WRAPPER
        if not os.access(wrapper, os.X_OK):
            raise ServeTargetError(f"{wrapper} is not executable; Lambda could not start it either")
    except BaseException:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    env = {
        "LAMBDA_TASK_ROOT": str(root),
        "PYTHONPATH": str(root),
        "DIFY_LAMBDA_PYTHON": str(interpreter),
        "_HANDLER": BUFFERED_HANDLER,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{version}",
        "PYTHONNOUSERSITE": "1",
    }
    # Lambda runs the wrapper with the managed runtime's command line; the loop ignores it.
    command = [str(wrapper), str(interpreter), "-m", "awslambdaric", BUFFERED_HANDLER]
    return ServeTarget(
        kind="artifact",
        root=root,
        plugin_id=_plugin_id(manifest),
        python_version=version,
        command=command,
        env=env,
        cwd=root,
        scratch=scratch,
    )


def _source_target(path: Path, python: str | None) -> ServeTarget:
    manifest = _manifest(path / "manifest.yaml")
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    notes = []
    if python and python != here:
        notes.append(f"--python {python} ignored: a plugin source directory runs on this Python ({here})")
    repo = Path(__file__).resolve().parents[2]
    env = {
        "PYTHONPATH": str(repo),
        "DIFY_LAMBDA_PLUGIN_ROOT": str(path),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{here}",
    }
    return ServeTarget(
        kind="source",
        root=path,
        plugin_id=_plugin_id(manifest),
        python_version=here,
        command=[sys.executable, "-m", "dify_lambda.handlers.stream"],
        env=env,
        cwd=path,
        notes=notes,
    )
