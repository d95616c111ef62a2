"""The demo plugins' declarations parse in every Dify the router supports (1.2 to 1.12).

Dify reads each installed plugin's provider and predefined models into its own model entities
(``core.model_runtime.entities``) when it lists a workspace's providers; one value its enums do not
know (e.g. the ``polling`` feature on Dify <= 1.12.1) fails the whole list. The values below are the
members of those enums in Dify 1.2.0 and 1.12.1; every declared value must be in both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"

_FEATURES_1_2 = frozenset(
    {
        "tool-call",
        "multi-tool-call",
        "agent-thought",
        "vision",
        "stream-tool-call",
        "document",
        "video",
        "audio",
    }
)
#: Dify enum values by (version, enum).
DIFY_ENUMS: dict[str, dict[str, frozenset[str]]] = {
    "1.2.0": {
        "ModelType": frozenset({"llm", "text-embedding", "rerank", "speech2text", "moderation", "tts"}),
        "ModelFeature": _FEATURES_1_2,
        "ModelPropertyKey": frozenset(
            {
                "mode",
                "context_size",
                "max_chunks",
                "file_upload_limit",
                "supported_file_extensions",
                "max_characters_per_chunk",
                "default_voice",
                "voices",
                "word_limit",
                "audio_type",
                "max_workers",
            }
        ),
        "ParameterType": frozenset({"float", "int", "string", "boolean", "text"}),
        "DefaultParameterName": frozenset(
            {
                "temperature",
                "top_p",
                "top_k",
                "presence_penalty",
                "frequency_penalty",
                "max_tokens",
                "response_format",
                "json_schema",
            }
        ),
        "ConfigurateMethod": frozenset({"predefined-model", "customizable-model"}),
        "FormType": frozenset({"text-input", "secret-input", "select", "radio", "switch"}),
    },
}
DIFY_ENUMS["1.12.1"] = {**DIFY_ENUMS["1.2.0"], "ModelFeature": _FEATURES_1_2 | {"structured-output"}}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _declared(plugin: str) -> list[tuple[str, str, str]]:
    """(where, enum, value) for every enum-typed value the plugin declares."""
    out: list[tuple[str, str, str]] = []
    (provider_file,) = (PLUGINS / plugin / "provider").glob("*.yaml")
    provider = _load(provider_file)
    where = f"{plugin}/provider"
    out += [(where, "ModelType", t) for t in provider.get("supported_model_types", [])]
    out += [(where, "ConfigurateMethod", m) for m in provider.get("configurate_methods", [])]
    forms = list((provider.get("provider_credential_schema") or {}).get("credential_form_schemas", []))
    forms += (provider.get("model_credential_schema") or {}).get("credential_form_schemas", [])
    out += [(where, "FormType", f["type"]) for f in forms]
    for model_file in sorted((PLUGINS / plugin / "models").glob("*/*.yaml")):
        if model_file.name.startswith("_"):
            continue
        model = _load(model_file)
        where = f"{plugin}/{model_file.relative_to(PLUGINS / plugin)}"
        out.append((where, "ModelType", model["model_type"]))
        out += [(where, "ModelFeature", f) for f in model.get("features") or []]
        out += [(where, "ModelPropertyKey", k) for k in model.get("model_properties") or {}]
        for rule in model.get("parameter_rules") or []:
            if "type" in rule:
                out.append((where, "ParameterType", rule["type"]))
            if rule.get("use_template"):
                out.append((where, "DefaultParameterName", rule["use_template"]))
    return out


@pytest.mark.parametrize("version", sorted(DIFY_ENUMS))
@pytest.mark.parametrize("plugin", ["mockgpt", "mocklab"])
def test_every_declared_value_is_known_to_dify(plugin: str, version: str) -> None:
    declared = _declared(plugin)
    assert {enum for _, enum, _ in declared} >= {"ModelType", "FormType"}
    unknown = [
        (where, enum, value) for where, enum, value in declared if value not in DIFY_ENUMS[version][enum]
    ]
    assert unknown == []


def test_polling_is_only_a_customizable_model() -> None:
    """MockGPT offers polling through ``mockgpt-1-polling`` as a customizable model (see its README)."""
    predefined = [_load(p) for p in (PLUGINS / "mockgpt" / "models" / "llm").glob("[!_]*.yaml")]
    assert [m["model"] for m in predefined] == ["mockgpt-1"]
    positions = _load(PLUGINS / "mockgpt" / "models" / "llm" / "_position.yaml")
    assert positions == ["mockgpt-1"]
    provider = _load(PLUGINS / "mockgpt" / "provider" / "mockgpt.yaml")
    assert "customizable-model" in provider["configurate_methods"]
