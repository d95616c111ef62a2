"""Errors of the packaging part.

The branches live in :mod:`dify_lambda.errors`; this module re-exports them for callers of the
packaging API and adds the few leaves the toolkit needs. Every message is one line naming the file,
entry, field or flag at fault.
"""

from __future__ import annotations

from dify_lambda.errors import (
    DependencyResolutionError,
    ManifestError,
    PackageError,
    PackageTooLargeError,
    SignatureError,
    UnsafePackageError,
)

__all__ = [
    "KeyFileError",
    "ManifestError",
    "PackageError",
    "PackageTooLargeError",
    "RequirementError",
    "SignatureError",
    "UnsafePackageError",
    "UnsupportedRunnerError",
]


class UnsupportedRunnerError(ManifestError):
    """The manifest asks for a runner language or Python version that is not served."""


class KeyFileError(PackageError):
    """A signing or verification key cannot be read (CLI exit 2, unlike a bad signature)."""


class RequirementError(DependencyResolutionError):
    """A requirements line that is not a plain PEP 508 requirement (option, URL, path, bad bytes)."""
