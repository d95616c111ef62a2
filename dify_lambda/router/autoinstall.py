"""Install the router when Dify imports its plugin client, from ``sitecustomize`` (stdlib only here).

Dify's API gevent-patches the process early in startup; importing httpx or Dify's modules before
that would defeat the patching. ``enable()`` therefore only registers an import hook: when
``core.plugin.impl.base`` (or ``core.plugin.manager.base``) finishes loading, the hook calls
:func:`dify_lambda.router.dify.install_from_env`. Usage, in a ``sitecustomize.py`` on the API's
``PYTHONPATH``::

    import dify_lambda.router.autoinstall as _dl
    _dl.enable()

A failure to install is logged and leaves Dify talking to the daemon, never breaking startup;
the first route table read is bounded in time (``DIFY_LAMBDA_ROUTES_TIMEOUT``) and size, and only
regular files are read, so no route location can hold start-up.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from dify_lambda.wire import ENV_ROUTES

__all__ = ["enable"]

logger = logging.getLogger(__name__)

WATCHED = ("core.plugin.impl.base", "core.plugin.manager.base")


def _install() -> None:
    from dify_lambda.errors import DifyLambdaError

    try:
        from dify_lambda.router.dify import install_from_env

        install_from_env()
    except DifyLambdaError as exc:  # a bad or unreachable route table: one line, no traceback
        logger.error("dify-lambda router was not installed (%s); model calls keep going to the daemon", exc)
    except Exception:
        logger.exception("dify-lambda router was not installed; model calls keep going to the daemon")


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        _install()


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in WATCHED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: Any = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader)
                return spec  # type: ignore[no-any-return]
        return None


def enable() -> bool:
    """Register the hook (idempotent); False when ``DIFY_LAMBDA_ROUTES`` is unset."""
    if not os.environ.get(ENV_ROUTES):
        return False
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return True
    if any(name in sys.modules for name in WATCHED):
        _install()  # already imported: install now
        return True
    sys.meta_path.insert(0, _Finder())
    return True
