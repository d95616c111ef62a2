"""Validate a plugin's files: the manifest, each model provider, and every file they reference.

Works on an in-memory ``path -> bytes`` mapping, so a zip and a source directory are checked by the
same code. Referenced paths are relative to the plugin root; icons are relative to ``_assets/``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from dify_lambda.packaging.errors import ManifestError, UnsupportedRunnerError
from dify_lambda.packaging.limits import (
    MAX_MODEL_MATCH_STEPS,
    MAX_MODEL_PATTERNS,
    MAX_PATTERN_CHARS,
    ReadLimits,
)
from dify_lambda.packaging.manifest import (
    MODEL_TYPE_KEYS,
    CredentialFormSchema,
    I18n,
    Manifest,
    ModelYaml,
    ProviderYaml,
    load_yaml,
    validate_model,
)
from dify_lambda.packaging.pathmatch import MalformedPatternError, compile_model_glob
from dify_lambda.packaging.providers import CredentialField, ModelProviderSpec, PredefinedModel
from dify_lambda.packaging.zipread import check_entry_name

__all__ = ["MANIFEST_FILE", "PluginContents", "validate_contents"]

MANIFEST_FILE = "manifest.yaml"
ASSETS_DIR = "_assets/"
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
#: Plugin kinds other than model providers: readable, but not served by dify-lambda.
OTHER_KINDS = ("tools", "endpoints", "agent_strategies", "datasources", "triggers")


@dataclass(frozen=True, slots=True)
class PluginContents:
    manifest: Manifest
    providers: list[ModelProviderSpec]
    #: kind -> YAML paths, for the plugin kinds dify-lambda does not serve.
    other_kinds: dict[str, list[str]]
    #: One line each: what the SDK and the daemon accept but is probably a mistake.
    warnings: tuple[str, ...] = ()


class _Checker:
    def __init__(self, files: Mapping[str, bytes], name: str, limits: ReadLimits) -> None:
        self.files = files
        self.name = name
        self.limits = limits
        self.warnings: list[str] = []
        #: Path characters scanned by predefined-model patterns so far (see MAX_MODEL_MATCH_STEPS).
        self.match_steps = 0

    def yaml(self, path: str) -> object:
        return load_yaml(self.files[path], path, max_bytes=self.limits.max_yaml_bytes)

    def ref(self, path: str, file: str, field: str) -> str:
        """A referenced file that must exist; returns its canonical entry path."""
        canonical = path.removeprefix("./")
        problem = check_entry_name(canonical)
        if problem or canonical.endswith("/"):
            raise ManifestError(
                f"{file}: {field}: {path!r} is not a safe relative path ({problem or 'a directory'})"
            )
        if canonical not in self.files:
            raise ManifestError(f"{file}: {field}: {path!r} not found in the package")
        return canonical

    def asset(self, icon: str, file: str, field: str) -> None:
        if not icon:
            return
        problem = check_entry_name(icon)
        if problem:
            raise ManifestError(f"{file}: {field}: {icon!r} is not a safe relative path ({problem})")
        if ASSETS_DIR + icon not in self.files:
            raise ManifestError(f"{file}: {field}: {icon!r} not found in {ASSETS_DIR}")

    def i18n_asset(self, value: I18n | None, file: str, field: str) -> None:
        if value is not None:
            for icon in dict.fromkeys(value.values()):
                self.asset(icon, file, field)


def _check_runner(manifest: Manifest, files: Mapping[str, bytes]) -> None:
    # meta.runner.version is not checked: the SDK and the daemon accept any text there, and the
    # builder chooses the Lambda Python (see docs/limits.md).
    runner = manifest.meta.runner
    if runner.language != "python":
        raise UnsupportedRunnerError(
            f"{MANIFEST_FILE}: meta.runner.language is not supported; only python is"
        )
    if not _MODULE_RE.match(runner.entrypoint):
        raise ManifestError(f"{MANIFEST_FILE}: meta.runner.entrypoint is not a Python module name")
    module = runner.entrypoint.replace(".", "/")
    if f"{module}.py" not in files and f"{module}/__init__.py" not in files:
        raise ManifestError(
            f"{MANIFEST_FILE}: meta.runner.entrypoint {runner.entrypoint!r}: "
            f"{module}.py not found in the package"
        )


def _credentials(schemas: list[CredentialFormSchema]) -> tuple[CredentialField, ...]:
    return tuple(CredentialField(s.variable, s.type, s.required, s.label.en_US) for s in schemas)


def _expand(check: _Checker, pattern: str, yaml_path: str, where: str) -> list[str]:
    """Files a predefined-model pattern selects, as the SDK's ``Path.cwd().glob`` would, sorted."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ManifestError(f"{yaml_path}: {where}: pattern longer than {MAX_PATTERN_CHARS} characters")
    # pathlib refuses absolute patterns; ".." would leave the plugin root.
    if pattern.startswith("/") or ".." in pattern.split("/"):
        raise ManifestError(f"{yaml_path}: {where}: pattern must stay inside the plugin directory")
    try:
        glob = compile_model_glob(pattern)
    except MalformedPatternError as exc:
        raise ManifestError(f"{yaml_path}: {where}: malformed pattern: it {exc}") from None
    candidates = [p for p in check.files if p.startswith(glob.prefix)]
    # One step per path character and per 64 pattern characters (a word of the NFA's bit set).
    check.match_steps += (1 + len(pattern) // 64) * sum(len(p) for p in candidates)
    if check.match_steps > MAX_MODEL_MATCH_STEPS:
        raise ManifestError(
            f"{yaml_path}: {where}: predefined-model patterns need more than "
            f"{MAX_MODEL_MATCH_STEPS} matching steps"
        )
    # Matched position files are ordering lists, kept apart by the caller as the SDK does.
    return sorted(p for p in candidates if glob.match(p))


def _provider(check: _Checker, path: str, field: str) -> ModelProviderSpec:
    yaml_path = check.ref(path, MANIFEST_FILE, field)
    spec = validate_model(ProviderYaml, check.yaml(yaml_path), yaml_path)
    patterns = sum(len(group.predefined) for group in spec.models.values())
    if patterns > MAX_MODEL_PATTERNS:
        raise ManifestError(
            f"{yaml_path}: {patterns} predefined-model patterns, over the limit of {MAX_MODEL_PATTERNS}"
        )
    for icon_field in ("icon_small", "icon_large", "icon_small_dark", "icon_large_dark"):
        check.i18n_asset(getattr(spec, icon_field), yaml_path, icon_field)
    python = spec.extra.python
    source = check.ref(python.provider_source, yaml_path, "extra.python.provider_source")
    model_sources = tuple(
        check.ref(s, yaml_path, f"extra.python.model_sources[{i}]")
        for i, s in enumerate(python.model_sources)
    )
    predefined: dict[str, tuple[PredefinedModel, ...]] = {}
    positions: dict[str, tuple[str, ...]] = {}
    for key, group in spec.models.items():
        model_type = MODEL_TYPE_KEYS[key]
        found: list[PredefinedModel] = []
        for i, pattern in enumerate(group.predefined):
            where = f"models.{key}.predefined[{i}]"
            matched = _expand(check, pattern, yaml_path, where)
            if not matched:
                # The SDK's pathlib glob and the daemon's filepath.Match both accept this.
                check.warnings.append(f"{yaml_path}: {where}: pattern matches no file")
            for model_file in matched:
                doc = check.yaml(model_file)
                if model_file.endswith("_position.yaml"):
                    if not isinstance(doc, list) or not all(isinstance(x, str) for x in doc):
                        raise ManifestError(f"{model_file}: expected a list of model names")
                    positions[model_type] = tuple(doc)
                    continue
                model = validate_model(ModelYaml, doc, model_file)
                label = model.label.en_US if model.label else model.model
                found.append(
                    PredefinedModel(model.model, model.model_type, model_file, label, model.deprecated)
                )
        predefined[model_type] = tuple(found)
    return ModelProviderSpec(
        name=spec.provider,
        label=spec.label.en_US,
        yaml_path=yaml_path,
        supported_model_types=tuple(spec.supported_model_types),
        configurate_methods=tuple(spec.configurate_methods),
        provider_credentials=_credentials(
            spec.provider_credential_schema.credential_form_schemas if spec.provider_credential_schema else []
        ),
        model_credentials=_credentials(
            spec.model_credential_schema.credential_form_schemas if spec.model_credential_schema else []
        ),
        predefined_models=predefined,
        provider_source=source,
        model_sources=model_sources,
        positions=positions,
    )


def validate_contents(files: Mapping[str, bytes], name: str, limits: ReadLimits) -> PluginContents:
    """Validate manifest, providers and references; raise one clear :class:`ManifestError` otherwise."""
    check = _Checker(files, name, limits)
    if MANIFEST_FILE not in files:
        raise ManifestError(f"{name}: {MANIFEST_FILE} is missing at the package root")
    manifest = validate_model(Manifest, check.yaml(MANIFEST_FILE), MANIFEST_FILE)
    _check_runner(manifest, files)
    if not any(p.startswith(ASSETS_DIR) for p in files):
        raise ManifestError(f"{name}: {ASSETS_DIR} is missing (the SDK refuses to load a plugin without it)")
    check.asset(manifest.icon, MANIFEST_FILE, "icon")
    check.asset(manifest.icon_dark or "", MANIFEST_FILE, "icon_dark")
    providers: list[ModelProviderSpec] = []
    for i, path in enumerate(manifest.plugins.models):
        provider = _provider(check, path, f"plugins.models[{i}]")
        if any(p.name == provider.name for p in providers):
            raise ManifestError(f"{provider.yaml_path}: provider {provider.name!r} is declared twice")
        providers.append(provider)
    other: dict[str, list[str]] = {}
    for kind in OTHER_KINDS:
        paths: list[str] = getattr(manifest.plugins, kind)
        if paths:
            other[kind] = [check.ref(p, MANIFEST_FILE, f"plugins.{kind}[{i}]") for i, p in enumerate(paths)]
    return PluginContents(
        manifest=manifest, providers=providers, other_kinds=other, warnings=tuple(check.warnings)
    )
