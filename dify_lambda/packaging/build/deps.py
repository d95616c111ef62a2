"""Resolve and install a plugin's dependencies for Lambda (not for this machine).

Algorithm (:meth:`DependencyInstaller.install`):

1. ``pip install --target`` with ``--only-binary=:all:`` and the target's platform tags
   (manylinux2014 / manylinux_2_17 ... manylinux_2_34 for the architecture), ``--python-version``,
   ``--implementation cp`` and ``--abi cpXY`` (pip adds ``abi3``, ``none`` and ``any`` itself);
2. when pip reports a requirement with no compatible wheel, download its sdist and build a wheel
   with ``pip wheel --no-deps``; a ``py3-none-any`` wheel goes into a local wheelhouse
   (``--find-links``) and step 1 is retried; anything else is recorded as missing;
3. missing packages end the build with :class:`MissingWheelsError`, naming each one, its version
   when known, the target tag and what to do.

pip runs with the project's own interpreter (``sys.executable -m pip``); it is reached through a
:class:`PipRunner` so tests can inject a fake.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Protocol

from dify_lambda.errors import DependencyResolutionError
from dify_lambda.packaging.build.options import Target

__all__ = [
    "DependencyInstaller",
    "InstalledDistribution",
    "MissingWheel",
    "MissingWheelsError",
    "PipResult",
    "PipRunner",
    "SubprocessPip",
    "failed_requirement",
    "installed_distributions",
    "is_pure_wheel",
    "pip_install_args",
    "platform_tags",
]

#: Lambda python3.12/3.13 run on Amazon Linux 2023 (glibc 2.34).
_GLIBC_MINORS = (17, 28, 34)
_MAX_ROUNDS = 10


def platform_tags(target: Target) -> list[str]:
    """Every manylinux platform Lambda's glibc 2.34 accepts for the target machine, oldest first."""
    tags = [f"manylinux2014_{target.machine}"]
    tags.extend(f"manylinux_2_{minor}_{target.machine}" for minor in range(17, 35))
    return tags


@dataclass(frozen=True, slots=True)
class MissingWheel:
    name: str
    version: str | None
    tag: str
    reason: str


class MissingWheelsError(DependencyResolutionError):
    """No wheel compatible with the target for one or more requirements."""

    def __init__(self, missing: Sequence[MissingWheel]) -> None:
        self.missing = tuple(missing)
        parts = [
            f"{m.name}{' ' + m.version if m.version else ''} ({m.tag}): {m.reason}" for m in self.missing
        ]
        super().__init__(
            "no compatible wheel for " + "; ".join(parts) + ". Pin a version that publishes "
            "manylinux wheels for this Python and architecture, choose another --arch/--python, "
            "or build the wheel on Amazon Linux 2023 and pass its directory with --find-links"
        )


@dataclass(frozen=True, slots=True)
class PipResult:
    returncode: int
    output: str


class PipRunner(Protocol):
    def __call__(self, args: Sequence[str]) -> PipResult: ...


class SubprocessPip:
    """Runs ``<python> -m pip ARGS`` (the project's interpreter by default)."""

    def __init__(self, python: str = sys.executable, timeout: float = 1800) -> None:
        self.python = python
        self.timeout = timeout

    def __call__(self, args: Sequence[str]) -> PipResult:
        proc = subprocess.run(
            [self.python, "-m", "pip", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=self.timeout,
        )
        return PipResult(proc.returncode, proc.stdout + proc.stderr)


def _common(cache_dir: Path | None, find_links: Sequence[Path]) -> list[str]:
    args = ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    args += ["--cache-dir", str(cache_dir)] if cache_dir else ["--no-cache-dir"]
    for link in find_links:
        args += ["--find-links", str(link)]
    return args


def pip_install_args(
    target: Target,
    dest: Path,
    requirements_file: Path,
    *,
    cache_dir: Path | None = None,
    find_links: Sequence[Path] = (),
) -> list[str]:
    """The ``pip install`` arguments for the target platform (pure)."""
    args = ["install", "--target", str(dest), "--no-compile", "--only-binary=:all:"]
    for tag in platform_tags(target):
        args += ["--platform", tag]
    args += ["--python-version", target.python, "--implementation", "cp", "--abi", target.abi]
    args += _common(cache_dir, find_links)
    args += ["-r", str(requirements_file)]
    return args


_NO_MATCH_RE = re.compile(r"No matching distribution found for ([^\s]+(?:\s*[<>=!~][^\s]*)*)")
_NO_VERSION_RE = re.compile(r"Could not find a version that satisfies the requirement ([^\s]+)")


def failed_requirement(output: str) -> str | None:
    """The requirement pip could not satisfy, from its output (None when the failure is different)."""
    match = _NO_MATCH_RE.search(output) or _NO_VERSION_RE.search(output)
    return match.group(1).strip() if match else None


_SPLIT_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(.*)$")


def _name_and_version(requirement: str) -> tuple[str, str | None]:
    match = _SPLIT_RE.match(requirement)
    if not match:
        return requirement, None
    spec = match.group(2).strip().strip(";").strip()
    return match.group(1), spec or None


def is_pure_wheel(filename: str) -> bool:
    """True for a wheel that runs anywhere: ``py3-none-any`` or ``py2.py3-none-any``."""
    stem = filename.removesuffix(".whl")
    parts = stem.split("-")
    if len(parts) < 5:
        return False
    python, abi, plat = parts[-3], parts[-2], parts[-1]
    return abi == "none" and plat == "any" and "py3" in python.split(".")


@dataclass(frozen=True, slots=True)
class InstalledDistribution:
    name: str
    version: str
    #: Top-level directory of the dist-info (its RECORD lists the files).
    dist_info: str


def installed_distributions(root: Path) -> list[InstalledDistribution]:
    """Name and version of every ``*.dist-info`` under ``root`` (from METADATA), sorted by name."""
    out: list[InstalledDistribution] = []
    for info in sorted(root.glob("*.dist-info")):
        meta = info / "METADATA"
        if not meta.is_file():
            continue
        headers = HeaderParser().parsestr(meta.read_text("utf-8", errors="replace"))
        out.append(
            InstalledDistribution(headers.get("Name", info.name), headers.get("Version", "?"), info.name)
        )
    return sorted(out, key=lambda d: d.name.lower())


class DependencyInstaller:
    """Installs requirements for a target into a directory, building pure-Python sdists if needed."""

    def __init__(
        self,
        target: Target,
        *,
        pip: PipRunner | None = None,
        pip_cache_dir: Path | None = None,
        find_links: Sequence[Path] = (),
    ) -> None:
        self.target = target
        self.pip = pip or SubprocessPip()
        self.pip_cache_dir = pip_cache_dir
        self.find_links = tuple(find_links)

    @property
    def tag(self) -> str:
        return f"{self.target.abi}-manylinux_2_34_{self.target.machine}"

    def install(self, requirements: Sequence[str], dest: Path) -> list[str]:
        """Install into ``dest``; returns the notes (e.g. sdists built). Raises on failure.

        pip stops at the first requirement it cannot satisfy. When that is one of the listed
        requirements and it has no usable sdist either, it is set aside and resolution goes on
        without it, so one error names every listed requirement lacking a wheel (a transitive one
        ends the search: what it would pull in is unknown).
        """
        notes: list[str] = []
        missing: list[MissingWheel] = []
        remaining = list(requirements)
        with tempfile.TemporaryDirectory(prefix="dify-lambda-pip-") as tmp:
            work = Path(tmp)
            req_file = work / "requirements.txt"
            wheelhouse = work / "wheelhouse"
            wheelhouse.mkdir()
            built: set[str] = set()
            for _ in range(_MAX_ROUNDS):
                req_file.write_text("".join(line + "\n" for line in remaining), "utf-8")
                result = self.pip(
                    pip_install_args(
                        self.target,
                        dest,
                        req_file,
                        cache_dir=self.pip_cache_dir,
                        find_links=(*self.find_links, wheelhouse),
                    )
                )
                if result.returncode == 0:
                    if missing:
                        raise MissingWheelsError(missing)
                    return notes
                failed = failed_requirement(result.output)
                if failed is None or failed in built:
                    if missing:
                        raise MissingWheelsError(missing)
                    raise DependencyResolutionError(
                        f"pip could not install the requirements for {self.tag}: {_last_error(result.output)}"
                    )
                try:
                    wheel = self._build_pure_wheel(failed, work, wheelhouse)
                except MissingWheelsError as exc:
                    missing.extend(exc.missing)
                    listed = _listed_line(remaining, failed)
                    if listed is None:
                        raise MissingWheelsError(missing) from None
                    remaining.remove(listed)
                    if not remaining:
                        raise MissingWheelsError(missing) from None
                    continue
                built.add(failed)
                notes.append(f"built pure-Python wheel {wheel} from the sdist of {failed}")
        raise DependencyResolutionError(f"more than {_MAX_ROUNDS} packages without wheels; giving up")

    def _build_pure_wheel(self, requirement: str, work: Path, wheelhouse: Path) -> str:
        name, version = _name_and_version(requirement)
        sdists = work / f"sdist-{len(list(work.iterdir()))}"
        sdists.mkdir()
        common = _common(self.pip_cache_dir, self.find_links)
        got = self.pip(
            ["download", "--no-deps", "--no-binary=:all:", "--dest", str(sdists), *common, requirement]
        )
        files = sorted(sdists.iterdir())
        if got.returncode != 0 or not files:
            reason = (
                "not found on the package index"
                if failed_requirement(got.output)
                else f"sdist download failed: {_last_error(got.output)}"
            )
            raise MissingWheelsError([MissingWheel(name, version, self.tag, reason)])
        wheels = work / f"wheels-{sdists.name}"
        made = self.pip(["wheel", "--no-deps", "--wheel-dir", str(wheels), *common, str(files[0])])
        produced = sorted(p.name for p in wheels.glob("*.whl")) if wheels.is_dir() else []
        if made.returncode != 0 or not produced:
            reason = f"only an sdist exists and building it failed ({_last_error(made.output)})"
            raise MissingWheelsError([MissingWheel(name, version, self.tag, reason)])
        if not is_pure_wheel(produced[0]):
            reason = f"only an sdist with compiled code exists (it builds {produced[0]}, not py3-none-any)"
            raise MissingWheelsError([MissingWheel(name, version, self.tag, reason)])
        (wheels / produced[0]).replace(wheelhouse / produced[0])
        return produced[0]


def _listed_line(lines: Sequence[str], failed: str) -> str | None:
    """The requirement line pip's failure refers to, when it is one of ``lines``."""
    name = canonical_name(_name_and_version(failed)[0])
    for line in lines:
        if canonical_name(_name_and_version(line)[0]) == name:
            return line
    return None


def canonical_name(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _last_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith("ERROR")]
    text = lines[-1] if lines else (output.strip().splitlines() or ["no output"])[-1]
    return text[:300]
