"""Package-reader bounds: how long the worst inputs the caps still allow take to read.

- one predefined-model pattern with 40 stars against a 1,000-character name (a backtracking regex
  needed 77 s for 10 stars);
- the largest scan the predefined-pattern budget allows (``MAX_MODEL_MATCH_STEPS``) with
  1,000-character patterns;
- 10,000 entries nested 400 levels deep (the file-under-file check);
- the 70 official plugins' real patterns are in the microsecond range and not measured here.

Usage: ``python bench/bench_patterns.py [--json out.json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.pkgfactory import dump, plugin_files, provider_doc, set_path

from dify_lambda.errors import PackageError
from dify_lambda.packaging.limits import MAX_MODEL_MATCH_STEPS
from dify_lambda.packaging.pathmatch import compile_model_glob
from dify_lambda.packaging.reader import PluginPackage


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(files.items()):
            zf.writestr(name, data)
    return out.getvalue()


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _read(data: bytes) -> None:
    with contextlib.suppress(PackageError):
        PluginPackage.from_bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    args = parser.parse_args()

    glob = compile_model_glob("models/llm/" + "*a" * 40 + "b.yaml")
    one = _timed(lambda: glob.match("models/llm/" + "a" * 1000 + ".yaml"))

    files = plugin_files()
    names = 90
    files.update({"_assets/" + "d/" * 100 + f"{i:04d}" + "a" * 800: b"" for i in range(names)})
    per_pattern = sum(len(n) for n in files) * (1 + 1000 // 64)
    count = MAX_MODEL_MATCH_STEPS // per_pattern
    patterns = ["**/" + "*a" * 498 + f"{i}" for i in range(count)]
    files["provider/tiny.yaml"] = dump(set_path(provider_doc(), "models.llm.predefined", patterns))
    budget = _timed(lambda: _read(_zip(files)))

    deep = plugin_files()
    deep.update({"_assets/" + "d/" * 400 + f"{i:05d}" + "a" * 200: b"" for i in range(9_990)})
    deep_zip = _zip(deep)
    nested = _timed(lambda: _read(deep_zip))

    result = {
        "forty_star_pattern_vs_1000_chars_s": round(one, 4),
        "full_scan_budget_s": round(budget, 2),
        "full_scan_budget_patterns": count,
        "entries_10000_nested_400_s": round(nested, 2),
    }
    for key, value in result.items():
        print(f"{key:40} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
