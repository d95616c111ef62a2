"""The ``dify-lambda`` command line.

Each group of subcommands lives in its own module exposing ``register(subparsers)``; every
subcommand sets ``func(args) -> int`` as its default. Modules import their heavy dependencies
inside the command function so ``dify-lambda --help`` stays fast.

Exit codes: 0 success, 1 a check failed (e.g. ``verify``) or the ``cli`` extra is not installed
(one line naming it), 2 bad input or a failed operation (one clear line on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dify_lambda import __version__
from dify_lambda.errors import DifyLambdaError

__all__ = ["main"]

COMMAND_MODULES = (
    "dify_lambda.cli.pkg",
    "dify_lambda.cli.build",
    "dify_lambda.cli.serve",
    "dify_lambda.cli.invoke",
    "dify_lambda.cli.infra",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dify-lambda",
        description="Run Dify model plugins on AWS Lambda.",
    )
    parser.add_argument("--version", action="version", version=f"dify-lambda {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


#: Top-level modules of the ``cli`` extra (pyproject.toml): the base install, made for Dify's API
#: process, has only the router's dependencies.
CLI_EXTRA_MODULES = frozenset({"boto3", "aws_lambda_powertools", "cryptography"})
CLI_EXTRA_HINT = "dify-lambda: this command needs the cli extra: pip install 'dify-lambda[cli]'"


def _missing_extra(exc: ModuleNotFoundError) -> bool:
    return (exc.name or "").split(".", 1)[0] in CLI_EXTRA_MODULES


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        code: int = args.func(args)
    except ModuleNotFoundError as exc:
        if not _missing_extra(exc):
            raise
        print(CLI_EXTRA_HINT, file=sys.stderr)
        return 1
    except DifyLambdaError as exc:
        print(f"dify-lambda: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dify-lambda: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
