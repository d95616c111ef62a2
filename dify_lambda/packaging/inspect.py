"""``dify-lambda inspect``: what a package is, what it serves and what it needs, as data or text."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from dify_lambda.packaging.limits import MIB
from dify_lambda.packaging.providers import CredentialField, ModelProviderSpec
from dify_lambda.packaging.reader import PluginPackage

__all__ = ["describe", "iso_time", "render_text"]

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _credentials(fields: tuple[CredentialField, ...]) -> list[dict[str, Any]]:
    return [{"variable": f.variable, "type": f.type, "required": f.required} for f in fields]


def _provider(p: ModelProviderSpec) -> dict[str, Any]:
    return {
        "name": p.name,
        "label": p.label,
        "yaml": p.yaml_path,
        "model_types": list(p.supported_model_types),
        "configurate_methods": list(p.configurate_methods),
        "provider_credentials": _credentials(p.provider_credentials),
        "model_credentials": _credentials(p.model_credentials),
        "predefined_models": {t: [m.model for m in models] for t, models in p.predefined_models.items()},
        "provider_source": p.provider_source,
        "model_sources": list(p.model_sources),
    }


def iso_time(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(pkg: PluginPackage) -> dict[str, Any]:
    """Everything ``inspect`` shows, with stable keys (``--json`` prints exactly this)."""
    m = pkg.manifest
    permission = m.resource.permission
    sig = pkg.signature
    return {
        "unique_identifier": pkg.unique_identifier,
        "plugin_id": pkg.plugin_id,
        "author": m.author,
        "name": m.name,
        "version": m.version,
        "label": m.label.en_US,
        "checksum": pkg.checksum,
        "serverless_filename": pkg.serverless_filename,
        "runner": {
            "language": m.meta.runner.language,
            "version": m.meta.runner.version,
            "entrypoint": m.meta.runner.entrypoint,
        },
        "architectures": list(m.meta.arch),
        "memory": {"bytes": m.resource.memory, "mb": round(m.resource.memory / MIB, 2)},
        "permissions": permission.model_dump(mode="json", exclude_none=True) if permission else {},
        "served": bool(pkg.providers),
        "unsupported_kinds": {k: list(v) for k, v in pkg.other_kinds.items()},
        "providers": [_provider(p) for p in pkg.providers],
        "signature": {
            "status": "signed" if sig else "unsigned",
            "time": sig.time if sig else None,
            "time_iso": iso_time(sig.time) if sig else None,
            "verified": False,
        },
        "uncompressed_size": pkg.uncompressed_size,
        "entry_count": len(pkg.entries),
        "warnings": list(pkg.warnings),
    }


def _flatten(prefix: str, value: Any) -> list[str]:
    if isinstance(value, dict):
        out: list[str] = []
        for k, v in value.items():
            out.extend(_flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return [f"{prefix}={str(value).lower() if isinstance(value, bool) else value}"]


def _fields(items: list[dict[str, Any]]) -> str:
    if not items:
        return "none"
    # Providers repeat a variable once per model type it shows on; list each name once.
    first: dict[str, dict[str, Any]] = {}
    for item in items:
        first.setdefault(item["variable"], item)
    items = list(first.values())
    return ", ".join(
        f"{i['variable']} ({i['type']}, {'required' if i['required'] else 'optional'})" for i in items
    )


def render_text(d: dict[str, Any]) -> str:
    """A readable block for people."""
    r, sig = d["runner"], d["signature"]
    if sig["status"] == "signed":
        signature = f"signed at {sig['time_iso']} (not verified; run `dify-lambda verify --key`)"
    else:
        signature = "unsigned"
    rows = [
        ("plugin id", d["plugin_id"]),
        ("version", d["version"]),
        ("label", d["label"]),
        ("checksum", d["checksum"]),
        (
            "runner",
            f"{r['language']} {r['version']}, entrypoint {r['entrypoint']} (python -m {r['entrypoint']})",
        ),
        ("architectures", ", ".join(d["architectures"])),
        ("memory", f"{d['memory']['bytes']} bytes ({d['memory']['mb']:g} MB)"),
        ("permissions", ", ".join(_flatten("", d["permissions"])) or "none"),
        ("signature", signature),
        ("size", f"{d['uncompressed_size']} bytes uncompressed, {d['entry_count']} entries"),
    ]
    lines = [d["unique_identifier"]]
    lines += [f"  {k:<14} {v}" for k, v in rows]
    lines += [f"  {'warning':<14} {w}" for w in d.get("warnings", [])]
    if d["unsupported_kinds"]:
        kinds = ", ".join(f"{k} ({len(v)})" for k, v in d["unsupported_kinds"].items())
        lines.append(f"  {'note':<14} only model providers are served; ignored: {kinds}")
    if not d["providers"]:
        lines.append(f"  {'providers':<14} none (nothing for dify-lambda to serve)")
    for p in d["providers"]:
        lines.append(f"  provider {p['name']} ({p['label']})  {p['yaml']}")
        rows = [
            ("model types", ", ".join(p["model_types"])),
            ("configurate methods", ", ".join(p["configurate_methods"])),
            ("provider credentials", _fields(p["provider_credentials"])),
            ("model credentials", _fields(p["model_credentials"])),
        ]
        rows += [
            (f"predefined {t}", ", ".join(models) or "none") for t, models in p["predefined_models"].items()
        ]
        lines += [f"    {k:<21} {v}" for k, v in rows]
    # Labels and names come from the package: no control character (terminal escapes, line breaks)
    # and no lone surrogate (unencodable) reaches the terminal.
    return "\n".join(_UNPRINTABLE.sub("?", line) for line in lines) + "\n"
