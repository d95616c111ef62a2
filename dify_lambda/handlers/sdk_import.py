"""How the handler process imports ``dify_plugin``: lazily (default) or through its real ``__init__``.

Why: that ``__init__`` gevent-patches the process and eagerly imports the SDK's server stack
(docs/plugin-package.md §6), yet plugins write ``from dify_plugin import LargeLanguageModel``.

``lazy`` puts a stand-in package in ``sys.modules["dify_plugin"]``: the real ``__spec__``/``__path__``
(submodule imports work unchanged) and a module ``__getattr__`` resolving each public name from the
submodule that defines it, mapped from the installed ``__init__.py`` with :mod:`ast` (a name the map
misses runs the real ``__init__`` in place). The ``__init__``'s submodules are imported up front in its
order (the SDK has import cycles only that order resolves), except :data:`DEFERRED`. No gevent patch:
every SDK path the handler uses is plain blocking code or checks for gevent, and the handler serves
one request at a time. :data:`LAZY_MODULES` run on first attribute access. ``full`` imports the
package normally (patch included); it stays the safe fallback.
"""

from __future__ import annotations

import ast
import enum
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dify_lambda.errors import PluginLoadError
from dify_lambda.handlers.deferred_import import DeferredModule, defer_module
from dify_lambda.handlers.errors import HandlerConfigError, UnsupportedSdkError

__all__ = [
    "LAZY_MODULES",
    "MODE_ENV",
    "PACKAGE",
    "DeferredModule",
    "InitMap",
    "LazySdkPackage",
    "SdkImportMode",
    "defer_module",
    "import_mode",
    "install_lazy_sdk",
    "load_sdk_plugin",
    "parse_init",
]

#: Environment variable choosing the import mode.
MODE_ENV = "DIFY_LAMBDA_SDK_IMPORT"
PACKAGE = "dify_plugin"


class SdkImportMode(enum.StrEnum):
    """``lazy``: stand-in package, no gevent patch; ``full``: the SDK's own ``__init__``."""

    LAZY = "lazy"
    FULL = "full"


DEFAULT_MODE = SdkImportMode.LAZY

#: Submodules of the ``__init__`` that ``lazy`` leaves to first use: the SDK's own server stack
#: (Flask, werkzeug serving, gevent WSGI; a Lambda handler never runs it) and the
#: OpenAI-compatible bases (requests-based; only plugins that subclass them need them).
#: Nothing on the registration/executor path imports them (checked by the functional tests).
DEFERRED = ("dify_plugin.plugin", "dify_plugin.interfaces.model.openai_compatible")

#: Third-party packages the SDK imports at module level but uses only inside rarely called methods:
#: ``requests`` (``Session.file`` uploads; ``dify_plugin.invocations.file`` imports it for every
#: Session) and ``h11`` (endpoint requests only). ``lazy`` runs their code on first attribute
#: access (:class:`DeferredModule`).
LAZY_MODULES = ("requests", "h11")


def import_mode(env: Mapping[str, str]) -> SdkImportMode:
    """The mode named by :data:`MODE_ENV` (unset or empty: :data:`DEFAULT_MODE`)."""
    raw = env.get(MODE_ENV, "").strip().lower()
    if not raw:
        return DEFAULT_MODE
    try:
        return SdkImportMode(raw)
    except ValueError:
        choices = "|".join(m.value for m in SdkImportMode)
        raise HandlerConfigError(f"{MODE_ENV} must be one of {choices}, got {raw[:40]!r}") from None


@dataclass(frozen=True, slots=True)
class InitMap:
    """What the real ``__init__.py`` declares, as far as it can be resolved without running it."""

    exports: tuple[str, ...]
    #: public name → (absolute submodule, attribute in it)
    sources: dict[str, tuple[str, str]]
    #: the submodules the ``__init__`` imports from, in its order (the SDK has import cycles that
    #: only this order resolves, e.g. ``core.model_factory`` ↔ ``interfaces.model``)
    order: tuple[str, ...] = ()


def parse_init(source: str, package: str = PACKAGE) -> InitMap:
    """Map the names of ``__all__`` to the submodules an ``__init__`` imports them from.

    Only absolute ``from package.sub import name [as alias]`` statements are trusted; anything
    else (relative imports, imports of the package itself, computed ``__all__``) is left
    unresolved, which is safe: such names fall back to running the real ``__init__``.
    """
    tree = ast.parse(source)
    sources: dict[str, tuple[str, str]] = {}
    order: dict[str, None] = {}
    exports: list[str] | None = None
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith(f"{package}."):
                order[node.module] = None
                for alias in node.names:
                    if alias.name != "*":
                        sources[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                exports = _literal_names(node.value)
    exports = exports or []
    return InitMap(
        exports=tuple(exports),
        sources={name: sources[name] for name in exports if name in sources},
        order=tuple(order),
    )


def _literal_names(value: ast.expr | None) -> list[str] | None:
    if not isinstance(value, ast.List | ast.Tuple):
        return None
    names = [elt.value for elt in value.elts if isinstance(elt, ast.Constant) and isinstance(elt.value, str)]
    return names if len(names) == len(value.elts) else None


class LazySdkPackage(types.ModuleType):
    """The stand-in ``dify_plugin`` package; public names resolve on first access."""

    _sdk_map: InitMap
    _sdk_full: bool

    def complete(self) -> None:
        """Run the real ``__init__`` in this module (gevent patch and eager imports), once."""
        if self.__dict__.get("_sdk_full"):
            return
        self._sdk_full = True
        loader = self.__spec__.loader if self.__spec__ is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            raise ImportError(f"the {PACKAGE} package has no loader to run its __init__ with")
        # The loader runs the real __init__ (cached bytecode included) in this very module.
        loader.exec_module(self)

    @property
    def completed(self) -> bool:
        return bool(self.__dict__.get("_sdk_full"))

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not yet in the module dict.
        if name.startswith("__") or name.startswith("_sdk_"):
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
        source = self._sdk_map.sources.get(name)
        if source is not None:
            value = getattr(importlib.import_module(source[0]), source[1])
        else:
            self.complete()
            try:
                value = self.__dict__[name]
            except KeyError:
                raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}") from None
        setattr(self, name, value)
        return value

    def preload(self) -> None:
        """Import the ``__init__``'s submodules in its order, except :data:`DEFERRED` and the patch.

        The order matters: the SDK has import cycles that only resolve when entered the way its
        ``__init__`` enters them.
        """
        for name in self._sdk_map.order:
            if not _deferred(name):
                importlib.import_module(name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._sdk_map.exports))


def _deferred(module: str) -> bool:
    return any(module == d or module.startswith(f"{d}.") for d in DEFERRED)


def install_lazy_sdk() -> LazySdkPackage | None:
    """Install the stand-in package; ``None`` if ``dify_plugin`` was already imported.

    Raises :class:`UnsupportedSdkError` if the installed package cannot be located or parsed.
    """
    existing = sys.modules.get(PACKAGE)
    if existing is not None:
        return existing if isinstance(existing, LazySdkPackage) else None
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None or not spec.submodule_search_locations:
        raise UnsupportedSdkError(f"{PACKAGE} is not installed as a package next to the handler")
    try:
        source = Path(spec.origin).read_text(encoding="utf-8")
        init_map = parse_init(source)
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise UnsupportedSdkError(f"cannot read {spec.origin}: {type(exc).__name__}") from exc
    module = LazySdkPackage(PACKAGE)
    module.__spec__ = spec
    module.__loader__ = spec.loader
    module.__file__ = spec.origin
    module.__path__ = list(spec.submodule_search_locations)
    module.__package__ = PACKAGE
    module.__all__ = list(init_map.exports)  # type: ignore[attr-defined]
    module._sdk_map = init_map
    module._sdk_full = False
    sys.modules[PACKAGE] = module
    return module


def load_sdk_plugin(
    root: Path, import_sdk: Callable[[], Any], env: Mapping[str, str] | None = None
) -> tuple[Any, Any, Any, Any]:
    """Import the SDK in the configured mode and register the plugin at ``root``.

    ``import_sdk`` returns the object holding ``DifyPluginEnv``, ``InstallMethod``,
    ``PluginRegistration`` and ``PluginExecutor``. Returns ``(env, registration, executor, sdk)``.
    Under ``lazy``, an ``ImportError``/``AttributeError`` during registration is retried once with
    the real ``__init__`` run in place, but only if no module of the plugin stayed imported;
    otherwise the load fails, naming the mode to switch to.
    """
    mode = import_mode(os.environ if env is None else env)
    lazy = install_lazy_sdk() if mode is SdkImportMode.LAZY else None
    if lazy is not None:
        for name in LAZY_MODULES:
            defer_module(name)
        try:
            lazy.preload()
        except ImportError as exc:
            # Nothing of the plugin is imported yet: the real __init__ can still run cleanly.
            _report(f"{MODE_ENV}=lazy could not import the SDK ({type(exc).__name__}); using the full import")
            _complete(lazy)
    sdk = import_sdk()
    before = set(sys.modules)
    try:
        return (*_register(sdk), sdk)
    except (ImportError, AttributeError) as exc:
        if lazy is None or lazy.completed:
            raise _load_error(root, exc) from exc
        left = sorted(_plugin_modules(root, set(sys.modules) - before))
        if left:
            raise PluginLoadError(
                f"the SDK could not load the plugin in {root} with {MODE_ENV}=lazy "
                f"({type(exc).__name__}: {exc}); modules {', '.join(left[:5])} were already imported, "
                f"so it cannot be retried in this process: set {MODE_ENV}=full"
            ) from exc
        _report(
            f"the plugin failed to register with {MODE_ENV}=lazy ({type(exc).__name__}); "
            "retrying with the full import"
        )
        _complete(lazy)
    except Exception as exc:
        raise _load_error(root, exc) from exc
    try:
        return (*_register(sdk), sdk)
    except Exception as exc:
        raise _load_error(root, exc) from exc


def _report(message: str) -> None:
    # One stderr line, as the rest of the handler reports load-time problems to CloudWatch.
    print(f"dify-lambda sdk import: {message}", file=sys.stderr, flush=True)


def _complete(lazy: LazySdkPackage) -> None:
    try:
        lazy.complete()
    except ImportError as exc:
        raise UnsupportedSdkError(f"{PACKAGE} could not be imported: {type(exc).__name__}: {exc}") from exc


def _register(sdk: Any) -> tuple[Any, Any, Any]:
    env = sdk.DifyPluginEnv(INSTALL_METHOD=sdk.InstallMethod.Serverless)
    registration = sdk.PluginRegistration(env)
    return env, registration, sdk.PluginExecutor(env, registration)


def _load_error(root: Path, exc: Exception) -> PluginLoadError:
    return PluginLoadError(f"the SDK could not load the plugin in {root}: {type(exc).__name__}: {exc}")


def _plugin_modules(root: Path, names: set[str]) -> list[str]:
    """Those of ``names`` whose file lies under the plugin ``root``."""
    found = []
    for name in names:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and Path(file).resolve().is_relative_to(root):
            found.append(name)
    return found
