"""Build good and bad plugin packages for tests, in memory or on disk.

``plugin_files()`` is a minimal valid model plugin (manifest, main.py, one provider with one
predefined LLM, _assets/icon.svg, requirements.txt). ``bad_packages()`` is the corpus of broken
packages, each with the error class and the message fragment the reader must produce.
"""

from __future__ import annotations

import copy
import io
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from dify_lambda.packaging.errors import (
    ManifestError,
    PackageError,
    PackageTooLargeError,
    UnsafePackageError,
    UnsupportedRunnerError,
)
from dify_lambda.packaging.limits import ReadLimits

FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def manifest_doc() -> dict[str, Any]:
    return {
        "version": "0.0.1",
        "type": "plugin",
        "author": "acme",
        "name": "tiny",
        "label": {"en_US": "Tiny"},
        "description": {"en_US": "A tiny test plugin"},
        "icon": "icon.svg",
        "created_at": "2025-01-01T00:00:00Z",
        "resource": {"memory": 268435456, "permission": {"model": {"enabled": False}}},
        "plugins": {"models": ["provider/tiny.yaml"]},
        "meta": {
            "version": "0.0.1",
            "arch": ["amd64", "arm64"],
            "runner": {"language": "python", "version": "3.12", "entrypoint": "main"},
        },
    }


def provider_doc() -> dict[str, Any]:
    return {
        "provider": "tiny",
        "label": {"en_US": "Tiny AI"},
        "icon_small": {"en_US": "icon.svg"},
        "supported_model_types": ["llm"],
        "configurate_methods": ["predefined-model", "customizable-model"],
        "provider_credential_schema": {
            "credential_form_schemas": [
                {
                    "variable": "api_key",
                    "label": {"en_US": "API Key"},
                    "type": "secret-input",
                    "required": True,
                }
            ]
        },
        "model_credential_schema": {
            "model": {"label": {"en_US": "Model"}},
            "credential_form_schemas": [
                {
                    "variable": "endpoint",
                    "label": {"en_US": "Endpoint"},
                    "type": "text-input",
                    "required": False,
                }
            ],
        },
        "models": {"llm": {"predefined": ["models/llm/*.yaml"]}},
        "extra": {"python": {"provider_source": "provider/tiny.py", "model_sources": ["models/llm/llm.py"]}},
    }


def model_doc() -> dict[str, Any]:
    return {
        "model": "tiny-chat",
        "label": {"en_US": "Tiny Chat"},
        "model_type": "llm",
        "features": ["stream-tool-call"],
        "model_properties": {"mode": "chat", "context_size": 4096},
        "parameter_rules": [{"name": "temperature", "use_template": "temperature"}],
    }


def dump(doc: Any) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False).encode()


def set_path(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Return a copy of ``doc`` with ``a.b.c`` set to ``value`` (``...`` deletes the key)."""
    out = copy.deepcopy(doc)
    node = out
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


def plugin_files(**edits: bytes | None) -> dict[str, bytes]:
    """The minimal valid plugin.

    ``edits`` maps paths (``__`` for ``/``, ``_dot_`` for ``.``) to new bytes, or None to delete.
    """
    files = {
        "_assets/icon.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>\n',
        "main.py": b"from dify_plugin import DifyPluginEnv, Plugin\n\nplugin = Plugin(DifyPluginEnv())\n"
        b'\nif __name__ == "__main__":\n    plugin.run()\n',
        "manifest.yaml": dump(manifest_doc()),
        "models/llm/llm.py": b"class TinyLLM:\n    pass\n",
        "models/llm/llm.yaml": dump(model_doc()),
        "provider/tiny.py": b"class TinyProvider:\n    pass\n",
        "provider/tiny.yaml": dump(provider_doc()),
        "requirements.txt": b"dify_plugin>=0.10,<0.11\n",
    }
    return edit(files, {k.replace("__", "/").replace("_dot_", "."): v for k, v in edits.items()})


def edit(files: Mapping[str, bytes], changes: Mapping[str, bytes | None]) -> dict[str, bytes]:
    out = dict(files)
    for path, content in changes.items():
        if content is None:
            out.pop(path, None)
        else:
            out[path] = content
    return out


def build_zip(
    files: Mapping[str, bytes] | Iterable[tuple[str, bytes]],
    *,
    comment: bytes = b"",
    compression: int = zipfile.ZIP_DEFLATED,
    sort: bool = True,
    tweak: Callable[[zipfile.ZipInfo], None] | None = None,
) -> bytes:
    """A zip of ``files`` (duplicates allowed when given as pairs); ``tweak`` edits each ZipInfo."""
    pairs = list(files.items()) if isinstance(files, Mapping) else list(files)
    if sort:
        pairs.sort(key=lambda p: p[0])
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w") as zf:
        warnings.simplefilter("ignore")  # duplicate names are wanted in the bad corpus
        for name, content in pairs:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = compression
            info.create_system = 3
            info.external_attr = (0o040755 << 16) | 0x10 if name.endswith("/") else 0o100644 << 16
            if tweak is not None:
                tweak(info)
            zf.writestr(info, content)
        zf.comment = comment
    return out.getvalue()


def good_package(**edits: bytes | None) -> bytes:
    return build_zip(plugin_files(**edits))


def patch_central_size(data: bytes, entry: str, new_size: int) -> bytes:
    """Rewrite the uncompressed size of ``entry`` in the central directory (a lying header)."""
    buf = bytearray(data)
    sig = b"PK\x01\x02"
    pos = buf.find(sig)
    while pos != -1:
        name_len = struct.unpack_from("<H", buf, pos + 28)[0]
        name = bytes(buf[pos + 46 : pos + 46 + name_len]).decode()
        if name == entry:
            struct.pack_into("<I", buf, pos + 24, new_size)
            return bytes(buf)
        pos = buf.find(sig, pos + 4)
    raise LookupError(entry)


def set_flag_bits(data: bytes, entry: str, bits: int) -> bytes:
    """OR ``bits`` into the general-purpose flags of ``entry`` (local and central headers)."""
    buf = bytearray(data)
    for sig, flag_off, name_len_off, name_off in ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46)):
        pos = buf.find(sig)
        while pos != -1:
            name_len = struct.unpack_from("<H", buf, pos + name_len_off)[0]
            if bytes(buf[pos + name_off : pos + name_off + name_len]).decode() == entry:
                flags = struct.unpack_from("<H", buf, pos + flag_off)[0]
                struct.pack_into("<H", buf, pos + flag_off, flags | bits)
            pos = buf.find(sig, pos + 4)
    return bytes(buf)


def write_tree(root: Path, files: Mapping[str, bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


@cache
def rsa_key_pair(bits: int = 2048) -> tuple[bytes, bytes]:
    """(private PEM ``RSA PRIVATE KEY``, public PEM ``RSA PUBLIC KEY``), generated once per process."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    return private, public


# --- the corpus of bad packages ------------------------------------------------------------------


@dataclass(frozen=True)
class BadCase:
    id: str
    data: bytes
    error: type[PackageError]
    fragment: str
    limits: ReadLimits = field(default_factory=ReadLimits)


def _symlink(info: zipfile.ZipInfo) -> None:
    if info.filename == "main.py":
        info.external_attr = 0o120777 << 16


def _fifo(info: zipfile.ZipInfo) -> None:
    if info.filename == "main.py":
        info.external_attr = 0o010644 << 16


def _manifest(dotted: str, value: Any) -> bytes:
    return good_package(manifest_dot_yaml=dump(set_path(manifest_doc(), dotted, value)))


def _provider(dotted: str, value: Any) -> bytes:
    return good_package(provider__tiny_dot_yaml=dump(set_path(provider_doc(), dotted, value)))


def _bomb() -> bytes:
    return build_zip(plugin_files(**{"_assets__zeros_dot_bin": b"\0" * (8 * 1024 * 1024)}))


def _lying_header() -> bytes:
    big = bytes(range(256)) * 1024  # 256 KiB of incompressible-ish data
    return patch_central_size(good_package(**{"_assets__data_dot_bin": big}), "_assets/data.bin", 10)


def _alias_bomb() -> bytes:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 10) + "]")
    return good_package(manifest_dot_yaml="\n".join(lines).encode())


def bad_packages() -> list[BadCase]:
    """At least fifteen broken packages, built fresh (cheap: everything is in memory)."""
    files = plugin_files()
    many = {f"_assets/f{i}.txt": b"x" for i in range(30)}
    big = {f"_assets/big{i}.bin": bytes([i]) * (40_000 + i * 1000) for i in range(7)}
    return [
        BadCase("not-a-zip", b"this is not a zip file", UnsafePackageError, "not a zip archive"),
        BadCase(
            "traversal",
            build_zip(edit(files, {"../evil.py": b"x"})),
            UnsafePackageError,
            "unsafe entry '../evil.py': path traversal ('..')",
        ),
        BadCase(
            "traversal-inner",
            build_zip(edit(files, {"provider/../../evil.py": b"x"})),
            UnsafePackageError,
            "path traversal ('..')",
        ),
        BadCase(
            "absolute",
            build_zip(edit(files, {"/etc/cron.d/evil": b"x"})),
            UnsafePackageError,
            "unsafe entry '/etc/cron.d/evil': absolute path",
        ),
        BadCase(
            "drive-letter",
            build_zip(edit(files, {"C:/evil.py": b"x"})),
            UnsafePackageError,
            "unsafe entry 'C:/evil.py': absolute path",
        ),
        BadCase(
            "backslash",
            build_zip(edit(files, {"..\\evil.py": b"x"})),
            UnsafePackageError,
            "backslash in entry name",
        ),
        BadCase(
            "dot-segment",
            build_zip(edit(files, {"./main2.py": b"x"})),
            UnsafePackageError,
            "non-canonical path",
        ),
        BadCase(
            "symlink",
            build_zip(files, tweak=_symlink),
            UnsafePackageError,
            "symlink entry 'main.py' is not allowed",
        ),
        BadCase(
            "special-file",
            build_zip(files, tweak=_fifo),
            UnsafePackageError,
            "special file entry 'main.py' is not allowed",
        ),
        BadCase(
            "duplicate",
            build_zip([*files.items(), ("main.py", b"evil")]),
            UnsafePackageError,
            "duplicate entry 'main.py'",
        ),
        BadCase(
            "encrypted",
            set_flag_bits(build_zip(files), "main.py", 0x1),
            UnsafePackageError,
            "encrypted entry 'main.py' is not allowed",
        ),
        BadCase(
            "bzip2",
            build_zip(files, compression=zipfile.ZIP_BZIP2),
            UnsafePackageError,
            "uses compression method 12 (only stored/deflate)",
        ),
        BadCase(
            "dir-with-data",
            build_zip(edit(files, {"provider/": b"surprise"})),
            UnsafePackageError,
            "directory entry 'provider/' carries data",
        ),
        BadCase(
            "file-and-dir",
            build_zip(edit(files, {"main.py/": b""})),
            UnsafePackageError,
            "'main.py' is both a file and a directory entry",
        ),
        BadCase(
            "file-as-dir",
            build_zip(edit(files, {"main.py/inner.py": b"x"})),
            UnsafePackageError,
            "entry 'main.py/inner.py' is inside 'main.py', a file",
        ),
        BadCase(
            "too-many-entries",
            build_zip(edit(files, many)),
            PackageTooLargeError,
            "38 entries, over the limit of 20",
            ReadLimits(max_entries=20),
        ),
        BadCase(
            "too-large",
            build_zip(edit(files, big)),
            PackageTooLargeError,
            "over the limit of 200000 bytes; largest files: _assets/big6.bin (44.9 KB), _assets/big5.bin",
            ReadLimits(max_uncompressed_bytes=200_000, max_entry_bytes=200_000),
        ),
        BadCase(
            "zip-bomb",
            _bomb(),
            UnsafePackageError,
            "entry '_assets/zeros.bin' looks like a zip bomb (compression ratio over 200:1)",
        ),
        BadCase("lying-header", _lying_header(), UnsafePackageError, "entry '_assets/data.bin' is corrupt"),
        BadCase(
            "no-manifest",
            build_zip(edit(files, {"manifest.yaml": None})),
            ManifestError,
            "manifest.yaml is missing at the package root",
        ),
        BadCase(
            "manifest-not-yaml",
            good_package(manifest_dot_yaml=b"name: [unclosed\n"),
            ManifestError,
            "manifest.yaml: invalid YAML at line",
        ),
        BadCase(
            "manifest-not-mapping",
            good_package(manifest_dot_yaml=b"- a\n- b\n"),
            ManifestError,
            "manifest.yaml: expected a mapping at the top level, got a list",
        ),
        BadCase(
            "manifest-alias-bomb", _alias_bomb(), ManifestError, "manifest.yaml: YAML expands to more than"
        ),
        BadCase(
            "manifest-field-missing",
            _manifest("meta.runner.version", ...),
            ManifestError,
            "manifest.yaml: meta.runner.version: Field required",
        ),
        BadCase(
            "manifest-bad-arch",
            _manifest("meta.arch", ["amd64", "sparc"]),
            ManifestError,
            "manifest.yaml: meta.arch[1]: Input should be 'amd64' or 'arm64'",
        ),
        BadCase(
            "manifest-bad-version",
            _manifest("version", "1.x"),
            ManifestError,
            "manifest.yaml: version: not a plugin version like 0.0.1",
        ),
        BadCase(
            "manifest-bad-author",
            _manifest("author", "Acme Corp"),
            ManifestError,
            "manifest.yaml: author: String should match pattern",
        ),
        BadCase(
            "runner-language",
            _manifest("meta.runner.language", "go"),
            UnsupportedRunnerError,
            "manifest.yaml: meta.runner.language is not supported; only python is",
        ),
        BadCase(
            "runner-version-too-long",
            _manifest("meta.runner.version", "3." + "1" * 200),
            ManifestError,
            "manifest.yaml: meta.runner.version: String should have at most 128 characters",
        ),
        BadCase(
            "entrypoint-missing",
            build_zip(edit(files, {"main.py": None})),
            ManifestError,
            "meta.runner.entrypoint 'main': main.py not found in the package",
        ),
        BadCase(
            "no-assets",
            build_zip(edit(files, {"_assets/icon.svg": None})),
            ManifestError,
            "_assets/ is missing (the SDK refuses to load a plugin without it)",
        ),
        BadCase(
            "icon-missing",
            _manifest("icon", "nope.svg"),
            ManifestError,
            "manifest.yaml: icon: 'nope.svg' not found in _assets/",
        ),
        BadCase(
            "provider-yaml-missing",
            build_zip(edit(files, {"provider/tiny.yaml": None})),
            ManifestError,
            "manifest.yaml: plugins.models[0]: 'provider/tiny.yaml' not found in the package",
        ),
        BadCase(
            "provider-yaml-escapes",
            _manifest("plugins.models", ["../outside.yaml"]),
            ManifestError,
            "plugins.models[0]: '../outside.yaml' is not a safe relative path",
        ),
        BadCase(
            "provider-schema",
            _provider("supported_model_types", ["llm", "hologram"]),
            ManifestError,
            "provider/tiny.yaml: supported_model_types[1]: Input should be",
        ),
        BadCase(
            "provider-icon-missing",
            _provider("icon_small", {"en_US": "small.svg"}),
            ManifestError,
            "provider/tiny.yaml: icon_small: 'small.svg' not found in _assets/",
        ),
        BadCase(
            "provider-source-missing",
            build_zip(edit(files, {"provider/tiny.py": None})),
            ManifestError,
            "provider/tiny.yaml: extra.python.provider_source: 'provider/tiny.py' not found in the package",
        ),
        BadCase(
            "model-source-missing",
            build_zip(edit(files, {"models/llm/llm.py": None})),
            ManifestError,
            "provider/tiny.yaml: extra.python.model_sources[0]: 'models/llm/llm.py' not found in the package",
        ),
        BadCase(
            "predefined-glob-unterminated-class",
            _provider("models.llm.predefined", ["models/llm/[ab.yaml"]),
            ManifestError,
            "provider/tiny.yaml: models.llm.predefined[0]: malformed pattern: it has an unterminated",
        ),
        BadCase(
            "predefined-glob-traversal",
            _provider("models.llm.predefined", ["../*.yaml"]),
            ManifestError,
            "provider/tiny.yaml: models.llm.predefined[0]: pattern must stay inside the plugin directory",
        ),
        BadCase(
            "predefined-glob-too-long",
            _provider("models.llm.predefined", ["*" * 1025]),
            ManifestError,
            "provider/tiny.yaml: models.llm.predefined[0]: pattern longer than 1024 characters",
        ),
        BadCase(
            "predefined-glob-too-many",
            _provider("models.llm.predefined", ["models/llm/*.yaml"] * 257),
            ManifestError,
            "provider/tiny.yaml: 257 predefined-model patterns, over the limit of 256",
        ),
        BadCase(
            "predefined-glob-scan-budget",
            build_zip(
                edit(
                    files,
                    {
                        **{f"_assets/{i:02d}" + "a" * 1000: b"" for i in range(20)},
                        "provider/tiny.yaml": dump(
                            set_path(provider_doc(), "models.llm.predefined", [f"*{i}*" for i in range(256)])
                        ),
                    },
                )
            ),
            ManifestError,
            "predefined-model patterns need more than 5000000 matching steps",
        ),
        BadCase(
            "manifest-nested-300-block",
            good_package(manifest_dot_yaml=b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 300))),
            ManifestError,
            "manifest.yaml: invalid YAML at line 65, column",
        ),
        BadCase(
            "manifest-nested-20000-flow",
            good_package(manifest_dot_yaml=b"a: " + b"[" * 20_000),
            ManifestError,
            "manifest.yaml: invalid YAML at line 1, column 67: nested deeper than 64 levels",
        ),
        BadCase(
            "provider-nested-20000-json",
            good_package(provider__tiny_dot_yaml=b"{" + b'"a": {' * 20_000),
            ManifestError,
            "provider/tiny.yaml: invalid YAML at line 1, column",
        ),
        BadCase(
            "manifest-lone-surrogate",
            good_package(manifest_dot_yaml=b'label: {en_US: "\\udc80"}\n'),
            ManifestError,
            "manifest.yaml: invalid YAML at line 1, column 16: escaped lone surrogate",
        ),
        BadCase(
            "manifest-not-utf8",
            good_package(manifest_dot_yaml=b"name: \xff\xfe\n"),
            ManifestError,
            "manifest.yaml: not UTF-8 text (byte 6)",
        ),
        BadCase(
            "model-yaml-not-utf8",
            good_package(models__llm__llm_dot_yaml=b"model: \xc3\x28\n"),
            ManifestError,
            "models/llm/llm.yaml: not UTF-8 text (byte 7)",
        ),
        BadCase(
            "yaml-tag-not-echoed",
            good_package(manifest_dot_yaml=b"a: !!python/object:os.system secret-value\n"),
            ManifestError,
            "manifest.yaml: invalid YAML at line 1, column 4: "
            "could not determine a constructor for the tag '...'",
        ),
        BadCase(
            "model-yaml-schema",
            good_package(models__llm__llm_dot_yaml=dump(set_path(model_doc(), "model_type", "banana"))),
            ManifestError,
            "models/llm/llm.yaml: model_type: Input should be",
        ),
        BadCase(
            "model-yaml-properties",
            good_package(models__llm__llm_dot_yaml=dump(set_path(model_doc(), "model_properties", ...))),
            ManifestError,
            "models/llm/llm.yaml: model_properties: Field required",
        ),
    ]
