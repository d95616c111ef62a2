"""Resolve and install a plugin's dependencies for Lambda (not for this machine).

Wheels only, nothing runs (docs/security.md, "Build-time trust model"). Algorithm
(:meth:`DependencyInstaller.install`):

1. the resolver installs the requirements (a file the builder wrote from the parsed lines) into
   ``--target`` for the target platform, binaries only: ``uv pip install --python-platform
   <machine>-manylinux_2_34 --python-version X.Y --only-binary :all:`` (default) or ``pip install
   --only-binary=:all: --platform ... --python-version ... --implementation cp --abi cpXY``;
2. when the resolver reports a package with no wheel for the target, that package is built from
   its sdist only if the operator named it with ``--allow-sdist`` (``pip download --no-binary`` +
   ``pip wheel --no-deps``: its build backend runs on this machine); the wheel must be
   ``py3-none-any``, goes into a local wheelhouse (``--find-links``) and step 1 is retried;
3. any other package without a wheel is set aside and resolution goes on, so one
   :class:`MissingWheelsError` names every listed requirement lacking a wheel.

Both resolvers run in a scratch directory (never the package's), with ``python -P`` for pip so the
working directory is not importable; indexes and links come only from :class:`IndexOptions` (the
operator's flags) and the operator's own pip/uv configuration.
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
from dify_lambda.packaging.build.options import RESOLVERS, Target

__all__ = [
    "RESOLVERS",
    "DependencyInstaller",
    "IndexOptions",
    "InstallOutcome",
    "InstalledDistribution",
    "MissingWheel",
    "MissingWheelsError",
    "PipResult",
    "PipRunner",
    "SubprocessPip",
    "SubprocessUv",
    "canonical_name",
    "failed_requirement",
    "installed_distributions",
    "is_pure_wheel",
    "pip_install_args",
    "platform_tags",
    "uv_install_args",
]

_MAX_ROUNDS = 20


def platform_tags(target: Target) -> list[str]:
    """Every manylinux platform Lambda's glibc 2.34 accepts for the target machine, oldest first."""
    tags = [f"manylinux2014_{target.machine}"]
    tags.extend(f"manylinux_2_{minor}_{target.machine}" for minor in range(17, 35))
    return tags


def canonical_name(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True, slots=True)
class IndexOptions:
    """Where packages come from: the operator's choice only (build flags), never the package's."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[Path, ...] = ()

    def args(self, *, extra_links: Sequence[Path] = ()) -> list[str]:
        """The same options for pip and uv (both spell them alike)."""
        out: list[str] = []
        if self.index_url:
            out += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            out += ["--extra-index-url", url]
        for link in (*self.find_links, *extra_links):
            out += ["--find-links", str(link)]
        return out


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
            "pass a directory of wheels built on Amazon Linux 2023 with --find-links, or let this "
            "machine build a pure-Python sdist with --allow-sdist NAME"
        )


@dataclass(frozen=True, slots=True)
class PipResult:
    returncode: int
    output: str


class PipRunner(Protocol):
    """Runs one pip (or uv) command with the given arguments and returns its outcome."""

    def __call__(self, args: Sequence[str]) -> PipResult: ...


def _run(command: list[str], timeout: float) -> PipResult:
    # A fresh empty working directory: nothing of the package (or of wherever the operator stands)
    # is importable or readable as configuration (uv reads uv.toml/pyproject.toml upward from cwd).
    with tempfile.TemporaryDirectory(prefix="dify-lambda-resolver-cwd-") as cwd:
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout)
    return PipResult(proc.returncode, proc.stdout + proc.stderr)


class SubprocessPip:
    """Runs ``<python> -P -m pip ARGS`` (the project's interpreter by default)."""

    def __init__(self, python: str = sys.executable, timeout: float = 1800) -> None:
        self.python = python
        self.timeout = timeout

    def __call__(self, args: Sequence[str]) -> PipResult:
        return _run([self.python, "-P", "-m", "pip", *args], self.timeout)


class SubprocessUv:
    """Runs ``uv ARGS`` with the ``uv`` binary of the ``uv`` package (a project dependency)."""

    def __init__(self, uv: str | None = None, timeout: float = 1800) -> None:
        self.uv = uv
        self.timeout = timeout

    def __call__(self, args: Sequence[str]) -> PipResult:
        uv = self.uv
        if uv is None:
            try:
                from uv import find_uv_bin
            except ImportError:  # pragma: no cover - uv is a dependency of the project
                raise DependencyResolutionError(
                    "the uv resolver is not installed (pip install uv), or pass --resolver pip"
                ) from None
            uv = find_uv_bin()
        return _run([uv, *args], self.timeout)


def _pip_common(cache_dir: Path | None) -> list[str]:
    args = ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    args += ["--cache-dir", str(cache_dir)] if cache_dir else ["--no-cache-dir"]
    return args


def pip_install_args(
    target: Target,
    dest: Path,
    requirements_file: Path,
    *,
    cache_dir: Path | None = None,
    index: IndexOptions = IndexOptions(),
    wheelhouse: Path | None = None,
) -> list[str]:
    """The ``pip install`` arguments for the target platform (pure)."""
    args = ["install", "--target", str(dest), "--no-compile", "--only-binary=:all:"]
    for tag in platform_tags(target):
        args += ["--platform", tag]
    args += ["--python-version", target.python, "--implementation", "cp", "--abi", target.abi]
    args += _pip_common(cache_dir)
    args += index.args(extra_links=[wheelhouse] if wheelhouse else [])
    args += ["-r", str(requirements_file)]
    return args


def uv_install_args(
    target: Target,
    dest: Path,
    requirements_file: Path,
    *,
    python: str = sys.executable,
    cache_dir: Path | None = None,
    index: IndexOptions = IndexOptions(),
    wheelhouse: Path | None = None,
) -> list[str]:
    """The ``uv pip install`` arguments for the target platform (pure).

    ``--python`` only names an interpreter uv needs to start; the target's Python and platform
    come from ``--python-version`` and ``--python-platform``. ``--link-mode hardlink``: the tree's
    files share uv's cache copies instead of writing the whole tree again (a cold build's largest
    write; uv copies instead when the two are on different filesystems). uv never changes a cached
    file, and nothing the builder does changes a tree file in place: pruning unlinks, compiling adds
    new ``.pyc`` files, RECORD is rewritten into a new file (prune.py), so neither side can alter the
    other.
    """
    args = ["pip", "install", "--target", str(dest), "--python", python]
    args += ["--python-platform", f"{target.machine}-manylinux_2_34", "--python-version", target.python]
    args += ["--only-binary", ":all:", "--link-mode", "hardlink", "--no-progress", "--quiet"]
    args += ["--cache-dir", str(cache_dir)] if cache_dir else ["--no-cache"]
    args += index.args(extra_links=[wheelhouse] if wheelhouse else [])
    args += ["-r", str(requirements_file)]
    return args


_NAME = r"([A-Za-z0-9][A-Za-z0-9._-]*)"
_PIP_NO_MATCH_RE = re.compile(r"No matching distribution found for ([^\s]+(?:\s*[<>=!~][^\s]*)*)")
_PIP_NO_VERSION_RE = re.compile(r"Could not find a version that satisfies the requirement ([^\s]+)")
_UV_NO_WHEEL_RE = re.compile(_NAME + r"(==[^\s]+)? has no (?:usable wheels|wheels with a matching)")
_UV_NOT_FOUND_RE = re.compile(_NAME + r" was not found in the")
_UV_NO_VERSIONS_RE = re.compile(r"there (?:are|is) no versions of " + _NAME)


def failed_requirement(output: str) -> str | None:
    """The requirement pip or uv could not satisfy for lack of a wheel (None for other failures)."""
    match = _PIP_NO_MATCH_RE.search(output) or _PIP_NO_VERSION_RE.search(output)
    if match:
        return match.group(1).strip()
    match = _UV_NO_WHEEL_RE.search(output)
    if match:
        return match.group(1) + (match.group(2) or "")
    match = _UV_NOT_FOUND_RE.search(output) or _UV_NO_VERSIONS_RE.search(output)
    return match.group(1) if match else None


_SPLIT_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(.*)$")


def _name_and_version(requirement: str) -> tuple[str, str | None]:
    match = _SPLIT_RE.match(requirement)
    if not match:
        return requirement, None
    spec = match.group(2).split(";", 1)[0].strip()
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


@dataclass(frozen=True, slots=True)
class InstallOutcome:
    #: Human notes for the build report.
    notes: tuple[str, ...]
    #: ``name==version`` of every package built from an sdist on this machine (``--allow-sdist``).
    built_from_source: tuple[str, ...]


class DependencyInstaller:
    """Installs requirements for a target into a directory, from wheels only unless allowed."""

    def __init__(
        self,
        target: Target,
        *,
        resolver: str = "uv",
        pip: PipRunner | None = None,
        uv: PipRunner | None = None,
        cache_dir: Path | None = None,
        index: IndexOptions = IndexOptions(),
        allow_sdist: Sequence[str] = (),
    ) -> None:
        if resolver not in RESOLVERS:
            raise DependencyResolutionError(
                f"--resolver {resolver!r} is not supported: use {' or '.join(RESOLVERS)}"
            )
        self.target = target
        self.resolver = resolver
        self.pip = pip or SubprocessPip()
        self.uv = uv or SubprocessUv()
        #: Each resolver keeps its own cache under this directory (``pip/``, ``uv/``).
        self.cache_dir = cache_dir
        self.index = index
        self.allow_sdist = frozenset(canonical_name(n) for n in allow_sdist)

    @property
    def tag(self) -> str:
        return f"{self.target.abi}-manylinux_2_34_{self.target.machine}"

    def _cache(self, tool: str) -> Path | None:
        return self.cache_dir / tool if self.cache_dir else None

    def _install(self, req_file: Path, dest: Path, wheelhouse: Path) -> PipResult:
        if self.resolver == "pip":
            return self.pip(
                pip_install_args(
                    self.target,
                    dest,
                    req_file,
                    cache_dir=self._cache("pip"),
                    index=self.index,
                    wheelhouse=wheelhouse,
                )
            )
        return self.uv(
            uv_install_args(
                self.target,
                dest,
                req_file,
                cache_dir=self._cache("uv"),
                index=self.index,
                wheelhouse=wheelhouse,
            )
        )

    def install(self, requirements: Sequence[str], dest: Path) -> InstallOutcome:
        """Install into ``dest``. Raises :class:`MissingWheelsError` or another resolution error.

        The resolver stops at the first package it cannot satisfy. When that is one of the listed
        requirements and the operator did not allow its sdist, it is set aside and resolution
        goes on without it, so one error names every listed requirement lacking a wheel (a
        transitive one ends the search: what it would pull in is unknown).
        """
        notes: list[str] = []
        from_source: list[str] = []
        missing: list[MissingWheel] = []
        remaining = list(requirements)
        with tempfile.TemporaryDirectory(prefix="dify-lambda-deps-") as tmp:
            work = Path(tmp)
            req_file = work / "requirements.txt"
            wheelhouse = work / "wheelhouse"
            wheelhouse.mkdir()
            built: set[str] = set()
            for _ in range(_MAX_ROUNDS):
                req_file.write_text("".join(line + "\n" for line in remaining), "utf-8")
                result = self._install(req_file, dest, wheelhouse)
                # uv leaves its lock file for the target directory: not part of any distribution.
                (dest / ".lock").unlink(missing_ok=True)
                if result.returncode == 0:
                    if missing:
                        raise MissingWheelsError(missing)
                    return InstallOutcome(tuple(notes), tuple(sorted(from_source)))
                failed = failed_requirement(result.output)
                if failed is None:
                    if missing:
                        raise MissingWheelsError(missing)
                    raise DependencyResolutionError(
                        f"{self.resolver} could not install the requirements for {self.tag}: "
                        f"{_last_error(result.output)}"
                    )
                listed = _listed_line(remaining, failed)
                name, version = _name_and_version(failed)
                if version is None and listed is not None:
                    version = _name_and_version(listed)[1]  # uv names the project without a version
                key = canonical_name(name)
                if key in self.allow_sdist and key not in built:
                    try:
                        wheel = self._build_pure_wheel(failed, work, wheelhouse)
                    except MissingWheelsError as exc:
                        missing.extend(exc.missing)
                    else:
                        built.add(key)
                        from_source.append(_wheel_pin(wheel))
                        notes.append(
                            f"built {wheel} on this machine from the sdist of {name} (--allow-sdist)"
                        )
                        continue
                else:
                    # uv tells a missing project from a missing wheel; pip says "from versions: none".
                    if "was not found in the" in result.output:
                        reason = "not found on the package index"
                    else:
                        reason = "no wheel for the target on the package index"
                        if key not in self.allow_sdist:
                            reason += " (sdists are built only with --allow-sdist NAME)"
                    missing.append(MissingWheel(name, version, self.tag, reason))
                if listed is None:
                    raise MissingWheelsError(missing)
                remaining.remove(listed)
                if not remaining:
                    raise MissingWheelsError(missing)
        raise DependencyResolutionError(f"more than {_MAX_ROUNDS} packages without wheels; giving up")

    def _build_pure_wheel(self, requirement: str, work: Path, wheelhouse: Path) -> str:
        """Build an operator-allowed sdist into a ``py3-none-any`` wheel (runs its build backend)."""
        name, version = _name_and_version(requirement)
        sdists = work / f"sdist-{canonical_name(name)}"
        sdists.mkdir()
        common = [*_pip_common(self._cache("pip")), *self.index.args()]
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


def _wheel_pin(wheel: str) -> str:
    parts = wheel.removesuffix(".whl").split("-")
    return f"{parts[0]}=={parts[1]}" if len(parts) >= 2 else wheel


def _listed_line(lines: Sequence[str], failed: str) -> str | None:
    """The requirement line the resolver's failure refers to, when it is one of ``lines``."""
    name = canonical_name(_name_and_version(failed)[0])
    for line in lines:
        if canonical_name(_name_and_version(line)[0]) == name:
            return line
    return None


def _last_error(output: str) -> str:
    lines = [
        line.strip() for line in output.splitlines() if line.strip().startswith(("ERROR", "error:", "cause:"))
    ]
    text = lines[-1] if lines else (output.strip().splitlines() or ["no output"])[-1]
    return text[:300]
