"""Option types shared by the commands, so every option is checked before any long work starts.

Each is an ``argparse`` ``type=``: a wrong value is a usage error (one line, exit 2) at parse time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["ARCH_ALIASES", "architecture", "existing_file", "function_name", "output_dir", "positive_int"]

#: Lambda's spellings, plus the manifest's (``meta.arch``) and the usual machine names.
ARCH_ALIASES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "x86-64": "x86_64",
    "arm64": "arm64",
    "aarch64": "arm64",
}


def architecture(text: str) -> str:
    """``x86_64``/``amd64`` -> ``x86_64``; ``arm64``/``aarch64`` -> ``arm64``."""
    found = ARCH_ALIASES.get(text.strip().lower())
    if found is None:
        raise argparse.ArgumentTypeError("unknown architecture: use x86_64 (amd64) or arm64 (aarch64)")
    return found


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def existing_file(text: str) -> Path:
    """A file that exists and is readable now (not found only after the long work)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path} is not a file")
    return path


def output_dir(text: str) -> Path:
    """A directory to write into: may not exist yet, but must not be a file (nor under one)."""
    path = Path(text)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise argparse.ArgumentTypeError(f"{part} exists and is not a directory")
        if part.exists():
            break
    return path


def function_name(text: str) -> str:
    """A valid Lambda function name starting with ``dify-``."""
    from dify_lambda.infra.errors import FunctionNameError
    from dify_lambda.infra.naming import validate_function_name

    try:
        return validate_function_name(text)
    except FunctionNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
