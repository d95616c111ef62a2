"""Predefined-model patterns against the SDK's own expansion, ``pathlib.Path(root).glob(pattern)``."""

from __future__ import annotations

from pathlib import Path

import pytest

from dify_lambda.packaging.pathmatch import compile_model_glob

TREE = [
    "models/llm/a.yaml",
    "models/llm/b.yml",
    "models/llm/_position.yaml",
    "models/llm/.hidden.yaml",
    "models/llm/deep/c.yaml",
    "models/llm/deep/er/d.yaml",
    "models/text_embedding/e.yaml",
    "models/x[1].yaml",
    "models/z.yaml",
    "top.yaml",
]

PATTERNS = [
    "models/llm/*.yaml",
    "./models/llm/*.yaml",
    "models/llm/*",
    "models/*/*.yaml",
    "models/**/*.yaml",
    "**/*.yaml",
    "models/llm/?.yaml",
    "models/llm/[ab].y*",
    "models/llm/[!a]*.yaml",
    "models/[z-a].yaml",
    "models/x[[]1].yaml",
    "models//llm/*.yaml",
    "models/llm/**/d.yaml",
    "models/rerank/*.yaml",
    "models/**",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_same_files_as_pathlib(tmp_path: Path, pattern: str) -> None:
    for rel in TREE:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    theirs = {p.relative_to(tmp_path).as_posix() for p in tmp_path.glob(pattern) if p.is_file()}
    glob = compile_model_glob(pattern)
    ours = {rel for rel in TREE if glob.match(rel)}
    assert ours == theirs
