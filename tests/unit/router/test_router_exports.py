"""The router's public surface: sorted, complete, lazily resolvable; the error tree's shape."""

from __future__ import annotations

import inspect

import dify_lambda.router as router_pkg
from dify_lambda.errors import RouterError
from dify_lambda.router import errors


def test_all_is_sorted_and_resolves() -> None:
    assert router_pkg.__all__ == sorted(router_pkg.__all__)
    for name in router_pkg.__all__:
        assert getattr(router_pkg, name) is not None
    assert dir(router_pkg) == sorted(router_pkg.__all__)


def test_every_router_error_is_under_router_error_and_in_the_docstring() -> None:
    classes = [obj for _, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, Exception)]
    assert errors.__all__ == sorted(errors.__all__)
    for cls in classes:
        assert issubclass(cls, RouterError)
        if cls is not RouterError:
            assert cls.__name__ in (errors.__doc__ or ""), cls.__name__
    assert issubclass(errors.IdleTimeoutError, errors.StreamInterruptedError)
    assert issubclass(errors.PluginInvokeError, errors.InvocationError)
