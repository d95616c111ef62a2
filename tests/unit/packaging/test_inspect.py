"""The inspect description (stable keys) and its text rendering."""

from __future__ import annotations

import json

from support.pkgfactory import dump, good_package, manifest_doc, provider_doc, set_path

from dify_lambda.packaging.inspect import describe, render_text
from dify_lambda.packaging.reader import PluginPackage
from dify_lambda.packaging.signature import sign_package

KEYS = [
    "unique_identifier",
    "plugin_id",
    "author",
    "name",
    "version",
    "label",
    "checksum",
    "serverless_filename",
    "runner",
    "architectures",
    "memory",
    "permissions",
    "served",
    "unsupported_kinds",
    "providers",
    "signature",
    "uncompressed_size",
    "entry_count",
    "warnings",
]


def test_describe_keys_and_values() -> None:
    pkg = PluginPackage.from_bytes(good_package())
    d = describe(pkg)
    assert list(d) == KEYS
    assert d["unique_identifier"] == pkg.unique_identifier
    assert d["runner"] == {"language": "python", "version": "3.12", "entrypoint": "main"}
    assert d["memory"] == {"bytes": 268435456, "mb": 256.0}
    assert d["architectures"] == ["amd64", "arm64"]
    assert d["permissions"] == {"model": {"enabled": False}}
    assert d["signature"] == {"status": "unsigned", "time": None, "time_iso": None, "verified": False}
    assert d["entry_count"] == len(pkg.entries)
    (p,) = d["providers"]
    assert p["predefined_models"] == {"llm": ["tiny-chat"]}
    assert p["provider_credentials"] == [{"variable": "api_key", "type": "secret-input", "required": True}]
    assert json.loads(json.dumps(d)) == d


def test_text_rendering(rsa_keys: tuple[bytes, bytes]) -> None:
    signed = sign_package(good_package(), rsa_keys[0], "partner", now=0)
    text = render_text(describe(PluginPackage.from_bytes(signed)))
    assert text.splitlines()[0].startswith("acme/tiny:0.0.1@")
    assert "signed at 1970-01-01T00:00:00Z (not verified" in text
    assert "268435456 bytes (256 MB)" in text
    assert "provider tiny (Tiny AI)" in text
    assert "api_key (secret-input, required)" in text
    assert "endpoint (text-input, optional)" in text
    assert "predefined llm" in text and "tiny-chat" in text


def test_repeated_credential_variables_are_listed_once() -> None:
    fields = [
        {"variable": "context_size", "label": {"en_US": "Context"}, "type": "text-input", "required": True},
        {"variable": "mode", "label": {"en_US": "Mode"}, "type": "text-input", "required": False},
        {"variable": "context_size", "label": {"en_US": "Context"}, "type": "text-input", "required": True},
    ]
    doc = set_path(provider_doc(), "model_credential_schema.credential_form_schemas", fields)
    d = describe(PluginPackage.from_bytes(good_package(provider__tiny_dot_yaml=dump(doc))))
    assert [f["variable"] for f in d["providers"][0]["model_credentials"]] == [
        "context_size",
        "mode",
        "context_size",
    ]
    assert "context_size (text-input, required), mode (text-input, optional)\n" in render_text(d)


def test_unsupported_kinds_are_called_out() -> None:
    doc = set_path(manifest_doc(), "plugins.endpoints", ["endpoints/e.yaml"])
    pkg = PluginPackage.from_bytes(
        good_package(manifest_dot_yaml=dump(doc), endpoints__e_dot_yaml=b"path: /x\n")
    )
    text = render_text(describe(pkg))
    assert "only model providers are served; ignored: endpoints (1)" in text
