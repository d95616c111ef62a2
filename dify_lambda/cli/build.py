"""``dify-lambda build PKG``: a .difypkg (or plugin directory) -> Lambda artifact + SAM application."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dify_lambda.errors import BuildError


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise BuildError(f"--env {text!r}: expected KEY=VALUE")
    return key, value


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands to the top-level parser."""
    p = sub.add_parser(
        "build",
        help="build a Lambda artifact and SAM template from a .difypkg",
        description=(
            "Build PKG (a .difypkg or a plugin directory) into DIR: artifact.zip (deterministic), "
            "template.yaml, samconfig.toml and build-report.json. Dependencies are resolved for "
            "Lambda (manylinux wheels for --arch and --python), cached under --cache-dir."
        ),
    )
    p.add_argument("package", metavar="PKG", help=".difypkg file or plugin source directory")
    p.add_argument("-o", "--output", metavar="DIR", help="output directory (default: out/<plugin name>)")
    p.add_argument("--arch", help="x86_64 or arm64 (default: from the manifest's meta.arch, x86_64 first)")
    p.add_argument("--python", help="3.12 or 3.13 (default: the manifest's meta.runner.version)")
    p.add_argument(
        "--memory",
        type=int,
        metavar="MB",
        help="MemorySize (default: the manifest's resource.memory, at least the floor in docs/limits.md)",
    )
    p.add_argument(
        "--timeout", type=int, default=900, metavar="SECONDS", help="function timeout (default 900)"
    )
    p.add_argument("--url-auth", default="AWS_IAM", help="default of the AuthType parameter: AWS_IAM or NONE")
    p.add_argument("--snapstart", action="store_true", help="enable SnapStart on published versions")
    p.add_argument(
        "--template-overlay", type=Path, metavar="FILE", help="YAML deep-merged into the template last"
    )
    p.add_argument(
        "--cache-dir", type=Path, metavar="DIR", help="default $DIFY_LAMBDA_CACHE or ~/.cache/dify-lambda"
    )
    p.add_argument(
        "--no-cache", action="store_true", help="resolve dependencies afresh (pip's cache still used)"
    )
    p.add_argument("--no-compile", action="store_true", help="do not ship .pyc files")
    p.add_argument("--max-unzipped-mb", type=int, default=250, metavar="MB", help="size limit (default 250)")
    p.add_argument("--function-name", help="explicit FunctionName (default: CloudFormation chooses)")
    p.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment variable"
    )
    p.add_argument(
        "--find-links", action="append", default=[], type=Path, metavar="DIR", help="local wheels/sdists"
    )
    p.add_argument(
        "--no-smoke", action="store_true", help="do not load the built artifact in a clean subprocess"
    )
    p.add_argument(
        "--tiktoken-encoding",
        action="append",
        default=[],
        metavar="NAME",
        help="ship this tiktoken encoding too (gpt2 always; e.g. cl100k_base, o200k_base); repeatable",
    )
    p.add_argument(
        "--tiktoken-cache",
        type=Path,
        metavar="DIR",
        help="take tiktoken's files from DIR instead of the cache or the network "
        "(default $DIFY_LAMBDA_TIKTOKEN_CACHE)",
    )
    p.add_argument("--no-tiktoken-data", action="store_true", help="do not ship tiktoken's encoding files")
    p.add_argument("--json", action="store_true", help="print the build report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dify_lambda.packaging.build import BuildOptions, build, open_package
    from dify_lambda.packaging.build.smoke import SmokeInitError
    from dify_lambda.packaging.build.tiktoken_data import TiktokenFetchError

    if args.max_unzipped_mb <= 0:
        raise BuildError(f"--max-unzipped-mb {args.max_unzipped_mb}: must be positive")
    options = BuildOptions(
        arch=args.arch,
        python=args.python,
        memory_mb=args.memory,
        timeout=args.timeout,
        url_auth=args.url_auth,
        snapstart=args.snapstart,
        template_overlay=args.template_overlay,
        cache_dir=args.cache_dir,
        max_unzipped_bytes=args.max_unzipped_mb * 1024 * 1024,
        function_name=args.function_name,
        extra_environment=dict(_env_pair(e) for e in args.env),
        find_links=tuple(args.find_links),
        use_cache=not args.no_cache,
        compile=not args.no_compile,
        smoke=not args.no_smoke,
        tiktoken_data=not args.no_tiktoken_data,
        tiktoken_encodings=tuple(args.tiktoken_encoding),
        tiktoken_cache=args.tiktoken_cache,
    )
    package = open_package(args.package)
    out_dir = Path(args.output) if args.output else Path("out") / package.manifest.name

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        result = build(package, out_dir, options, progress=progress)
    except (SmokeInitError, TiktokenFetchError) as exc:
        # The input was valid; the operation failed (the plugin cannot load, the download failed).
        print(f"dify-lambda: error: {exc}", file=sys.stderr)
        return 1
    report = result.report
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return 0
    mib = 1024 * 1024
    print(f"built {report.unique_identifier} for {report.runtime} {report.architecture}")
    print(
        f"  artifact  {result.artifact} ({report.sizes.zipped / mib:.1f} MB zipped, "
        f"{report.sizes.unzipped / mib:.1f} MB unzipped) sha256 {report.artifact_sha256}"
    )
    print(f"  template  {result.template}")
    print(f"  samconfig {result.samconfig}")
    print(
        f"  report    {result.report_path} (cache {'hit' if report.cache_hit else 'miss'}, "
        f"compile {report.compile.dependencies}, {report.build_seconds:.1f} s)"
    )
    print(f"  memory    {report.memory_mb} MB ({report.memory_reason})")
    print(f"  sdk       dify_plugin {report.sdk_version}")
    if report.tiktoken.get("status") == "shipped":
        print(
            f"  tiktoken  {', '.join(report.tiktoken['encodings'])} ({report.tiktoken['bytes'] / mib:.1f} MB)"
        )
    if report.smoke.get("status") == "passed":
        loaded = ", ".join(f"{p['name']} ({len(p['models'])} models)" for p in report.smoke["providers"])
        print(f"  smoke     loaded {loaded} in {report.smoke['seconds']:.1f} s")
    for note in report.notes:
        print(f"  note: {note}")
    print(f"deploy: cd {result.out_dir} && sam deploy --guided")
    return 0
