"""Which ``dify_plugin`` releases the handler serves, and the little that differs between them.

Plain Python (no ``dify_plugin``), so the builder can refuse an out-of-range SDK at build time. What
differs per release and how each difference is adapted: docs/handler.md, "SDK versions".
"""

from __future__ import annotations

from dataclasses import dataclass

from dify_lambda.handlers.errors import UnsupportedSdkError

__all__ = ["ERROR_TRACEBACK_SINCE", "SUPPORTED_SDK", "SdkProfile", "check_sdk_version", "parse_version"]

#: Inclusive lower, exclusive upper bound (major, minor) of the ``dify_plugin`` releases served
#: byte for byte; each minor in between is in the conformance matrix (tests/support/sdk_matrix.py).
SUPPORTED_SDK = ((0, 2), (0, 11))

#: First release whose serverless error lines carry ``args.traceback``.
ERROR_TRACEBACK_SINCE = (0, 10, 1)


def parse_version(version: str) -> tuple[int, int, int] | None:
    """``major.minor.patch`` of a release string; ``None`` unless it starts with two numbers.

    Pre-release and local suffixes of the patch (``0.4.0b1``, ``0.6.2+local``) count as patch 0
    of that number's digits, e.g. ``0.4.0b1`` → ``(0, 4, 0)``.
    """
    parts = version.strip().split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None
    digits = ""
    for char in parts[2] if len(parts) > 2 else "":
        if not char.isdigit():
            break
        digits += char
    return major, minor, int(digits or 0)


@dataclass(frozen=True, slots=True)
class SdkProfile:
    """What the handler must do differently for one release."""

    #: The error line's ``args`` holds ``traceback`` (``traceback.format_exc()``).
    error_traceback: bool

    @classmethod
    def of(cls, version: str) -> SdkProfile:
        """The profile of ``version``; raises :class:`UnsupportedSdkError` outside the range."""
        check_sdk_version(version)
        parsed = parse_version(version)
        assert parsed is not None
        return cls(error_traceback=parsed >= ERROR_TRACEBACK_SINCE)


def check_sdk_version(version: str) -> None:
    """Raise :class:`UnsupportedSdkError` unless ``version`` is inside :data:`SUPPORTED_SDK`."""
    parsed = parse_version(version)
    low, high = SUPPORTED_SDK
    if parsed is None or not low <= parsed[:2] < high:
        raise UnsupportedSdkError(
            f"dify_plugin {version[:40]} is not supported: this handler reproduces the wire format of "
            f"dify_plugin >={low[0]}.{low[1]},<{high[0]}.{high[1]}; rebuild the function with a supported SDK"
        )
