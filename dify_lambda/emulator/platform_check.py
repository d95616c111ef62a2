"""Refuse an artifact built for another architecture or Python than ``serve`` would run it on.

Binary wheels only load on the platform they were built for: an arm64 artifact run on x86_64 dies
deep inside the plugin's imports (``ModuleNotFoundError: pydantic_core._pydantic_core``). ``serve``
says so first, in one line, from the cheapest evidence that names the platform:

1. ``build-report.json`` (``architecture``, ``python``) next to the artifact;
2. the wheel tags in ``*.dist-info/WHEEL`` at the artifact root (``cp312-cp312-manylinux_2_17_x86_64``);
3. the ELF header (``e_machine``) and the ``cpython-3XY`` suffix of the first extension module found.

Pure-Python artifacts carry no platform evidence and run anywhere.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dify_lambda.emulator.errors import ArtifactPlatformError

__all__ = ["Evidence", "check_platform", "host_arch", "tree_evidence"]

#: ``platform.machine()`` spellings -> Lambda's architecture names.
_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
#: ELF ``e_machine`` values (System V ABI) of the two Lambda architectures.
_ELF_MACHINES = {62: "x86_64", 183: "arm64"}
_ABI = re.compile(r"cp3(\d+)t?\Z")
_SO_PYTHON = re.compile(r"\.cpython-3(\d+)t?-")


@dataclass(frozen=True)
class Evidence:
    """What one source says about the artifact's platform (None: it does not say)."""

    source: str
    arch: str | None = None
    python: str | None = None


def host_arch() -> str:
    machine = platform.machine()
    return _MACHINES.get(machine.lower(), machine)


def _arch_of_platform_tag(tag: str) -> str | None:
    for part in tag.split("."):
        if part.endswith("x86_64"):
            return "x86_64"
        if part.endswith("aarch64"):
            return "arm64"
    return None


def _wheel_evidence(root: Path) -> Iterator[Evidence]:
    for wheel in sorted(root.glob("*.dist-info/WHEEL")):
        try:
            lines = wheel.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition(":")
            if key.strip() != "Tag":
                continue
            parts = value.strip().split("-")
            if len(parts) != 3:
                continue
            abi = _ABI.match(parts[1])
            arch = _arch_of_platform_tag(parts[2])
            if abi or arch:
                yield Evidence(f"{wheel.parent.name}/WHEEL", arch, f"3.{abi.group(1)}" if abi else None)
                break


def _elf_arch(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return _ELF_MACHINES.get(machine, f"ELF machine {machine}")


def _extension_evidence(root: Path) -> Evidence | None:
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            if name.endswith(".so") or ".so." in name:
                path = Path(dirpath) / name
                arch = _elf_arch(path)
                match = _SO_PYTHON.search(name)
                if arch or match:
                    rel = path.relative_to(root).as_posix()
                    return Evidence(rel, arch, f"3.{match.group(1)}" if match else None)
    return None


def tree_evidence(root: Path) -> list[Evidence]:
    """Evidence from the unpacked tree: wheel tags, then the first extension module."""
    found = list(_wheel_evidence(root))
    ext = _extension_evidence(root)
    if ext is not None:
        found.append(ext)
    return found


def report_evidence(report: Mapping[str, Any] | None, name: str) -> Evidence | None:
    if not report:
        return None
    function = report.get("function")  # the recorded FunctionSpec (report schema 2)
    arch = function.get("architecture") if isinstance(function, Mapping) else None
    python = report.get("python")
    return Evidence(name, str(arch) if arch else None, str(python) if python else None)


def check_platform(
    evidence: list[Evidence], *, python: str, python_source: str, arch: str | None = None
) -> None:
    """Raise :class:`ArtifactPlatformError` (one line) when any evidence contradicts this host/Python."""
    here = arch or host_arch()
    for item in evidence:
        if item.arch is not None and item.arch != here:
            fix = (
                f"rebuild with --arch {here}"
                if here in _ELF_MACHINES.values()
                else "serve it on a matching machine"
            )
            raise ArtifactPlatformError(
                f"the artifact is built for {item.arch} ({item.source}) but this machine is {here}: "
                f"its binary wheels cannot load here; {fix}"
            )
        if item.python is not None and item.python != python:
            raise ArtifactPlatformError(
                f"the artifact is built for Python {item.python} ({item.source}) but serve would run it on "
                f"Python {python} ({python_source}): pass --python {item.python} "
                f"or rebuild with --python {python}"
            )
