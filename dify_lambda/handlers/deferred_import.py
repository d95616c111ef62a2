"""Deferred packages: a package in ``sys.modules`` whose code runs on first attribute access.

The handler defers packages the SDK imports eagerly but a model plugin rarely needs at init
(``requests`` for file uploads, ``h11`` for endpoints), cutting cold start. A submodule imported
before the package's own ``__init__`` ran is served from the already-loaded module, so classes stay
identical. Not the standard library's ``LazyLoader``: it is not thread-safe before 3.12.3 and would
execute such submodules twice.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from typing import Any

__all__ = ["DeferredModule", "defer_module"]


class DeferredModule(types.ModuleType):
    """A module in ``sys.modules`` whose code runs, under a lock, on its first missing-attribute access.

    ``__path__`` is left out until the load, so importing a submodule first runs the package's own
    ``__init__``, as an eager import would (see :class:`_SideLoadedFinder`). Known limit: a thread
    that first imports a submodule the ``__init__`` also imports, while another thread is running
    that ``__init__``, can deadlock with it; the handler's plugin code imports its modules at load,
    in one thread.
    """

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__.get("_dl_state")
        lock = self.__dict__.get("_dl_lock")
        if state is None or lock is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        with lock:
            if self.__dict__["_dl_state"] == "pending":
                before = set(sys.modules)
                self._load()
                if name == "__path__":
                    # The import system asks for __path__ while importing a submodule, after it
                    # checked sys.modules: the __init__ may just have imported that submodule.
                    _SIDE_LOADED.pending = set(sys.modules) - before
            if self.__dict__["_dl_state"] == "done":
                # Loaded here or by the thread this one waited for; a plain lookup from now on.
                return object.__getattribute__(self, name)
        # Being loaded by this thread: its own ``from . import sub`` probes must miss.
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def _load(self) -> None:
        spec = self.__spec__
        assert spec is not None and spec.loader is not None
        self._dl_state = "loading"
        try:
            if spec.submodule_search_locations is not None:
                self.__path__ = list(spec.submodule_search_locations)
            spec.loader.exec_module(self)
        except BaseException:
            # As after a failed eager import: gone from sys.modules, the next import retries.
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            self.__dict__.pop("__path__", None)
            self._dl_state = "pending"
            raise
        self._dl_state = "done"


class _AlreadyLoaded:
    """Loader that hands the import system a module that is already in ``sys.modules``."""

    def __init__(self, module: types.ModuleType) -> None:
        self._module = module
        self._spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self._module

    def exec_module(self, module: types.ModuleType) -> None:
        # The import system set __spec__ to ours; the module keeps its own.
        module.__spec__ = self._spec


class _SideLoadedFinder:
    """First on ``sys.meta_path``: stops a submodule from running twice.

    ``import pkg.sub`` with ``pkg`` deferred loads ``pkg`` when it reads ``pkg.__path__``; if that
    ``__init__`` imported ``pkg.sub`` itself, the import system (which checked ``sys.modules``
    before) would run ``pkg.sub`` again. The very next lookup is for ``pkg.sub``: it gets the
    module that is already there.
    """

    def __init__(self) -> None:
        self.pending: set[str] = set()

    def find_spec(
        self, name: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        names, self.pending = self.pending, set()
        module = sys.modules.get(name)
        if name not in names or module is None:
            return None
        return importlib.machinery.ModuleSpec(name, _AlreadyLoaded(module))  # type: ignore[arg-type]


_SIDE_LOADED = _SideLoadedFinder()


def defer_module(name: str) -> bool:
    """Put a :class:`DeferredModule` for the top-level package ``name`` in ``sys.modules``.

    ``False`` (nothing done) if it is already imported, not installed, or not loadable that way.
    """
    if name in sys.modules or "." in name:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
        return False
    if _SIDE_LOADED not in sys.meta_path:
        sys.meta_path.insert(0, _SIDE_LOADED)
    module = importlib.util.module_from_spec(spec)
    module.__class__ = DeferredModule
    module.__dict__.pop("__path__", None)
    module._dl_lock = threading.RLock()  # type: ignore[attr-defined]
    module._dl_state = "pending"  # type: ignore[attr-defined]
    sys.modules[name] = module
    return True
