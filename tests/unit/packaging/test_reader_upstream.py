"""What the SDK and the daemon accept loads here too (docs/limits.md, "What a package may declare").

Each case is something a published plugin does and that an earlier reader refused.
"""

from __future__ import annotations

import json

import pytest
from support.pkgfactory import (
    build_zip,
    dump,
    edit,
    good_package,
    manifest_doc,
    model_doc,
    plugin_files,
    provider_doc,
    set_path,
)

from dify_lambda.packaging.inspect import describe, render_text
from dify_lambda.packaging.reader import PluginPackage


def _provider(dotted: str, value: object) -> bytes:
    return good_package(provider__tiny_dot_yaml=dump(set_path(provider_doc(), dotted, value)))


def test_a_predefined_pattern_matching_no_file_is_a_warning() -> None:
    # huggingface_tei lists models/rerank/*.yaml with no such file; the SDK's glob yields nothing.
    data = _provider("models.rerank", {"predefined": ["models/rerank/*.yaml"]})
    pkg = PluginPackage.from_bytes(data)
    assert pkg.warnings == ("provider/tiny.yaml: models.rerank.predefined[0]: pattern matches no file",)
    assert pkg.providers[0].predefined_models["rerank"] == ()
    d = describe(pkg)
    assert d["warnings"] == list(pkg.warnings)
    assert "  warning        provider/tiny.yaml: models.rerank.predefined[0]" in render_text(d)
    json.dumps(d)


def test_a_package_without_surprises_has_no_warning() -> None:
    assert PluginPackage.from_bytes(good_package()).warnings == ()


@pytest.mark.parametrize("version", ["3.10", "3.11", "3.14", "python3"])
def test_any_runner_version_is_read_and_exposed(version: str) -> None:
    # nomic, novita, perfxcloud and upstage declare 3.10; the builder chooses the Lambda Python.
    manifest = dump(set_path(manifest_doc(), "meta.runner.version", version))
    pkg = PluginPackage.from_bytes(good_package(manifest_dot_yaml=manifest))
    assert pkg.manifest.meta.runner.version == version
    assert describe(pkg)["runner"]["version"] == version


def test_unknown_model_type_keys_are_ignored_like_the_sdk() -> None:
    data = _provider("models.text2img", {"predefined": ["nothing/*.yaml"]})
    assert "text2img" not in PluginPackage.from_bytes(data).providers[0].predefined_models


def test_empty_model_type_and_method_lists_load() -> None:
    doc = set_path(set_path(provider_doc(), "supported_model_types", []), "configurate_methods", [])
    pkg = PluginPackage.from_bytes(good_package(provider__tiny_dot_yaml=dump(doc)))
    assert pkg.providers[0].supported_model_types == ()


@pytest.mark.parametrize(
    ("pattern", "selected"),
    [
        # pathlib's "**" component spans zero or more directories (the SDK's Path.cwd().glob)
        ("models/**/*.yaml", ["models/llm/deep/b.yaml", "models/llm/llm.yaml"]),
        ("./models/llm/*.yaml", ["models/llm/llm.yaml"]),
        ("models/llm/[!x]*.yaml", ["models/llm/llm.yaml"]),
        ("models/llm/*", ["models/llm/llm.yaml"]),
        # an empty range matches nothing in fnmatch and in Go's filepath.Match: accepted, a warning
        ("models/llm/[z-a]*.yaml", []),
        # pathlib: a trailing "**" selects directories only
        ("models/**", []),
    ],
)
def test_model_globs_follow_the_sdk(pattern: str, selected: list[str]) -> None:
    provider = set_path(provider_doc(), "models.llm.predefined", [pattern])
    provider = set_path(provider, "extra.python.model_sources", [])
    files = edit(
        plugin_files(),
        {
            "models/llm/llm.py": None,
            "models/llm/deep/b.yaml": dump(set_path(model_doc(), "model", "b")),
            "provider/tiny.yaml": dump(provider),
        },
    )
    pkg = PluginPackage.from_bytes(build_zip(files))
    assert [m.file for m in pkg.providers[0].predefined_models["llm"]] == selected
    assert bool(pkg.warnings) is (not selected)


def test_text_output_never_carries_control_characters() -> None:
    manifest = dump(set_path(manifest_doc(), "label", {"en_US": "Tiny\x1b[2J\nfake line"}))
    text = render_text(describe(PluginPackage.from_bytes(good_package(manifest_dot_yaml=manifest))))
    assert "\x1b" not in text
    assert "Tiny?[2J?fake line" in text
