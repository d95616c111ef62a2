"""Deep merge of a user's overlay into a rendered template (applied last).

Mappings merge key by key, recursively; every other value (lists, scalars, intrinsic functions
given as a different shape) replaces what was there. A ``null`` value removes the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["deep_merge"]


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``overlay`` merged in; neither input is modified."""
    merged: dict[str, Any] = dict(base)
    for key, value in overlay.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
