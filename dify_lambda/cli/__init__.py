"""The ``dify-lambda`` command line.

Each group of subcommands lives in its own module exposing ``register(subparsers)``; every
subcommand sets ``func(args) -> int`` as its default. Modules import their heavy dependencies
inside the command function so ``dify-lambda --help`` stays fast.

Exit codes and failure lines are applied here once for every command (:mod:`.exits`). A command
whose dependencies are not installed (the base distribution, made for Dify's API process, has only
the router's) exits 1 with one line naming the ``cli`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from dify_lambda import __version__
from dify_lambda.cli.exits import EXIT_BAD_INPUT, describe_failure

__all__ = ["main"]

COMMAND_MODULES = (
    "dify_lambda.cli.pkg",
    "dify_lambda.cli.build",
    "dify_lambda.cli.serve",
    "dify_lambda.cli.invoke",
    "dify_lambda.cli.infra",
)


class Parser(argparse.ArgumentParser):
    """argparse with the same one-line error as every other failure (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"dify-lambda: error: {message} (see {self.prog} --help)\n")


def _add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print tracebacks on errors"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dify-lambda", description="Run Dify model plugins on AWS Lambda.")
    parser.add_argument("--version", action="version", version=f"dify-lambda {__version__}")
    _add_debug(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for command in sub.choices.values():
        if not any("--debug" in a.option_strings for a in command._actions):
            _add_debug(command)
    return parser


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


#: Top-level modules of the ``cli`` extra (pyproject.toml): the base install, made for Dify's API
#: process, has only the router's dependencies.
CLI_EXTRA_MODULES = frozenset(
    {"boto3", "aws_lambda_powertools", "cryptography", "filelock", "packaging", "uv"}
)
CLI_EXTRA_HINT = "dify-lambda: this command needs the cli extra: pip install 'dify-lambda[cli]'"


def _missing_extra(exc: BaseException) -> bool:
    return isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".", 1)[0] in CLI_EXTRA_MODULES


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except ModuleNotFoundError as exc:
        if not _missing_extra(exc):
            raise
        print(CLI_EXTRA_HINT, file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False)) or os.environ.get("DIFY_LAMBDA_DEBUG") == "1"
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except SystemExit:
        raise
    except BaseException as exc:
        if _missing_extra(exc):
            print(CLI_EXTRA_HINT, file=sys.stderr)
            return 1
        if isinstance(exc, BrokenPipeError):
            _quiet_stdout()
        status, line = describe_failure(exc)
        if debug:
            traceback.print_exc(file=sys.stderr)
        with contextlib.suppress(BrokenPipeError, ValueError):
            print(f"dify-lambda: error: {line}", file=sys.stderr, flush=True)
        return status
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
