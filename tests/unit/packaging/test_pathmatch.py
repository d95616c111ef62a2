"""The backtracking-free glob engine: hostile patterns finish, malformed ones are refused like Go does."""

from __future__ import annotations

import pytest

from dify_lambda.errors import PackageError
from dify_lambda.packaging.ignore import IgnoreRules
from dify_lambda.packaging.limits import MAX_IGNORE_PATTERNS, MAX_PATTERN_CHARS
from dify_lambda.packaging.pathmatch import MalformedPatternError, compile_gitignore, compile_model_glob

# With a backtracking regex each of these takes exponential (or high-polynomial) time: 10 stars
# took 77 s. They finish here because each path character costs one pass over the pattern.
HOSTILE = ["*a" * 40 + "b", "*" * 1000 + "b", "**/" * 300 + "*a" * 30 + "b", "[a-z]*" * 200 + "!"]


@pytest.mark.parametrize("pattern", HOSTILE)
def test_hostile_ignore_patterns_finish_with_the_right_answer(pattern: str) -> None:
    glob = compile_gitignore(pattern)
    assert glob.match("a" * 1000) is False
    assert compile_gitignore("*a" * 40).match("a" * 1000) is True


@pytest.mark.parametrize("pattern", HOSTILE)
def test_hostile_model_patterns_finish_with_the_right_answer(pattern: str) -> None:
    glob = compile_model_glob("models/" + pattern)
    assert glob.match("models/" + "a" * 1000) is False
    assert compile_model_glob("models/" + "*a" * 40).match("models/" + "a" * 1000) is True


def test_many_distinct_characters_do_not_grow_the_cache_without_bound() -> None:
    glob = compile_model_glob("*x*y*z")
    path = "".join(chr(0x4E00 + i) for i in range(5000)) + "xyz"
    assert glob.match(path)
    assert not glob.match(path[:-1])


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("models/[ab.yaml", "unterminated"),
        ("[", "unterminated"),
        ("[]a]", "empty or unterminated"),
        ("[-a]", "empty or unterminated"),
        ("[a-]", "empty or unterminated"),
        ("models/x\\", "lone"),
    ],
)
def test_patterns_go_refuses_are_malformed(pattern: str, problem: str) -> None:
    # The daemon matches model files with Go's filepath.Match, which returns ErrBadPattern for these.
    with pytest.raises(MalformedPatternError, match=problem):
        compile_model_glob(pattern)


@pytest.mark.parametrize("pattern", ["[z-a]", "[a-c]x", "[^a]", "[!a]", "\\*", "a*b?c", "**/x"])
def test_patterns_go_accepts_compile(pattern: str) -> None:
    compile_model_glob(pattern)


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("[z-a]", "z", True),  # git's wildmatch tests the range start on its own first
        ("[z-a]", "y", False),
        ("a[b", "a[b", False),  # git: an unterminated class never matches
        ("[]]", "]", True),
        ("x\\*", "x*", True),
        ("x\\*", "xy", False),
        ("[a/]", "/", False),
    ],
)
def test_gitignore_edge_cases(pattern: str, path: str, matches: bool) -> None:
    assert compile_gitignore(pattern).match(path) is matches


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("m/[z-a]", "m/z", False),  # fnmatch drops an empty range
        ("m/[!a]", "m/b", True),
        ("m/[^a]", "m/^", True),  # fnmatch negates with "!" only
        ("m/**/x", "m/x", True),
        ("m/**/x", "m/a/b/x", True),
        ("m/a**", "m/abc", True),  # a partial "**" is an ordinary star
        ("m/a**", "m/a/b", False),
        ("m//x", "m/x", True),
        ("m/.hidden", "m/.hidden", True),
    ],
)
def test_model_glob_edge_cases(pattern: str, path: str, matches: bool) -> None:
    assert compile_model_glob(pattern).match(path) is matches


def test_ignore_pattern_length_is_capped() -> None:
    IgnoreRules.parse("x" * MAX_PATTERN_CHARS)
    with pytest.raises(PackageError, match=f"a pattern is longer than {MAX_PATTERN_CHARS} characters"):
        IgnoreRules.parse("x" * (MAX_PATTERN_CHARS + 1), where=".difyignore")


def test_ignore_pattern_count_is_capped() -> None:
    IgnoreRules.parse("x\n" * MAX_IGNORE_PATTERNS)
    with pytest.raises(PackageError, match=f"^.difyignore: more than {MAX_IGNORE_PATTERNS} patterns$"):
        IgnoreRules.parse("x\n" * (MAX_IGNORE_PATTERNS + 1), where=".difyignore")
