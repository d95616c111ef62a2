"""A small gitignore matcher for ``.difyignore`` / ``.gitignore``.

Semantics follow git's documentation: blank lines and ``#`` comments are skipped, trailing
unescaped spaces are dropped, ``!`` negates, a trailing ``/`` matches directories only, a pattern
with a ``/`` anywhere but at its end is anchored to the plugin root (otherwise it matches a name at
any depth), ``*`` and ``?`` and ``[...]`` never match ``/``, and ``**`` matches across directories
(``**/x``, ``x/**``, ``a/**/b``). The last matching pattern wins, and nothing inside an excluded
directory can be re-included.

The official packager stops at the first excluding pattern, so ``!keep.me`` has no effect there;
here negation works as in git. Packages differ only for ignore files that use negation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["IgnoreRules", "Pattern", "glob_regex", "parse_pattern"]


@dataclass(frozen=True, slots=True)
class Pattern:
    """One parsed ignore line."""

    source: str
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool

    def matches(self, path: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        return self.regex.match(path) is not None


def _strip_trailing_spaces(line: str) -> str:
    # git keeps a trailing space only when it is escaped with a backslash.
    end = len(line)
    while end > 0 and line[end - 1] == " ":
        if end >= 2 and line[end - 2] == "\\":
            break
        end -= 1
    return line[:end]


def _escape_class(body: str) -> str:
    # Escape what Python's re treats specially (or warns about) inside a set; keep ranges.
    return "".join("\\" + c if c in "\\[&~|^" else c for c in body)


def _translate_class(body: str) -> str:
    if body.startswith(("!", "^")):
        return "[^/" + _escape_class(body[1:]) + "]"
    return "(?!/)[" + _escape_class(body) + "]"


def _translate(glob: str) -> str:
    """Glob (already without anchoring slash or trailing slash) to a regex body."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**", i):
            at_start = i == 0 or glob[i - 1] == "/"
            at_end = i + 2 == n
            followed_by_slash = i + 2 < n and glob[i + 2] == "/"
            if at_start and followed_by_slash:  # "**/" : zero or more directories
                out.append("(?:.*/)?")
                i += 3
                continue
            if at_start and at_end and i > 0:  # "/**" at the end: everything inside
                out.append(".*")
                i += 2
                continue
            if at_start and at_end:  # a lone "**"
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")  # any other "**" is an ordinary star
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            close = glob.find("]", i + 2 if glob.startswith(("[!", "[^"), i) else i + 1)
            if close == -1:
                out.append(re.escape(c))
            else:
                out.append(_translate_class(glob[i + 1 : close]))
                i = close
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse_pattern(line: str) -> Pattern | None:
    """Parse one ignore-file line; None for blanks and comments."""
    raw = line.rstrip("\r\n")
    if not raw.strip() or raw.startswith("#"):
        return None
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
    body = _translate(text)
    prefix = "^" if anchored or text.startswith("**") else "^(?:.*/)?"
    return Pattern(
        source=raw, regex=re.compile(prefix + body + r"\Z", re.DOTALL), negate=negate, dir_only=dir_only
    )


class IgnoreRules:
    """An ordered list of patterns; ``ignored(path, is_dir)`` answers for ``/``-separated paths."""

    def __init__(self, patterns: Iterable[Pattern] = ()) -> None:
        self.patterns = tuple(patterns)

    @classmethod
    def parse(cls, text: str) -> IgnoreRules:
        return cls(p for p in (parse_pattern(line) for line in text.splitlines()) if p is not None)

    def __add__(self, other: IgnoreRules) -> IgnoreRules:
        return IgnoreRules(self.patterns + other.patterns)

    def _match_self(self, path: str, is_dir: bool) -> bool:
        verdict = False
        for pattern in self.patterns:
            if pattern.matches(path, is_dir):
                verdict = not pattern.negate
        return verdict

    def ignored(self, path: str, is_dir: bool = False) -> bool:
        """True when ``path`` or one of its parent directories is excluded."""
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            if self._match_self("/".join(parts[:depth]), True):
                return True
        return self._match_self("/".join(parts), is_dir)


def glob_regex(glob: str) -> re.Pattern[str]:
    """A path glob (``*``, ``?``, ``[...]``, ``**``) as a regex over whole ``/``-separated paths."""
    return re.compile("^" + _translate(glob) + r"\Z", re.DOTALL)
