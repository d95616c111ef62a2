"""``dify-lambda build PKG``: a .difypkg (or plugin directory) -> Lambda artifact + SAM application."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dify_lambda.cli.options import architecture, existing_file, function_name, output_dir, positive_int
from dify_lambda.cli.progress import reporter_for
from dify_lambda.errors import UsageError
from dify_lambda.wire import MIB


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        # The value may be a secret: name the key only.
        raise UsageError(f"--env: expected KEY=VALUE (got {key or 'no key'!r} without '=')")
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
    p.add_argument(
        "-o", "--output", type=output_dir, metavar="DIR", help="output directory (default: out/<plugin name>)"
    )
    p.add_argument(
        "--arch",
        type=architecture,
        help="x86_64 (amd64) or arm64 (aarch64) (default: the manifest's meta.arch, x86_64 first)",
    )
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
        "--template-overlay",
        type=existing_file,
        metavar="FILE",
        help="YAML deep-merged into the template last",
    )
    p.add_argument(
        "--cache-dir", type=Path, metavar="DIR", help="default $DIFY_LAMBDA_CACHE or ~/.cache/dify-lambda"
    )
    p.add_argument(
        "--no-cache", action="store_true", help="resolve dependencies afresh (pip's cache still used)"
    )
    p.add_argument("--no-compile", action="store_true", help="do not ship .pyc files")
    p.add_argument(
        "--max-unzipped-mb", type=positive_int, default=250, metavar="MB", help="size limit (default 250)"
    )
    p.add_argument(
        "--function-name", type=function_name, help="explicit FunctionName (default: CloudFormation chooses)"
    )
    p.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment variable"
    )
    p.add_argument("--find-links", action="append", default=[], type=Path, metavar="DIR", help="local wheels")
    p.add_argument(
        "--index-url", metavar="URL", help="package index (default: uv/pip configuration, else PyPI)"
    )
    p.add_argument(
        "--extra-index-url", action="append", default=[], metavar="URL", help="additional package index"
    )
    p.add_argument(
        "--allow-sdist",
        action="append",
        default=[],
        metavar="NAME",
        help="let this machine build NAME from its sdist (runs its build code here; default: wheels only)",
    )
    p.add_argument("--resolver", default="uv", help="dependency resolver: uv (default) or pip")
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

    options = BuildOptions(
        arch=args.arch,
        python=args.python,
        memory_mb=args.memory,
        timeout=args.timeout,
        url_auth=args.url_auth,
        snapstart=args.snapstart,
        template_overlay=args.template_overlay,
        cache_dir=args.cache_dir,
        max_unzipped_bytes=args.max_unzipped_mb * MIB,
        function_name=args.function_name,
        extra_environment=dict(_env_pair(e) for e in args.env),
        find_links=tuple(args.find_links),
        index_url=args.index_url,
        extra_index_urls=tuple(args.extra_index_url),
        allow_sdist=tuple(args.allow_sdist),
        resolver=args.resolver,
        use_cache=not args.no_cache,
        compile=not args.no_compile,
        smoke=not args.no_smoke,
        tiktoken_data=not args.no_tiktoken_data,
        tiktoken_encodings=tuple(args.tiktoken_encoding),
        tiktoken_cache=args.tiktoken_cache,
    )
    package = open_package(args.package)
    out_dir = Path(args.output) if args.output else Path("out") / package.manifest.name

    # A heartbeat on a terminal keeps dependency resolution (30-60 s) from looking stuck.
    with reporter_for(quiet=args.quiet, json_output=args.json) as progress:
        result = build(package, out_dir, options, progress=progress)
    report = result.report
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return 0
    mib = MIB
    print(f"built {report.unique_identifier} for {report.function.runtime} {report.function.architecture}")
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
    if report.built_from_source:
        print(f"  built from source (--allow-sdist): {', '.join(report.built_from_source)}")
    print(f"  memory    {report.function.memory_mb} MB ({report.memory_reason})")
    print(f"  sdk       dify_plugin {report.sdk_version}")
    if report.tiktoken.get("status") == "shipped":
        print(
            f"  tiktoken  {', '.join(report.tiktoken['encodings'])} ({report.tiktoken['bytes'] / mib:.1f} MB)"
        )
    if report.smoke.get("status") == "passed":
        loaded = ", ".join(f"{p['name']} ({len(p['models'])} models)" for p in report.smoke["providers"])
        when = (
            "(passed on a previous build of this artifact)"
            if report.smoke.get("cached")
            else (f"in {report.smoke['seconds']:.1f} s")
        )
        print(f"  smoke     loaded {loaded} {when}")
    for note in report.notes:
        print(f"  note: {note}")
    print(f"deploy: cd {result.out_dir} && sam deploy --guided")
    return 0
