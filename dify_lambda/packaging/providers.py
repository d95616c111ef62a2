"""What a model provider declares, flattened for the builder, the inspector and the router."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CredentialField", "ModelProviderSpec", "PredefinedModel"]


@dataclass(frozen=True, slots=True)
class CredentialField:
    """One credential form field (provider- or model-level)."""

    variable: str
    type: str
    required: bool
    label: str


@dataclass(frozen=True, slots=True)
class PredefinedModel:
    """A predefined model YAML matched by a provider's ``models.<type>.predefined`` globs."""

    model: str
    model_type: str
    file: str
    label: str
    deprecated: bool = False


@dataclass(frozen=True, slots=True)
class ModelProviderSpec:
    """One entry of the manifest's ``plugins.models``: the provider YAML, validated and resolved."""

    name: str
    label: str
    yaml_path: str
    supported_model_types: tuple[str, ...]
    configurate_methods: tuple[str, ...]
    provider_credentials: tuple[CredentialField, ...]
    model_credentials: tuple[CredentialField, ...]
    #: Keyed by model type (``llm``, ``text-embedding``, ...), in file order.
    predefined_models: dict[str, tuple[PredefinedModel, ...]] = field(default_factory=dict)
    provider_source: str = ""
    model_sources: tuple[str, ...] = ()
    #: ``_position.yaml`` files: model type -> ordered model names.
    positions: dict[str, tuple[str, ...]] = field(default_factory=dict)
