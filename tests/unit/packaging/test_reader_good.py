"""A valid package reads into a complete, consistent description."""

from __future__ import annotations

import base64
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

from dify_lambda.errors import PackageError
from dify_lambda.packaging.limits import ReadLimits
from dify_lambda.packaging.reader import PluginPackage


def test_minimal_plugin_reads() -> None:
    files = plugin_files()
    pkg = PluginPackage.from_bytes(build_zip(files), name="tiny.difypkg")
    assert pkg.name == "tiny.difypkg"
    assert pkg.manifest.author == "acme"
    assert pkg.manifest.meta.runner.version == "3.12"
    assert pkg.entries == sorted(files)
    assert pkg.uncompressed_size == sum(len(v) for v in files.values())
    assert pkg.signature is None
    assert pkg.signature is None
    assert pkg.read("main.py") == files["main.py"]
    assert pkg.files() == files
    with pytest.raises(PackageError, match="no entry 'nope'"):
        pkg.read("nope")


def test_provider_spec() -> None:
    (provider,) = PluginPackage.from_bytes(good_package()).providers
    assert provider.name == "tiny"
    assert provider.label == "Tiny AI"
    assert provider.yaml_path == "provider/tiny.yaml"
    assert provider.supported_model_types == ("llm",)
    assert provider.configurate_methods == ("predefined-model", "customizable-model")
    assert [f.variable for f in provider.provider_credentials] == ["api_key"]
    assert [f.variable for f in provider.model_credentials] == ["endpoint"]
    assert provider.provider_credentials[0].type == "secret-input"
    assert provider.provider_credentials[0].required
    assert not provider.model_credentials[0].required
    assert [m.model for ms in provider.predefined_models.values() for m in ms] == ["tiny-chat"]
    (model,) = provider.predefined_models["llm"]
    assert (model.model, model.model_type, model.file, model.label) == (
        "tiny-chat",
        "llm",
        "models/llm/llm.yaml",
        "Tiny Chat",
    )
    assert provider.provider_source == "provider/tiny.py"
    assert provider.model_sources == ("models/llm/llm.py",)


def test_position_file_and_several_model_types() -> None:
    provider = set_path(provider_doc(), "supported_model_types", ["llm", "text-embedding"])
    provider = set_path(
        provider,
        "models",
        {
            "llm": {"predefined": ["models/llm/*.yaml"]},
            "text_embedding": {"predefined": ["models/text_embedding/*.yaml"]},
        },
    )
    emb = set_path(set_path(model_doc(), "model", "tiny-embed"), "model_type", "text-embedding")
    emb = set_path(emb, "label", ...)
    files = plugin_files(
        provider__tiny_dot_yaml=dump(provider),
        models__llm___position_dot_yaml=dump(["tiny-chat"]),
        models__text_embedding__e_dot_yaml=dump(emb),
    )
    (spec,) = PluginPackage.from_bytes(build_zip(files)).providers
    assert spec.positions == {"llm": ("tiny-chat",)}
    assert [m.model for m in spec.predefined_models["llm"]] == ["tiny-chat"]
    (embed,) = spec.predefined_models["text-embedding"]
    assert embed.label == "tiny-embed"  # the SDK labels a model by its name when the label is absent


def test_unquoted_python_version_is_read_as_text() -> None:
    text = plugin_files()["manifest.yaml"].decode().replace("version: '3.12'", "version: 3.12")
    assert "version: 3.12\n" in text
    pkg = PluginPackage.from_bytes(good_package(manifest_dot_yaml=text.encode()))
    assert pkg.manifest.meta.runner.version == "3.12"


def test_python_313_is_supported() -> None:
    doc = set_path(manifest_doc(), "meta.runner.version", "3.13")
    assert (
        PluginPackage.from_bytes(good_package(manifest_dot_yaml=dump(doc))).manifest.meta.runner.version
        == "3.13"
    )


def test_other_plugin_kinds_are_readable_but_recorded() -> None:
    doc = set_path(manifest_doc(), "plugins.tools", ["provider/tool.yaml"])
    pkg = PluginPackage.from_bytes(
        good_package(manifest_dot_yaml=dump(doc), provider__tool_dot_yaml=b"identity: {}\n")
    )
    assert pkg.other_kinds == {"tools": ["provider/tool.yaml"]}
    assert len(pkg.providers) == 1


def test_signature_comment_is_parsed() -> None:
    comment = json.dumps({"signature": base64.b64encode(b"\x01\x02").decode(), "time": 1744632035}).encode()
    pkg = PluginPackage.from_bytes(build_zip(plugin_files(), comment=comment))
    assert pkg.signature is not None
    assert (pkg.signature.signature, pkg.signature.time) == (b"\x01\x02", 1744632035)
    assert pkg.comment == comment


@pytest.mark.parametrize(
    "comment", [b"hello", b"[]", b'{"signature": "!!!", "time": 1}', b'{"signature": "AA==", "time": "1"}']
)
def test_other_comments_are_not_signatures(comment: bytes) -> None:
    assert PluginPackage.from_bytes(build_zip(plugin_files(), comment=comment)).signature is None


def test_small_repetitive_files_are_not_bombs() -> None:
    # 512 KiB of zeros compresses ~1000:1 but stays under the ratio floor.
    pkg = PluginPackage.from_bytes(good_package(_assets__pad_dot_bin=b"\0" * (512 * 1024)))
    assert "_assets/pad.bin" in pkg.entries


def test_ratio_cap_is_configurable() -> None:
    data = good_package(_assets__pad_dot_bin=b"\0" * (2 * 1024 * 1024))
    with pytest.raises(PackageError, match="zip bomb"):
        PluginPackage.from_bytes(data)
    assert PluginPackage.from_bytes(data, limits=ReadLimits(max_ratio=100_000)).entries


def test_stored_entries_are_accepted() -> None:
    import zipfile

    pkg = PluginPackage.from_bytes(build_zip(plugin_files(), compression=zipfile.ZIP_STORED))
    assert pkg.checksum


def test_limits_validate() -> None:
    with pytest.raises(ValueError, match="max_entries must be positive"):
        ReadLimits(max_entries=0)
    with pytest.raises(ValueError, match="max_ratio"):
        ReadLimits(max_ratio=1)


def test_provider_declared_twice() -> None:
    doc = set_path(manifest_doc(), "plugins.models", ["provider/tiny.yaml", "provider/tiny.yaml"])
    with pytest.raises(PackageError, match="provider 'tiny' is declared twice"):
        PluginPackage.from_bytes(good_package(manifest_dot_yaml=dump(doc)))


def test_no_providers_is_readable() -> None:
    doc = set_path(manifest_doc(), "plugins.models", [])
    files = edit(plugin_files(manifest_dot_yaml=dump(doc)), {"provider/tiny.yaml": None})
    assert PluginPackage.from_bytes(build_zip(files)).providers == []
