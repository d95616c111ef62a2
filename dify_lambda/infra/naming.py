"""Deterministic, valid names for the resources dify-lambda creates.

Lambda function names are at most 64 characters of ``[A-Za-z0-9_-]``; IAM role names at most 64
of ``[\\w+=,.@-]``. Every name starts with ``dify-`` so one IAM policy on ``function:dify-*``
covers everything the deployer and the connector touch (docs/connector.md).
"""

from __future__ import annotations

import hashlib
import re

from dify_lambda.infra.errors import FunctionNameError
from dify_lambda.wire import PluginIdentity

__all__ = [
    "FUNCTION_PREFIX",
    "function_name",
    "parse_package_filename",
    "role_name",
    "validate_function_name",
]

FUNCTION_PREFIX = "dify-"
MAX_FUNCTION_NAME = 64
MAX_ROLE_NAME = 64
_INVALID = re.compile(r"[^A-Za-z0-9_-]+")
_VALID_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUFFIX_LEN = 8


def parse_package_filename(filename: str) -> PluginIdentity:
    """Parse the daemon's serverless file name; raise ``FunctionNameError`` naming what is wrong."""
    identity = PluginIdentity.from_filename(filename)
    if identity is None:
        raise FunctionNameError(
            "filename must look like <author>@<name>@<version>@<checksum>.difypkg "
            "(lowercase author/name, dotted numeric version, hex checksum)"
        )
    return identity


def _clean(part: str) -> str:
    return _INVALID.sub("-", part).strip("-")


def function_name(plugin_id: str, version: str, checksum: str = "", *, with_checksum: bool = False) -> str:
    """``dify-<author>-<name>-<version dashed>``, plus ``-<checksum[:8]>`` when asked or when too long.

    ``with_checksum`` gives one function per package checksum (what the connector needs: the daemon
    stores one function per unique identifier); without it a new checksum of the same version
    updates the same function and publishes a new version, which makes ``rollback`` meaningful.
    """
    author, _, name = plugin_id.partition("/")
    if not author or not name:
        raise FunctionNameError(f"plugin id {plugin_id!r} must be <author>/<name>")
    base = "-".join(p for p in (_clean(author), _clean(name), _clean(version.replace(".", "-"))) if p)
    base = f"{FUNCTION_PREFIX}{base}"
    suffix = _clean(checksum)[:_SUFFIX_LEN]
    if with_checksum and not suffix:
        raise FunctionNameError("a checksum is needed to name a per-checksum function")
    if not with_checksum and len(base) <= MAX_FUNCTION_NAME:
        return base
    # Too long (or per-checksum): keep the readable head and make it unique with the checksum,
    # or with a digest of the full base when no checksum is known.
    suffix = suffix or hashlib.sha256(base.encode()).hexdigest()[:_SUFFIX_LEN]
    head = base[: MAX_FUNCTION_NAME - len(suffix) - 1].rstrip("-_")
    return f"{head}-{suffix}"


def validate_function_name(name: str) -> str:
    """Return ``name`` if it is a valid Lambda name starting with ``dify-``; raise otherwise."""
    if not _VALID_NAME.match(name):
        raise FunctionNameError(
            f"function name {name!r} must be 1-64 characters of letters, digits, '-', '_'"
        )
    if not name.startswith(FUNCTION_PREFIX):
        raise FunctionNameError(
            f"function name {name!r} must start with {FUNCTION_PREFIX!r} (the IAM policy covers dify-*)"
        )
    return name


def role_name(function: str) -> str:
    """Execution role name ``dify-lambda-<function>``, shortened with a digest when over 64 chars."""
    name = f"dify-lambda-{function}"
    if len(name) <= MAX_ROLE_NAME:
        return name
    digest = hashlib.sha256(function.encode()).hexdigest()[:_SUFFIX_LEN]
    return f"{name[: MAX_ROLE_NAME - _SUFFIX_LEN - 1]}-{digest}"
