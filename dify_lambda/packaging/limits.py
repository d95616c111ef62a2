"""Size and count limits applied to every package read, and the "five largest files" report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dify_lambda import wire

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_UNCOMPRESSED_BYTES",
    "MAX_IGNORE_PATTERNS",
    "MAX_MODEL_MATCH_STEPS",
    "MAX_MODEL_PATTERNS",
    "MAX_PATTERN_CHARS",
    "MAX_YAML_DEPTH",
    "MIB",
    "ReadLimits",
    "five_largest",
    "format_size",
]

MIB = wire.MIB
#: The official packager's and the daemon's default cap (``MAX_PLUGIN_PACKAGE_SIZE``), uncompressed.
DEFAULT_MAX_UNCOMPRESSED_BYTES = 50 * MIB

# Pattern caps bound the whole matching work (docs/limits.md, "What a package may declare").
#: Longest ignore-file line or predefined-model pattern.
MAX_PATTERN_CHARS = 1024
#: Most patterns in one ``.difyignore`` / ``.gitignore``.
MAX_IGNORE_PATTERNS = 5000
#: Most ``models.<type>.predefined`` patterns in one provider YAML, all model types together.
MAX_MODEL_PATTERNS = 256
#: Most matching steps all predefined-model patterns of a package may take together: one step per
#: path character scanned and per 64 pattern characters (a few integer operations). Paths without a
#: pattern's literal prefix (``models/llm/``) are skipped unscanned, so real plugins take a few
#: thousand steps; a hostile package stops here after a few seconds (bench/bench_patterns.py).
MAX_MODEL_MATCH_STEPS = 5_000_000
#: Deepest nesting of mappings and sequences in a YAML file of a package (real ones: under 10).
MAX_YAML_DEPTH = 64


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """Caps a reader enforces while it counts the bytes it actually inflates.

    ``max_ratio`` is the per-entry compression-ratio cap that stops zip bombs; it only applies once
    an entry has inflated past ``ratio_floor_bytes``, because tiny, very repetitive files (an empty
    ``__init__.py`` padded with newlines) legitimately compress far better than 200:1.
    """

    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES
    max_entries: int = 10_000
    max_ratio: float = 200.0
    max_entry_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES
    ratio_floor_bytes: int = 1 * MIB
    #: Largest YAML document (manifest, provider, model) parsed; YAML is small in real plugins.
    max_yaml_bytes: int = 1 * MIB

    def __post_init__(self) -> None:
        for name in ("max_uncompressed_bytes", "max_entries", "max_entry_bytes", "max_yaml_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ReadLimits.{name} must be positive")
        if self.max_ratio <= 1:
            raise ValueError("ReadLimits.max_ratio must be greater than 1")


#: The defaults, shared (``ReadLimits`` is frozen).
DEFAULT_LIMITS = ReadLimits()


def format_size(n: int) -> str:
    """Bytes as a short human string (MiB precision is enough for limit messages)."""
    if n >= MIB:
        return f"{n / MIB:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} B"


def five_largest(sizes: Iterable[tuple[str, int]]) -> str:
    """``"a.bin (3.0 MB), b.bin (1.2 MB), ..."``: the five largest files, largest first, ties by path."""
    top = sorted(sizes, key=lambda item: (-item[1], item[0]))[:5]
    return ", ".join(f"{path} ({format_size(size)})" for path, size in top)
