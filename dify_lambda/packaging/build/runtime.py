"""The slice of dify_lambda shipped in the artifact, and what it imports.

Only ``dify_lambda/__init__.py``, ``errors.py``, ``wire.py``, ``py.typed`` and ``dify_lambda/handlers/**``
are shipped. Their imports are read with :mod:`ast` (nothing is executed): an import of another
dify_lambda part is a build error, and third-party imports decide the runtime requirements.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dify_lambda.errors import BuildError

__all__ = [
    "FORBIDDEN_TOP_LEVEL",
    "PROVIDED_BY_LAMBDA",
    "RUNTIME_REQUIREMENTS",
    "RuntimeFiles",
    "collect_runtime_files",
    "imports_of",
    "runtime_requirements",
]

_TOP_FILES = ("__init__.py", "errors.py", "wire.py", "py.typed")
_ALLOWED_INTERNAL = ("dify_lambda", "dify_lambda.errors", "dify_lambda.wire")
#: Import name -> requirement line added to the plugin's requirements when the runtime imports it.
RUNTIME_REQUIREMENTS: Mapping[str, str] = {
    "aws_lambda_powertools": "aws-lambda-powertools>=3.0,<4",
    "pydantic": "pydantic>=2.11,<3",
}
#: Importable on Lambda without shipping (the managed Python runtime has them), or the plugin's.
PROVIDED_BY_LAMBDA = frozenset({"boto3", "botocore", "s3transfer", "awslambdaric", "snapshot_restore_py"})
#: The plugin's own requirements bring these (the handler imports them inside the plugin process).
PROVIDED_BY_PLUGIN = frozenset({"dify_plugin", "gevent", "yaml"})
#: Never in an artifact: the host-side parts of dify_lambda and the AWS SDK / test doubles.
FORBIDDEN_TOP_LEVEL = (
    "dify_lambda/packaging/",
    "dify_lambda/router/",
    "dify_lambda/infra/",
    "dify_lambda/cli/",
    "dify_lambda/emulator/",
    "boto3/",
    "botocore/",
    "moto/",
)


@dataclass(frozen=True, slots=True)
class RuntimeFiles:
    """Artifact path -> source file of the shipped runtime, plus the third-party modules it imports."""

    files: Mapping[str, Path]
    third_party: frozenset[str]


def imports_of(source: str, module: str, filename: str) -> set[str]:
    """Absolute names of every module ``source`` imports (relative imports resolved against ``module``)."""
    tree = ast.parse(source, filename=filename)
    package = module.rsplit(".", 1)[0] if not filename.endswith("__init__.py") else module
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.add(name)
            # ``from pkg import sub`` may import a submodule: record both spellings.
            found.update(f"{name}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def _check_internal(imported: Iterable[str], where: str) -> None:
    for name in imported:
        if not name.startswith("dify_lambda"):
            continue
        if name in _ALLOWED_INTERNAL or name.startswith("dify_lambda.handlers"):
            continue
        if name.startswith(("dify_lambda.errors.", "dify_lambda.wire.")):
            continue  # ``from dify_lambda.wire import X`` recorded as dify_lambda.wire.X
        raise BuildError(
            f"{where} imports {name}, which is not shipped in the Lambda artifact "
            "(only dify_lambda.errors, dify_lambda.wire and dify_lambda.handlers are)"
        )


def collect_runtime_files(package_root: Path) -> RuntimeFiles:
    """Files of the shipped runtime under ``package_root`` (the ``dify_lambda`` directory)."""
    files: dict[str, Path] = {}
    for name in _TOP_FILES:
        path = package_root / name
        if not path.is_file():
            raise BuildError(f"runtime file dify_lambda/{name} is missing from {package_root}")
        files[f"dify_lambda/{name}"] = path
    handlers = package_root / "handlers"
    if not (handlers / "__init__.py").is_file():
        raise BuildError(f"runtime package dify_lambda/handlers is missing from {package_root}")
    for path in sorted(handlers.rglob("*")):
        rel = path.relative_to(package_root).as_posix()
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files[f"dify_lambda/{rel}"] = path
    third_party: set[str] = set()
    for arcname, path in files.items():
        if not arcname.endswith(".py"):
            continue
        module = arcname.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        imported = imports_of(path.read_text("utf-8"), module, arcname)
        _check_internal(imported, arcname)
        third_party.update(
            top
            for top in (n.split(".")[0] for n in imported)
            if top and top != "dify_lambda" and top not in sys.stdlib_module_names and top != "__future__"
        )
    return RuntimeFiles(files=files, third_party=frozenset(third_party))


def runtime_requirements(third_party: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(requirement lines to add, imports neither mapped nor provided: reported as notes)."""
    lines: list[str] = []
    unknown: list[str] = []
    for top in sorted(set(third_party)):
        if top in RUNTIME_REQUIREMENTS:
            lines.append(RUNTIME_REQUIREMENTS[top])
        elif top not in PROVIDED_BY_LAMBDA and top not in PROVIDED_BY_PLUGIN:
            unknown.append(top)
    # wire.py needs pydantic whatever the handlers import.
    if RUNTIME_REQUIREMENTS["pydantic"] not in lines:
        lines.append(RUNTIME_REQUIREMENTS["pydantic"])
    return tuple(sorted(lines)), tuple(unknown)
