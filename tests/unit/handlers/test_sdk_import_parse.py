"""The SDK-free parts of dify_lambda.handlers.sdk_import: reading an ``__init__`` and the mode switch."""

from __future__ import annotations

import pytest

from dify_lambda.handlers.errors import HandlerConfigError
from dify_lambda.handlers.sdk_import import DEFAULT_MODE, MODE_ENV, SdkImportMode, import_mode, parse_init

INIT = """
from pkg import _side_effect
from pkg.config.config import Env
from pkg.models import Model as PublicModel, Other
from .relative import Relative
import pkg.plain

def helper():
    return 1

__all__ = ["Env", "PublicModel", "Relative", "helper", "Other"]
"""


def test_names_map_to_their_defining_submodule() -> None:
    init = parse_init(INIT, "pkg")
    assert init.exports == ("Env", "PublicModel", "Relative", "helper", "Other")
    assert init.sources == {
        "Env": ("pkg.config.config", "Env"),
        "PublicModel": ("pkg.models", "Model"),
        "Other": ("pkg.models", "Other"),
    }


def test_names_without_an_absolute_submodule_import_stay_unresolved() -> None:
    # Relative imports, functions and imports from the package itself are left to the real __init__.
    parsed = parse_init(INIT, "pkg")
    assert {"Relative", "helper"} <= set(parsed.exports)
    assert {"Relative", "helper"}.isdisjoint(parsed.sources)


def test_the_init_order_of_submodules_is_kept() -> None:
    assert parse_init(INIT, "pkg").order == ("pkg.config.config", "pkg.models")


def test_a_computed_all_exports_nothing_lazily() -> None:
    init = parse_init("from pkg.a import A\n__all__ = ['A'] + extra\n", "pkg")
    assert init.exports == ()
    assert init.sources == {}


def test_an_all_with_a_non_string_entry_is_not_trusted() -> None:
    assert parse_init("from pkg.a import A\n__all__ = ['A', A]\n", "pkg").exports == ()


def test_an_annotated_all_is_read() -> None:
    init = parse_init("from pkg.a import A\n__all__: list[str] = ['A']\n", "pkg")
    assert init.sources == {"A": ("pkg.a", "A")}


@pytest.mark.parametrize(
    ("value", "mode"),
    [("lazy", SdkImportMode.LAZY), ("full", SdkImportMode.FULL), (" FULL ", SdkImportMode.FULL)],
)
def test_modes_are_read_from_the_environment(value: str, mode: SdkImportMode) -> None:
    assert import_mode({MODE_ENV: value}) is mode


@pytest.mark.parametrize("env", [{}, {MODE_ENV: ""}, {MODE_ENV: "  "}])
def test_unset_means_the_default(env: dict[str, str]) -> None:
    assert import_mode(env) is DEFAULT_MODE


def test_an_unknown_mode_is_named() -> None:
    with pytest.raises(HandlerConfigError, match=rf"{MODE_ENV} must be one of lazy\|full, got 'eager'"):
        import_mode({MODE_ENV: "eager"})
