"""CLI commands for ``.difypkg`` files: ``package``, ``inspect``, ``verify`` and ``sign``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dify_lambda.cli.output import add_json_flag, print_json

__all__ = ["register"]


def _positive_mb(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--max-size must be a number of MB, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--max-size must be positive")
    return value


def _read_key(path: str) -> bytes:
    from dify_lambda.packaging.errors import KeyFileError

    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key ({exc.strerror})") from None


def cmd_package(args: argparse.Namespace) -> int:
    from dify_lambda.packaging.limits import MIB
    from dify_lambda.packaging.packager import write_package

    result = write_package(args.directory, args.output, max_bytes=int(args.max_size * MIB))
    pkg = result.package
    if args.json:
        print_json(
            {
                "unique_identifier": pkg.unique_identifier,
                "output": str(args.output),
                "bytes": len(result.data),
                "entries": len(pkg.entries),
                "ignore_file": result.ignore_file,
                "requirements_source": result.requirements_source,
            }
        )
        return 0
    print(f"packaged {pkg.unique_identifier}")
    print(f"  output        {args.output} ({len(result.data)} bytes, {len(pkg.entries)} entries)")
    print(f"  ignore file   {result.ignore_file or 'none'}")
    if result.requirements_source:
        print(f"  requirements  generated from {result.requirements_source}")
    for warning in pkg.warnings:
        print(f"dify-lambda: warning: {warning}", file=sys.stderr)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from dify_lambda.packaging.inspect import describe, render_text
    from dify_lambda.packaging.reader import PluginPackage

    info = describe(PluginPackage.open(args.package))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        sys.stdout.write(render_text(info))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from dify_lambda.packaging.errors import SignatureError
    from dify_lambda.packaging.reader import PluginPackage
    from dify_lambda.packaging.signature import load_public_key, verify_package

    keys = [load_public_key(_read_key(path), path) for path in args.key]
    pkg = PluginPackage.open(args.package)
    try:
        result = verify_package(pkg, keys)
    except SignatureError as exc:
        if args.json:
            print_json({"verified": False, "unique_identifier": pkg.unique_identifier, "reason": str(exc)})
        print(f"dify-lambda: verify failed: {exc}", file=sys.stderr)
        return 1
    from dify_lambda.packaging.inspect import iso_time

    if args.json:
        print_json(
            {
                "verified": True,
                "unique_identifier": pkg.unique_identifier,
                "signed_at": iso_time(result.time),
                "key": str(args.key[result.key_index]),
                "authorized_category": result.authorized_category,
                "verification_file": bool(result.verification_file),
            }
        )
        return 0

    note = (
        ""
        if result.verification_file
        else " (no .verification.dify.json; the daemon treats it as langgenius)"
    )
    print(
        f"verified {pkg.unique_identifier}: signed {iso_time(result.time)} "
        f"with {args.key[result.key_index]}, "
        f"authorized_category {result.authorized_category}{note}"
    )
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from dify_lambda.packaging.errors import PackageError
    from dify_lambda.packaging.packager import atomic_write
    from dify_lambda.packaging.reader import PluginPackage
    from dify_lambda.packaging.signature import sign_package

    pem = _read_key(args.private_key)
    src = PluginPackage.open(args.package)  # validates and bounds the input before signing
    try:
        data = Path(args.package).read_bytes()
    except OSError as exc:
        raise PackageError(f"{args.package}: cannot read ({exc.strerror})") from None
    signed = sign_package(data, pem, args.category)
    atomic_write(args.output, signed)
    if args.json:
        print_json(
            {"unique_identifier": src.unique_identifier, "output": str(args.output), "bytes": len(signed)}
        )
        return 0
    print(f"signed {src.unique_identifier} -> {args.output}")
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands to the top-level parser."""
    p = sub.add_parser(
        "package", help="package a plugin directory into a .difypkg (like `dify plugin package`)"
    )
    p.add_argument("directory", help="plugin source directory (with manifest.yaml)")
    p.add_argument("-o", "--output", required=True, help="output file, e.g. NAME.difypkg")
    add_json_flag(p)
    p.add_argument(
        "--max-size",
        type=_positive_mb,
        default=50.0,
        metavar="MB",
        help="uncompressed size cap in MB (default 50)",
    )
    p.set_defaults(func=cmd_package)

    p = sub.add_parser("inspect", help="show a package's identity, runner, providers and signature")
    p.add_argument("package", help="a .difypkg file")
    add_json_flag(p, "the package description")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "verify", help="verify a package signature (exit 0 verified, 1 bad/missing, 2 bad input)"
    )
    p.add_argument("package", help="a .difypkg file")
    p.add_argument(
        "--key", action="append", required=True, metavar="PUBLIC.pem", help="RSA public key (repeatable)"
    )
    add_json_flag(p, "the verification result")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("sign", help="sign a package with an RSA private key (like `dify signature sign`)")
    p.add_argument("package", help="a .difypkg file")
    p.add_argument("-p", "--private-key", required=True, metavar="PRIVATE.pem")
    p.add_argument("-c", "--category", choices=("langgenius", "partner", "community"), default=None)
    p.add_argument("-o", "--output", required=True, help="signed output file")
    add_json_flag(p)
    p.set_defaults(func=cmd_sign)
