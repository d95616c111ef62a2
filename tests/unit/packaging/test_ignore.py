"""The gitignore matcher: each case's expectation comes from git's documented semantics."""

from __future__ import annotations

import pytest

from dify_lambda.packaging.ignore import IgnoreRules, parse_pattern
from dify_lambda.packaging.pathmatch import compile_model_glob


@pytest.mark.parametrize(
    ("rules", "path", "is_dir", "ignored"),
    [
        # unanchored name patterns match at any depth
        ("*.pyc", "a.pyc", False, True),
        ("*.pyc", "deep/er/a.pyc", False, True),
        ("*.pyc", "a.py", False, False),
        ("secret.txt", "x/secret.txt", False, True),
        # "*" and "?" never cross "/"
        ("docs/*.md", "docs/a.md", False, True),
        ("docs/*.md", "docs/sub/a.md", False, False),
        ("a?c", "abc", False, True),
        ("a?c", "a/c", False, False),
        # anchored patterns: leading slash or a slash in the middle
        ("/top.txt", "top.txt", False, True),
        ("/top.txt", "sub/top.txt", False, False),
        ("sub/top.txt", "sub/top.txt", False, True),
        ("sub/top.txt", "x/sub/top.txt", False, False),
        # directory-only patterns match directories and, through them, their contents
        ("build/", "build", True, True),
        ("build/", "build", False, False),
        ("build/", "build/out/x.o", False, True),
        ("build/", "src/build/x.o", False, True),
        # "**" forms
        ("**/cache", "cache", True, True),
        ("**/cache", "a/b/cache", False, True),
        ("logs/**", "logs/a/b.txt", False, True),
        ("logs/**", "logs", True, False),
        ("a/**/b", "a/b", False, True),
        ("a/**/b", "a/x/y/b", False, True),
        ("a/**/b", "a/x/y/c", False, False),
        # negation: last match wins
        ("*.log\n!keep.log", "keep.log", False, False),
        ("*.log\n!keep.log", "other.log", False, True),
        ("!keep.log\n*.log", "keep.log", False, True),
        # a file under an excluded directory cannot be re-included
        ("out/\n!out/keep.txt", "out/keep.txt", False, True),
        # character classes
        ("[ab].txt", "a.txt", False, True),
        ("[ab].txt", "c.txt", False, False),
        ("[!ab].txt", "c.txt", False, True),
        ("[a-c]x", "bx", False, True),
        # comments, blanks, escapes, trailing spaces
        ("# comment\n\n   \n", "# comment", False, False),
        ("\\#hash", "#hash", False, True),
        ("\\!bang", "!bang", False, True),
        ("trail   ", "trail", False, True),
        ("*.md\r\n", "README.md", False, True),
    ],
)
def test_gitignore_semantics(rules: str, path: str, is_dir: bool, ignored: bool) -> None:
    assert IgnoreRules.parse(rules).ignored(path, is_dir) is ignored


def test_blank_and_comment_lines_give_no_pattern() -> None:
    assert parse_pattern("") is None
    assert parse_pattern("   ") is None
    assert parse_pattern("# x") is None
    assert parse_pattern("/") is None


def test_pattern_flags() -> None:
    p = parse_pattern("!build/")
    assert p is not None
    assert p.negate and p.dir_only


def test_rules_concatenate_in_order() -> None:
    rules = IgnoreRules.parse("*.txt") + IgnoreRules.parse("!a.txt")
    assert not rules.ignored("a.txt")
    assert rules.ignored("b.txt")


def test_special_characters_in_classes_are_literal() -> None:
    # "[&~|]" would warn (set operations) in Python's re if passed through unescaped.
    rules = IgnoreRules.parse("x[&~|]y\n[[]z")
    assert rules.ignored("x&y")
    assert rules.ignored("[z")
    assert not rules.ignored("xay")


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("models/llm/*.yaml", "models/llm/a.yaml", True),
        ("models/llm/*.yaml", "models/llm/sub/a.yaml", False),
        ("models/**/*.yaml", "models/llm/sub/a.yaml", True),
        ("models/llm/?.yaml", "models/llm/a.yaml", True),
        ("models/llm/a.yaml", "models/llm/a.yaml", True),
        ("models/llm/a.yaml", "models/llm/a_yaml", False),
    ],
)
def test_model_glob(glob: str, path: str, matches: bool) -> None:
    assert compile_model_glob(glob).match(path) is matches
