"""Machine-readable output shared by every command: ``--json`` and how it is printed."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_json_flag", "print_json"]


def add_json_flag(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    """``--json``: print ``what`` as one JSON document on stdout, no progress lines."""
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON (no progress lines)")


def print_json(value: Any) -> None:
    """One JSON document on stdout (indented, keys in their given order), then a newline."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
