"""Pydantic models of the YAML files a model plugin ships, and their safe loading.

Only what the SDK and the daemon rely on is modelled; unknown keys are ignored as both of them do.
Validation failures become one :class:`ManifestError` line naming the file and the field path.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dify_lambda.packaging.errors import ManifestError
from dify_lambda.packaging.limits import MAX_YAML_DEPTH
from dify_lambda.wire import VERSION_PATTERN

__all__ = [
    "ARCHITECTURES",
    "MODEL_TYPE_KEYS",
    "CredentialFormSchema",
    "I18n",
    "Manifest",
    "ModelYaml",
    "ProviderYaml",
    "load_yaml",
    "validate_model",
]

ARCHITECTURES = ("amd64", "arm64")
#: ``models.<key>`` in a provider YAML (underscored) -> the model type name (hyphenated).
MODEL_TYPE_KEYS = {
    "llm": "llm",
    "text_embedding": "text-embedding",
    "rerank": "rerank",
    "tts": "tts",
    "speech2text": "speech2text",
    "moderation": "moderation",
}
_VERSION_RE = re.compile(rf"^{VERSION_PATTERN}$")
#: Largest number of nodes a YAML document may expand to (aliases counted each time: no YAML bombs).
_MAX_YAML_NODES = 200_000

ModelTypeName = Literal["llm", "text-embedding", "rerank", "speech2text", "moderation", "tts", "text2img"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, protected_namespaces=())


class I18n(_Model):
    """An ``I18nObject``: ``en_US`` is required, the other languages default to it."""

    en_US: str
    zh_Hans: str | None = None
    pt_BR: str | None = None
    ja_JP: str | None = None

    def values(self) -> list[str]:
        return [v for v in (self.en_US, self.zh_Hans, self.pt_BR, self.ja_JP) if v]


class Runner(_Model):
    language: str
    #: Any text: neither the SDK nor the daemon checks it (the daemon caps it at 128 characters); the
    #: builder picks the Lambda Python (docs/limits.md, "What a package may declare").
    version: str = Field(max_length=128)
    entrypoint: str = Field(max_length=256)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, v: Any) -> Any:
        # ``version: 3.12`` unquoted is a float in YAML; keep the text the author meant.
        return str(v) if isinstance(v, int | float) else v


class Meta(_Model):
    version: str
    # The SDK and the daemon accept an empty list; the builder refuses to build for no architecture.
    arch: list[Literal["amd64", "arm64"]] = Field(default_factory=list)
    runner: Runner
    minimum_dify_version: str | None = None


class Storage(_Model):
    enabled: bool | None = False
    size: int = Field(default=1048576, ge=1024, le=1073741824)


class Permission(_Model):
    model_config = ConfigDict(extra="allow", frozen=True)

    storage: Storage | None = None


class Resource(_Model):
    memory: int = Field(gt=0)
    permission: Permission | None = None


class Plugins(_Model):
    tools: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    endpoints: list[str] = Field(default_factory=list)
    agent_strategies: list[str] = Field(default_factory=list)
    datasources: list[str] = Field(default_factory=list)
    triggers: list[str] = Field(default_factory=list)


class Manifest(_Model):
    """``manifest.yaml`` (the SDK's ``PluginConfiguration``, daemon's ``PluginDeclaration``)."""

    version: str
    type: Literal["plugin"]
    author: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,64}$")]
    name: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,128}$")]
    repo: str | None = None
    description: I18n
    icon: str
    icon_dark: str | None = None
    label: I18n
    created_at: dt.datetime
    resource: Resource
    plugins: Plugins
    meta: Meta

    @field_validator("version", mode="before")
    @classmethod
    def _check_version(cls, v: Any) -> Any:
        if isinstance(v, str) and not _VERSION_RE.match(v):
            raise ValueError("not a plugin version like 0.0.1")
        return v


class FormOption(_Model):
    value: str
    label: I18n | None = None


class CredentialFormSchema(_Model):
    variable: str
    label: I18n
    type: Literal["text-input", "secret-input", "select", "radio", "switch"]
    required: bool = True
    default: str | None = None
    options: list[FormOption] | None = None
    placeholder: I18n | None = None


class ProviderCredentialSchema(_Model):
    credential_form_schemas: list[CredentialFormSchema] = Field(default_factory=list)


class ModelCredentialSchema(_Model):
    model: dict[str, Any] = Field(default_factory=dict)
    credential_form_schemas: list[CredentialFormSchema] = Field(default_factory=list)


class PredefinedModels(_Model):
    predefined: list[str] = Field(default_factory=list)


class PythonExtra(_Model):
    provider_source: str
    model_sources: list[str] = Field(default_factory=list)


class ProviderExtra(_Model):
    python: PythonExtra


class ProviderYaml(_Model):
    """A model provider YAML (``ModelProviderConfiguration`` before model globs are expanded)."""

    provider: str = Field(min_length=1)
    label: I18n
    description: I18n | None = None
    icon_small: I18n | None = None
    icon_large: I18n | None = None
    icon_small_dark: I18n | None = None
    icon_large_dark: I18n | None = None
    # No minimum length: the SDK's ProviderEntity and the daemon's `required` accept an empty list.
    supported_model_types: list[ModelTypeName]
    configurate_methods: list[Literal["predefined-model", "customizable-model"]]
    provider_credential_schema: ProviderCredentialSchema | None = None
    model_credential_schema: ModelCredentialSchema | None = None
    models: dict[
        Literal["llm", "text_embedding", "rerank", "tts", "speech2text", "moderation"], PredefinedModels
    ] = Field(default_factory=dict)
    extra: ProviderExtra

    @field_validator("models", mode="before")
    @classmethod
    def _known_model_keys(cls, v: Any) -> Any:
        # The SDK reads only these six keys of `models` and ignores the others.
        if v is None:
            return {}
        if isinstance(v, dict):
            return {k: g for k, g in v.items() if k in MODEL_TYPE_KEYS}
        return v


class ModelYaml(_Model):
    """A predefined model YAML (the SDK's ``AIModelEntity``; parameter rules kept loose)."""

    model: str = Field(min_length=1)
    label: I18n | None = None
    model_type: ModelTypeName
    features: list[str] | None = None
    fetch_from: Literal["predefined-model", "customizable-model"] = "predefined-model"
    model_properties: dict[str, Any]
    deprecated: bool = False
    parameter_rules: list[dict[str, Any]] = Field(default_factory=list)
    pricing: dict[str, Any] | None = None


#: Quoted text in PyYAML's problem messages comes from the input (a character, a tag, an anchor).
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a nesting cap and libyaml's refusal of escaped lone surrogates.

    PyYAML composes nodes recursively, so a document nested 20,000 levels deep ends in a
    RecursionError; the cap stops it first. libyaml (which the daemon's Go parser follows) refuses a
    ``\\uD800``-style escape; PyYAML would hand back a string no encoder can write.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.MarkedYAMLError(
                    problem=f"nested deeper than {MAX_YAML_DEPTH} levels", problem_mark=mark
                )
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.ScalarNode) and _SURROGATE.search(node.value):
            raise yaml.MarkedYAMLError(
                problem="escaped lone surrogate (\\uD800-\\uDFFF) in a string", problem_mark=node.start_mark
            )
        return node


def _node_count(obj: Any, cap: int) -> int:
    """Count nodes with aliases expanded, stopping at ``cap`` (a billion-laughs guard)."""
    count, stack = 0, [obj]
    while stack:
        item = stack.pop()
        count += 1
        if count > cap:
            return count
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def load_yaml(data: bytes, file: str, *, max_bytes: int) -> Any:
    """Parse one YAML document safely; errors name the file (and the line for syntax errors)."""
    if len(data) > max_bytes:
        raise ManifestError(f"{file}: YAML file is {len(data)} bytes, over the {max_bytes}-byte limit")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    try:
        loader = _BoundedLoader(text)
        try:
            doc = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = _QUOTED.sub("'...'", str(exc.problem or exc.context))
        raise ManifestError(f"{file}: invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{file}: invalid YAML: {type(exc).__name__}") from None
    if _node_count(doc, _MAX_YAML_NODES) > _MAX_YAML_NODES:
        raise ManifestError(f"{file}: YAML expands to more than {_MAX_YAML_NODES} nodes (alias bomb?)")
    return doc


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def validate_model[M: BaseModel](cls: type[M], doc: Any, file: str) -> M:
    """Validate a parsed document; the first error becomes ``file: field.path: message``."""
    if not isinstance(doc, dict):
        kind = "empty" if doc is None else f"a {type(doc).__name__}"
        raise ManifestError(f"{file}: expected a mapping at the top level, got {kind}")
    try:
        return cls.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise ManifestError(f"{file}: {_loc(tuple(first['loc']))}: {msg}{more}") from None
