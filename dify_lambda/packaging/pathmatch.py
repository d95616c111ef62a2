"""Glob matching whose cost is bounded by pattern length x path length, whatever the pattern.

A regex built from a glob backtracks: ``*a*a*a*a*a*a*a*a*a*b`` against a long name takes exponential
time in Python's ``re``. Here a glob is compiled to a token list and run as a bit-parallel NFA
(shift-and): one pass over the path, a few integer operations per character on a bit set with one
bit per token. Two dialects share the engine:

- :func:`compile_gitignore` for ``.difyignore`` / ``.gitignore`` lines (git's wildmatch: ``\\``
  escapes, ``[!...]`` and ``[^...]`` negate, the first character of a range always matches, an
  unterminated ``[`` makes the pattern match nothing);
- :func:`compile_model_glob` for a provider's ``models.<type>.predefined`` entries, which the SDK
  expands with ``pathlib.Path.cwd().glob(pattern)`` (``fnmatch`` per path component, no escapes,
  ``[!...]`` negates, a ``**`` component spans zero or more directories).

Neither dialect's ``*``, ``?`` or ``[...]`` matches ``/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Glob", "MalformedPatternError", "compile_gitignore", "compile_model_glob"]


class MalformedPatternError(ValueError):
    """A pattern the daemon's Go ``filepath.Match`` refuses (``ErrBadPattern``)."""


class _Kind(Enum):
    LIT = 0  # one given character
    ANY = 1  # "?": one character but "/"
    CLASS = 2  # "[...]": one character of a set, never "/"
    STAR = 3  # "*": any run of characters but "/"
    DIRS = 4  # "**/": zero or more whole directories ("" or "x/" or "x/y/"...)
    ALL = 5  # trailing "/**" or a lone "**": anything, "/" included
    NEVER = 6  # matches nothing (a pattern that can match no file)


_SKIPPABLE = (_Kind.STAR, _Kind.DIRS, _Kind.ALL)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    char: str = ""
    ranges: tuple[tuple[str, str], ...] = ()
    negate: bool = False

    def in_class(self, c: str) -> bool:
        return c != "/" and any(lo <= c <= hi for lo, hi in self.ranges) != self.negate


#: The single-character wildcards both dialects share (tokens are immutable, so shared).
_WILDCARDS = {"*": _Token(_Kind.STAR), "?": _Token(_Kind.ANY)}

#: Masks cached per pattern for at most this many distinct characters (paths of a hostile package
#: may use thousands); beyond it masks are computed per character, which is still O(pattern).
_MASK_CACHE = 256


class Glob:
    """A compiled pattern; :meth:`match` tests a whole ``/``-separated path."""

    __slots__ = ("_accept", "_cache", "_skip", "_tokens", "prefix", "source")

    def __init__(self, tokens: list[_Token], source: str) -> None:
        self.source = source
        self._tokens = tuple(_collapse(tokens))
        literal = []
        for tok in self._tokens:
            if tok.kind is not _Kind.LIT:
                break
            literal.append(tok.char)
        #: The literal text every match starts with: callers may skip paths without it cheaply.
        self.prefix = "".join(literal)
        self._accept = 1 << len(self._tokens)
        skip = 0
        for i, tok in enumerate(self._tokens):
            if tok.kind in _SKIPPABLE:
                skip |= 1 << i
        self._skip = skip
        self._cache: dict[str, tuple[int, int]] = {}

    def _masks(self, c: str) -> tuple[int, int]:
        """(advance, stay): tokens that consume ``c`` and move on, tokens that consume it and stay."""
        cached = self._cache.get(c)
        if cached is not None:
            return cached
        advance = stay = 0
        for i, tok in enumerate(self._tokens):
            bit = 1 << i
            kind = tok.kind
            if kind is _Kind.LIT:
                if tok.char == c:
                    advance |= bit
            elif kind is _Kind.ANY:
                if c != "/":
                    advance |= bit
            elif kind is _Kind.CLASS:
                if tok.in_class(c):
                    advance |= bit
            elif kind is _Kind.STAR:
                if c != "/":
                    stay |= bit
            elif kind is _Kind.ALL:
                stay |= bit
            elif kind is _Kind.DIRS:
                stay |= bit
                if c == "/":
                    advance |= bit
        if len(self._cache) < _MASK_CACHE:
            self._cache[c] = (advance, stay)
        return advance, stay

    def _closure(self, state: int) -> int:
        # Skippable tokens may match nothing. Runs of them are at most a few tokens long (see
        # _collapse), so this loop runs a bounded number of times.
        while True:
            more = state | ((state & self._skip) << 1)
            if more == state:
                return state
            state = more

    def match(self, path: str) -> bool:
        state = self._closure(1)
        for c in path:
            advance, stay = self._masks(c)
            state = ((state & advance) << 1) | (state & stay)
            if not state:
                return False
            state = self._closure(state)
        return bool(state & self._accept)

    def __repr__(self) -> str:
        return f"Glob({self.source!r})"


def _collapse(tokens: list[_Token]) -> list[_Token]:
    """Merge runs of skippable tokens: ``**`` absorbs neighbouring ``*`` and ``**/``; ``* *`` is ``*``."""
    out: list[_Token] = []
    for tok in tokens:
        if out and tok.kind in _SKIPPABLE and out[-1].kind in _SKIPPABLE:
            prev = out[-1]
            if _Kind.ALL in (prev.kind, tok.kind):
                out[-1] = _Token(_Kind.ALL)
                continue
            if prev.kind is tok.kind:
                continue
        out.append(tok)
    return out


def _parse_class(
    glob: str, start: int, *, escapes: bool, negators: str, lo_always: bool
) -> tuple[_Token, int] | None:
    """The class opening at ``glob[start] == "["``, and the index after it; None if unterminated."""
    n = len(glob)
    j = start + 1
    negate = j < n and glob[j] in negators
    if negate:
        j += 1
    ranges: list[tuple[str, str]] = []
    first = True
    while j < n:
        c = glob[j]
        if c == "]" and not first:
            return _Token(_Kind.CLASS, ranges=tuple(ranges), negate=negate), j + 1
        first = False
        if escapes and c == "\\" and j + 1 < n:
            j += 1
            c = glob[j]
        j += 1
        if j + 1 < n and glob[j] == "-" and glob[j + 1] != "]":
            hi = glob[j + 1]
            j += 2
            if escapes and hi == "\\" and j < n:
                hi = glob[j]
                j += 1
            ranges.append((c, hi))  # lo > hi is an empty range in git, fnmatch and Go alike
            if lo_always:
                ranges.append((c, c))
        else:
            ranges.append((c, c))
    return None


def compile_gitignore(glob: str) -> Glob:
    """One ignore-file pattern (without ``!``, leading ``/`` or trailing ``/``) over a whole path."""
    tokens: list[_Token] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**", i):
            at_start = i == 0 or glob[i - 1] == "/"
            at_end = i + 2 == n
            if at_start and i + 2 < n and glob[i + 2] == "/":
                tokens.append(_Token(_Kind.DIRS))
                i += 3
            elif at_start and at_end:
                tokens.append(_Token(_Kind.ALL))
                i += 2
            else:  # any other "**" is an ordinary star
                tokens.append(_Token(_Kind.STAR))
                i += 2
            continue
        if c == "[":
            parsed = _parse_class(glob, i, escapes=True, negators="!^", lo_always=True)
            if parsed is None:  # git: an unterminated class never matches
                return Glob([_Token(_Kind.NEVER)], glob)
            tok, i = parsed
            tokens.append(tok)
            continue
        if c == "\\" and i + 1 < n:
            i += 1
            tokens.append(_Token(_Kind.LIT, glob[i]))
        else:
            tokens.append(_WILDCARDS.get(c) or _Token(_Kind.LIT, c))
        i += 1
    return Glob(tokens, glob)


def _go_class_char(glob: str, j: int) -> int:
    """Index after one class character at ``glob[j]``, as Go's ``getEsc`` reads it."""
    n = len(glob)
    if j >= n or glob[j] in "-]":
        raise MalformedPatternError("has an empty or unterminated '[...]' class")
    if glob[j] == "\\":
        j += 1
    j += 1
    if j >= n:
        raise MalformedPatternError("has an unterminated '[...]' class")
    return j


def _check_go_pattern(glob: str) -> None:
    """Refuse what Go's ``filepath.Match`` (the daemon's model-file matcher) calls ``ErrBadPattern``."""
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "\\":
            if i + 1 >= n:
                raise MalformedPatternError("ends with a lone '\\'")
            i += 2
        elif c == "[":
            j = i + 1
            if j < n and glob[j] == "^":
                j += 1
            ranges = 0
            while not (j < n and glob[j] == "]" and ranges):
                j = _go_class_char(glob, j)
                if glob[j] == "-":
                    j = _go_class_char(glob, j + 1)
                ranges += 1
            i = j + 1
        else:
            i += 1


def compile_model_glob(glob: str) -> Glob:
    """A ``predefined`` model pattern, relative to the plugin root, as the SDK's pathlib glob reads it.

    Raises :class:`MalformedPatternError` for patterns the daemon refuses when it decodes the package.
    """
    _check_go_pattern(glob)
    parts = [p for p in glob.split("/") if p not in ("", ".")]
    tokens: list[_Token] = []
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        if part == "**":
            if last:  # pathlib: a trailing "**" yields directories only, so no model file
                return Glob([_Token(_Kind.NEVER)], glob)
            tokens.append(_Token(_Kind.DIRS))
            continue
        i, n = 0, len(part)
        while i < n:
            c = part[i]
            if c == "[":
                parsed = _parse_class(part, i, escapes=False, negators="!", lo_always=False)
                if parsed is not None:
                    tok, i = parsed
                    tokens.append(tok)
                    continue
            # fnmatch: an unterminated "[" is literal
            tokens.append(_WILDCARDS.get(c) or _Token(_Kind.LIT, c))
            i += 1
        if not last:
            tokens.append(_Token(_Kind.LIT, "/"))
    if not tokens:
        return Glob([_Token(_Kind.NEVER)], glob)
    return Glob(tokens, glob)
