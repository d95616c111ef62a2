"""CLI command ``serve``: a local, streaming function URL for a built artifact or a plugin source."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from dify_lambda.errors import UsageError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands to the top-level parser."""
    parser = sub.add_parser(
        "serve",
        help="serve a built artifact or plugin source on a local function URL (no Docker)",
        description=(
            "Run PATH as Lambda would (exec wrapper + streaming Runtime API loop) behind a local function "
            "URL that streams. PATH is a build directory or artifact.zip from `dify-lambda build`, an "
            "unpacked artifact, or a plugin source directory (runs on this Python)."
        ),
    )
    parser.add_argument("path", type=Path, metavar="PATH")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--workers", type=int, default=1, help="concurrent executions (default 1)")
    parser.add_argument("--python", default=None, help="Python of the artifact (default: from the build)")
    parser.add_argument(
        "--queue-timeout",
        type=float,
        default=30.0,
        help="seconds a request waits for a free worker before a 429 (default 30)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="function timeout in seconds (default 900)"
    )
    parser.add_argument(
        "--env-vars",
        type=Path,
        metavar="FILE",
        help='JSON overriding the template\'s variables, as sam local: {"Parameters": {...}} for all '
        'functions, {"PluginFunction": {...}} for this one',
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a function variable (repeatable; wins over the template and --env-vars)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="cache root shared with build; zips are unpacked once into DIR/serve/<sha256> "
        "(default $DIFY_LAMBDA_CACHE, else ~/.cache/dify-lambda)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="unpack into a temporary directory deleted on exit"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dify_lambda.emulator import serve
    from dify_lambda.emulator.function_env import load_env_vars_file, parse_env_assignments

    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    try:
        # Bad options fail before anything is unpacked or started.
        env = parse_env_assignments(args.env)
        env_vars = load_env_vars_file(args.env_vars) if args.env_vars is not None else None
        running = serve(
            args.path,
            host=args.host,
            port=args.port,
            workers=args.workers,
            python=args.python,
            env=env,
            env_vars=env_vars,
            cache_dir=args.cache_dir,
            use_cache=not args.no_cache,
            queue_timeout=args.queue_timeout,
            function_timeout=args.timeout,
        )
    except OSError as exc:  # e.g. no writable temporary directory: one line, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"dify-lambda: error: {exc.strerror or type(exc).__name__}{where}", file=sys.stderr)
        return 2

    def stop(signum: int, frame: FrameType | None) -> None:
        running.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for note in running.target.notes:
            print(f"dify-lambda: note: {note}", file=sys.stderr)
        count = len(running.workers)
        print(f"serving {running.plugin_id} at {running.url} ({count} worker{'s' if count != 1 else ''})")
        sys.stdout.flush()
        inits = [w.init_seconds for w in running.workers if w.init_seconds is not None]
        if inits:  # what a cold start of this function costs here (Lambda's Init Duration)
            print(f"dify-lambda: init {max(inits):.2f} s", file=sys.stderr)
        running.wait()
    finally:
        running.close()
    return 0
