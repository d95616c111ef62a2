"""Build options and their resolution against a manifest into one concrete :class:`Target`.

Everything here is pure: no files, no processes. The rules:

- architecture: ``--arch`` if given (it must be one the manifest's ``meta.arch`` declares), else
  ``x86_64`` when the manifest lists ``amd64``, else ``arm64``;
- Python: ``--python`` if given, else ``meta.runner.version`` when it is a served one (3.12, 3.13), else
  the oldest served one with a note;
- memory: ``--memory`` if given (it must be inside Lambda's 128..10240 MB), else ``resource.memory``
  (bytes) rounded up to whole MiB, raised to :data:`MEMORY_FLOOR_MB` and lowered to Lambda's maximum.
  Nothing is clamped silently: :attr:`Target.memory_reason` says which rule chose the value, and the
  build prints it. The floor comes from a measurement (``bench/bench_memory.py``, table in
  docs/limits.md): Lambda gives CPU in proportion to memory, and below it a realistic plugin's
  init and first token slow down steeply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dify_lambda import wire
from dify_lambda.errors import UnsupportedTargetError
from dify_lambda.packaging.layout import default_cache_dir
from dify_lambda.packaging.spec import URL_AUTH_TYPES, UrlAuth

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_MAX_UNZIPPED_BYTES",
    "MAX_MEMORY_MB",
    "MEMORY_FLOOR_MB",
    "MIN_MEMORY_MB",
    "PYTHON_VERSIONS",
    "RESOLVERS",
    "URL_AUTH_TYPES",
    "BuildOptions",
    "Target",
    "choose_memory",
    "default_cache_dir",
    "memory_mb_from_bytes",
    "resolve_target",
]

#: Lambda architecture -> the manifest's ``meta.arch`` spelling.
ARCHITECTURES: Mapping[str, str] = {"x86_64": "amd64", "arm64": "arm64"}
PYTHON_VERSIONS = ("3.12", "3.13")
#: Dependency resolvers: uv (default: same resolved set as pip here, several times faster) or pip.
RESOLVERS = ("uv", "pip")
MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10240
#: The default never goes below this (measured: docs/limits.md "Memory"); ``--memory`` may.
MEMORY_FLOOR_MB = 512
MAX_TIMEOUT_S = 900
MIB = wire.MIB
DEFAULT_MAX_UNZIPPED_BYTES = wire.MAX_UNZIPPED_BYTES


@dataclass(frozen=True)
class BuildOptions:
    """What the caller may choose; ``None`` means "take it from the manifest"."""

    arch: str | None = None
    python: str | None = None
    memory_mb: int | None = None
    timeout: int = MAX_TIMEOUT_S
    url_auth: UrlAuth = "AWS_IAM"
    snapstart: bool = False
    template_overlay: Path | None = None
    cache_dir: Path | None = None
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES
    function_name: str | None = None
    extra_environment: Mapping[str, str] = field(default_factory=dict)
    #: Extra local wheel directories (``--find-links``), e.g. private packages.
    find_links: tuple[Path, ...] = ()
    #: The package index and extra indexes (the operator's only; never read from the package).
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    #: Packages that may be built from an sdist on this machine (their build backend runs here).
    allow_sdist: tuple[str, ...] = ()
    #: ``uv`` or ``pip`` (:data:`RESOLVERS`).
    resolver: str = "uv"
    #: Use the dependency cache (a hit skips pip, prune and compile entirely).
    use_cache: bool = True
    #: Byte-compile for the target Python when that interpreter is found.
    compile: bool = True
    #: Ship tiktoken's encoding files when tiktoken is a dependency (gpt2 plus these encodings).
    tiktoken_data: bool = True
    tiktoken_encodings: tuple[str, ...] = ()
    #: Take the encoding files from this directory instead of the cache or the network.
    tiktoken_cache: Path | None = None
    #: Load the built artifact in a clean subprocess (when this host can run the target).
    smoke: bool = True


@dataclass(frozen=True, slots=True)
class Target:
    """The concrete platform and function settings of one build."""

    arch: str
    python: str
    memory_mb: int
    timeout: int
    url_auth: UrlAuth
    #: Why ``memory_mb`` has its value (printed by the build, kept in the report).
    memory_reason: str = ""
    #: Set when the manifest's runner version was not a served Python (a note in the report).
    python_note: str = ""

    @property
    def runtime(self) -> str:
        return f"python{self.python}"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def machine(self) -> str:
        """The wheel platform machine name (``x86_64`` or ``aarch64``)."""
        return "aarch64" if self.arch == "arm64" else "x86_64"


def memory_mb_from_bytes(memory_bytes: int) -> int:
    """``resource.memory`` (bytes) -> whole MB (MiB, as Lambda counts), rounded up; not clamped."""
    return -(-memory_bytes // MIB)


def choose_memory(requested_mb: int | None, resource_memory: int | None) -> tuple[int, str]:
    """(MemorySize, why): ``--memory`` as given, else the manifest's value within floor and maximum."""
    if requested_mb is not None:
        if not MIN_MEMORY_MB <= requested_mb <= MAX_MEMORY_MB:
            raise UnsupportedTargetError(
                f"--memory {requested_mb} is outside Lambda's {MIN_MEMORY_MB}..{MAX_MEMORY_MB} MB"
            )
        return requested_mb, "from --memory"
    if not resource_memory or resource_memory <= 0:
        return MEMORY_FLOOR_MB, f"the manifest sets no resource.memory; default floor {MEMORY_FLOOR_MB} MB"
    asked = memory_mb_from_bytes(resource_memory)
    if asked < MEMORY_FLOOR_MB:
        return MEMORY_FLOOR_MB, (
            f"the manifest's resource.memory ({asked} MB) is below the {MEMORY_FLOOR_MB} MB floor "
            "(see docs/limits.md); --memory overrides"
        )
    if asked > MAX_MEMORY_MB:
        return MAX_MEMORY_MB, (
            f"the manifest's resource.memory ({asked} MB) is above Lambda's {MAX_MEMORY_MB} MB maximum"
        )
    return asked, "from the manifest's resource.memory"


def _resolve_arch(requested: str | None, declared: Sequence[str]) -> str:
    if requested is not None:
        if requested not in ARCHITECTURES:
            raise UnsupportedTargetError(
                f"--arch {requested!r} is not supported: use one of {', '.join(ARCHITECTURES)}"
            )
        if declared and ARCHITECTURES[requested] not in declared:
            raise UnsupportedTargetError(
                f"--arch {requested} is not declared by the manifest's meta.arch "
                f"({', '.join(declared)}): the plugin does not claim to run there"
            )
        return requested
    if not declared or "amd64" in declared:
        return "x86_64"
    if "arm64" in declared:
        return "arm64"
    raise UnsupportedTargetError(f"manifest meta.arch ({', '.join(declared)}) names no Lambda architecture")


def _resolve_python(requested: str | None, runner_version: str | None) -> tuple[str, str]:
    """The target Python, and a note when the manifest's runner version was not used as written."""
    if requested is not None:
        if requested not in PYTHON_VERSIONS:
            raise UnsupportedTargetError(
                f"--python {requested!r} is not supported: Lambda runtimes served are "
                f"{', '.join(PYTHON_VERSIONS)}"
            )
        return requested, ""
    version = (runner_version or "").strip()
    if version in PYTHON_VERSIONS:
        return version, ""
    # The daemon installs every Python plugin on its own Python whatever meta.runner.version says
    # (docs/limits.md, "What a package may declare"); so does the builder, on the oldest served one.
    oldest = PYTHON_VERSIONS[0]
    return oldest, (
        f"manifest meta.runner.version is not a served Lambda Python ({', '.join(PYTHON_VERSIONS)}): "
        f"built for python{oldest}, as the daemon runs it on its own Python; --python chooses another"
    )


def resolve_target(
    options: BuildOptions,
    *,
    declared_arch: Sequence[str],
    runner_version: str | None,
    resource_memory: int | None,
) -> Target:
    """Resolve options against the manifest values; raise :class:`UnsupportedTargetError` if impossible."""
    arch = _resolve_arch(options.arch, declared_arch)
    python, python_note = _resolve_python(options.python, runner_version)
    memory, memory_reason = choose_memory(options.memory_mb, resource_memory)
    if not 1 <= options.timeout <= MAX_TIMEOUT_S:
        raise UnsupportedTargetError(f"--timeout {options.timeout} is outside Lambda's 1..{MAX_TIMEOUT_S} s")
    if options.url_auth not in URL_AUTH_TYPES:
        raise UnsupportedTargetError(
            f"--url-auth {options.url_auth!r} is not supported: use {' or '.join(URL_AUTH_TYPES)}"
        )
    if options.resolver not in RESOLVERS:
        raise UnsupportedTargetError(
            f"--resolver {options.resolver!r} is not supported: use {' or '.join(RESOLVERS)}"
        )
    if options.max_unzipped_bytes <= 0:
        raise UnsupportedTargetError("max_unzipped_bytes must be positive")
    return Target(
        arch=arch,
        python=python,
        memory_mb=memory,
        timeout=options.timeout,
        url_auth=options.url_auth,
        memory_reason=memory_reason,
        python_note=python_note,
    )
