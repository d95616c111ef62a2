"""A small gitignore matcher for ``.difyignore`` / ``.gitignore``.

Semantics follow git's documentation: blank lines and ``#`` comments are skipped, trailing
unescaped spaces are dropped, ``!`` negates, a trailing ``/`` matches directories only, a pattern
with a ``/`` anywhere but at its end is anchored to the plugin root (otherwise it matches a name at
any depth), ``*`` and ``?`` and ``[...]`` never match ``/``, and ``**`` matches across directories
(``**/x``, ``x/**``, ``a/**/b``). The last matching pattern wins, and nothing inside an excluded
directory can be re-included.

Negation works as in git, unlike the official packager (docs/limits.md). Patterns run on
:mod:`dify_lambda.packaging.pathmatch` (no backtracking), their length and count capped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dify_lambda.packaging.errors import PackageError
from dify_lambda.packaging.limits import MAX_IGNORE_PATTERNS, MAX_PATTERN_CHARS
from dify_lambda.packaging.pathmatch import Glob, compile_gitignore

__all__ = ["IgnoreRules", "Pattern", "parse_pattern"]


@dataclass(frozen=True, slots=True)
class Pattern:
    """One parsed ignore line."""

    source: str
    glob: Glob
    negate: bool
    dir_only: bool
    #: A pattern without "/" matches the last path component at any depth.
    basename: bool

    def matches(self, path: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        target = path.rpartition("/")[2] if self.basename else path
        return target.startswith(self.glob.prefix) and self.glob.match(target)


def _strip_trailing_spaces(line: str) -> str:
    # git keeps a trailing space only when it is escaped with a backslash.
    end = len(line)
    while end > 0 and line[end - 1] == " ":
        if end >= 2 and line[end - 2] == "\\":
            break
        end -= 1
    return line[:end]


def parse_pattern(line: str, *, where: str = "ignore file") -> Pattern | None:
    """Parse one ignore-file line; None for blanks and comments."""
    raw = line.rstrip("\r\n")
    if not raw.strip() or raw.startswith("#"):
        return None
    if len(raw) > MAX_PATTERN_CHARS:
        raise PackageError(f"{where}: a pattern is longer than {MAX_PATTERN_CHARS} characters")
    text = _strip_trailing_spaces(raw)
    negate = False
    if text.startswith("!"):
        negate, text = True, text[1:]
    elif text.startswith(("\\!", "\\#")):
        text = text[1:]
    dir_only = text.endswith("/") and not text.endswith("\\/")
    if dir_only:
        text = text.rstrip("/")
    if not text:
        return None
    anchored = "/" in text
    text = text.lstrip("/")
    return Pattern(
        source=raw,
        glob=compile_gitignore(text),
        negate=negate,
        dir_only=dir_only,
        basename=not anchored and not text.startswith("**"),
    )


class IgnoreRules:
    """An ordered list of patterns; ``ignored(path, is_dir)`` answers for ``/``-separated paths."""

    def __init__(self, patterns: Iterable[Pattern] = ()) -> None:
        self.patterns = tuple(patterns)

    @classmethod
    def parse(cls, text: str, *, where: str = "ignore file") -> IgnoreRules:
        """Parse a whole ignore file; more than ``MAX_IGNORE_PATTERNS`` patterns is one error line."""
        patterns: list[Pattern] = []
        for line in text.splitlines():
            pattern = parse_pattern(line, where=where)
            if pattern is None:
                continue
            if len(patterns) == MAX_IGNORE_PATTERNS:
                raise PackageError(f"{where}: more than {MAX_IGNORE_PATTERNS} patterns")
            patterns.append(pattern)
        return cls(patterns)

    def __add__(self, other: IgnoreRules) -> IgnoreRules:
        return IgnoreRules(self.patterns + other.patterns)

    def _match_self(self, path: str, is_dir: bool) -> bool:
        verdict = False
        for pattern in self.patterns:
            if pattern.negate == verdict and pattern.matches(path, is_dir):
                verdict = not pattern.negate
        return verdict

    def ignored(self, path: str, is_dir: bool = False) -> bool:
        """True when ``path`` or one of its parent directories is excluded."""
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            if self._match_self("/".join(parts[:depth]), True):
                return True
        return self._match_self("/".join(parts), is_dir)
