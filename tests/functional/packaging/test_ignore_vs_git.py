"""The ignore matcher against git itself: the files ``git ls-files --others --exclude-standard``
keeps must be exactly the files the packager collects, for the same ``.gitignore``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dify_lambda.packaging.source import collect_directory

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")

TREE = [
    "README.md",
    "a.log",
    "keep.log",
    "notes.md",
    "docs/notes.md",
    "docs/deep/er/guide.md",
    "docs/deep/er/image.png",
    "build/out.o",
    "src/build/x.o",
    "src/main.py",
    "src/app.pyc",
    "out/keep.txt",
    "out/drop.txt",
    "logs/a/b.txt",
    "ab.txt",
    "cb.txt",
    "x y.txt",
    "nested/only/here/file.txt",
    "nested/file.txt",
    "#hash",
    "!bang",
    "z",
    "a[b",
    "]",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab.txt",
]

IGNORE_FILES = {
    "names": "*.log\n*.pyc\n",
    "negation": "*.log\n!keep.log\n",
    "dir-only": "build/\n",
    "anchored": "/notes.md\nsrc/main.py\n",
    "double-star": "docs/**/*.md\n**/here/\nlogs/**\n",
    "reinclude-under-excluded-dir": "out/\n!out/keep.txt\n",
    "reinclude-with-star": "out/*\n!out/keep.txt\n",
    "classes-and-escapes": "[ac]b.txt\n\\#hash\n\\!bang\nx\\ y.txt\n",
    "comments-and-blanks": "# a comment\n\n   \n*.png\n",
    "middle-slash": "nested/file.txt\n",
    # malformed or hostile patterns: git never errors, and neither does the packager
    "empty-range": "[z-a]\n",
    "unterminated-class": "a[b\n*.log\n",
    "bracket-first-in-class": "[]]\n",
    "many-stars": "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*c\n*b.txt\n",
}


def git_kept(root: Path) -> set[str]:
    subprocess.run(["git", "init", "-q", str(root)], check=True, capture_output=True)
    out = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"],
        cwd=root,
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(root), "GIT_CONFIG_NOSYSTEM": "1"},
    ).stdout.decode()
    return {p for p in out.split("\0") if p}


@pytest.mark.parametrize("rules", IGNORE_FILES.values(), ids=list(IGNORE_FILES))
def test_same_files_as_git(tmp_path: Path, rules: str) -> None:
    root = tmp_path / "p"
    for rel in TREE:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / ".gitignore").write_text(rules)
    ours = set(collect_directory(root).files)
    assert ours == git_kept(root)
    assert ours < {*TREE, ".gitignore"}  # every rule set excludes something
