"""CLI commands for AWS: ``deploy``, ``rollback``, ``rm``, ``ls`` and the serverless ``connector``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dify_lambda.cli.options import architecture, function_name, output_dir, positive_int
from dify_lambda.cli.output import add_json_flag, print_json
from dify_lambda.cli.progress import Reporter, reporter_for
from dify_lambda.wire import MIB

if TYPE_CHECKING:
    from dify_lambda.infra.builder import Builder

__all__ = ["register"]

DEFAULT_API_KEY_ENV = "DIFY_LAMBDA_CONNECTOR_API_KEY"


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        # The value may be a secret: name the key only.
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (got {key or 'no key'!r} without '=')")
    return key, value


_positive_int = positive_int


def _aws_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)")
    p.add_argument("--profile", help="AWS profile from the shared config")


def _build_arguments(p: argparse.ArgumentParser) -> None:
    """The build options of the commands that build a package before deploying it (deploy, connector)."""
    p.add_argument(
        "--arch", type=architecture, help="build: x86_64 (amd64) or arm64 (aarch64); default the manifest's"
    )
    p.add_argument("--python", help="build: 3.12 or 3.13; default the manifest's")
    p.add_argument("--cache-dir", type=Path, metavar="DIR", help="build: dependency cache directory")
    p.add_argument(
        "--no-smoke",
        action="store_true",
        help="build: skip the smoke init, the one step that runs the plugin's code here (without network)",
    )


def _builder(args: argparse.Namespace) -> Builder:
    """A package builder with the options :func:`_build_arguments` added."""
    from dify_lambda.infra.builder import packaging_builder

    return packaging_builder(
        arch=args.arch, python=args.python, cache_dir=args.cache_dir, smoke=not args.no_smoke
    )


def _reporter(args: argparse.Namespace) -> Reporter:
    return reporter_for(quiet=getattr(args, "quiet", False), json_output=getattr(args, "json", False))


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands to the top-level parser."""
    d = sub.add_parser(
        "deploy",
        help="create or update a plugin function on AWS Lambda",
        description=(
            "Deploy a built artifact (a `dify-lambda build` output directory) or a .difypkg/plugin "
            "directory (built first) as a Lambda function: publish a version, point the 'live' alias "
            "at it and serve it from a streaming function URL. Deploying the same checksum twice "
            "changes nothing."
        ),
    )
    d.add_argument(
        "source", metavar="PKG_OR_BUILD_DIR", help="build output directory, .difypkg or plugin directory"
    )
    _aws_arguments(d)
    d.add_argument(
        "--name",
        type=function_name,
        help="function name (must start with dify-; default dify-<author>-<name>-<version>)",
    )
    d.add_argument(
        "--url-auth",
        choices=("AWS_IAM", "NONE"),
        help="function URL AuthType (default: the build's, AWS_IAM)",
    )
    d.add_argument(
        "--principal",
        action="append",
        default=[],
        metavar="ARN",
        help="caller allowed to invoke the AWS_IAM URL (lambda:InvokeFunctionUrl and lambda:InvokeFunction)",
    )
    d.add_argument("--role-arn", help="execution role (default: create dify-lambda-<function>)")
    d.add_argument("--no-create-role", action="store_true", help="fail instead of creating an execution role")
    d.add_argument(
        "--bucket",
        help="S3 bucket for artifacts over 50 MB (default dify-lambda-artifacts-<account>-<region>)",
    )
    d.add_argument("--no-create-bucket", action="store_true", help="fail instead of creating the bucket")
    d.add_argument("--memory", type=_positive_int, metavar="MB", help="override MemorySize")
    d.add_argument("--timeout", type=_positive_int, metavar="SECONDS", help="override Timeout")
    d.add_argument(
        "--env", action="append", default=[], type=_env_pair, metavar="KEY=VALUE", help="extra environment"
    )
    d.add_argument("--rotate-secret", action="store_true", help="NONE auth: generate a new path secret")
    _build_arguments(d)
    d.add_argument(
        "--build-dir", type=output_dir, metavar="DIR", help="build: output directory (default out/<name>)"
    )
    d.add_argument(
        "--routes", type=Path, metavar="FILE", help="merge the route into this YAML/JSON route table"
    )
    d.add_argument(
        "--routes-ssm", metavar="NAME", help="merge the route into this SSM String parameter (JSON)"
    )
    d.add_argument("--secret-env", metavar="VAR", help="NONE auth: env var the router reads the secret from")
    d.add_argument(
        "--dry-run", action="store_true", help="print what the deploy would change, and change nothing"
    )
    d.add_argument(
        "--keep",
        type=positive_int,
        metavar="N",
        help="delete published versions beyond the N newest (never the one live points at)",
    )
    add_json_flag(d)
    d.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    d.set_defaults(func=cmd_deploy)

    r = sub.add_parser("rollback", help="point the live alias at the previous published version")
    r.add_argument("function", metavar="FUNCTION", type=function_name, help="function name (dify-...)")
    _aws_arguments(r)
    add_json_flag(r)
    r.set_defaults(func=cmd_rollback)

    rm = sub.add_parser(
        "rm",
        help="remove a deployed plugin: function, alias, URL, permissions, its role and route entry",
        description=(
            "Delete FUNCTION with its versions, alias, URL and permissions, its execution role when "
            "dify-lambda created it, and its entry in --routes/--routes-ssm. Asks first unless --yes."
        ),
    )
    rm.add_argument("function", metavar="FUNCTION", type=function_name, help="function name (dify-...)")
    _aws_arguments(rm)
    rm.add_argument("--routes", type=Path, metavar="FILE", help="also remove its entry from this route table")
    rm.add_argument("--routes-ssm", metavar="NAME", help="also remove its entry from this SSM route table")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    add_json_flag(rm)
    rm.set_defaults(func=cmd_rm)

    ls = sub.add_parser("ls", help="list deployed plugin functions")
    _aws_arguments(ls)
    add_json_flag(ls, "the functions")
    ls.add_argument("--show-secrets", action="store_true", help="include NONE functions' secret endpoints")
    ls.set_defaults(func=cmd_ls)

    c = sub.add_parser(
        "connector",
        help="run a serverless connector for an unmodified Dify plugin daemon (PLATFORM=serverless)",
        description="Serve the daemon's connector API: /ping, /v1/runner/instances, /v1/launch "
        "(docs/connector.md).",
    )
    c.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    c.add_argument("--port", type=int, default=5004, help="port (default 5004; 0 picks a free one)")
    c.add_argument(
        "--api-key-env",
        default=DEFAULT_API_KEY_ENV,
        metavar="VAR",
        help=f"environment variable holding the API key (default {DEFAULT_API_KEY_ENV})",
    )
    c.add_argument(
        "--allow-unverified", action="store_true", help="launch packages the daemon marks unverified"
    )
    c.add_argument(
        "--max-package-mb", type=_positive_int, default=50, metavar="N", help="upload cap (default 50)"
    )
    _aws_arguments(c)
    c.add_argument("--daemon-url", help="DIFY_PLUGIN_DAEMON_URL given to launched functions")
    c.add_argument(
        "--role-arn", help="execution role for launched functions (default: one role per function)"
    )
    c.add_argument("--bucket", help="S3 bucket for artifacts over 50 MB")
    _build_arguments(c)
    c.add_argument(
        "--launch-timeout",
        type=_positive_int,
        default=225,
        metavar="SECONDS",
        help="stream budget (default 225)",
    )
    c.add_argument(
        "--read-timeout",
        type=_positive_int,
        default=30,
        metavar="SECONDS",
        help="time to receive one whole request, and longest wait for any byte (default 30)",
    )
    c.set_defaults(func=cmd_connector)


def _deployer(args: argparse.Namespace, **kwargs: Any) -> Any:
    from dify_lambda.infra.aws import AwsClients
    from dify_lambda.infra.deployer import Deployer

    return Deployer(AwsClients.create(args.region, profile=args.profile), **kwargs)


def _check_route_targets(args: argparse.Namespace) -> None:
    """An existing route file must be a valid table before anything is built or deployed."""
    from dify_lambda.errors import UsageError
    from dify_lambda.infra.errors import RoutePublishError
    from dify_lambda.infra.routes import check_route_file

    if args.routes is not None:
        try:
            check_route_file(args.routes)
        except RoutePublishError as exc:
            raise UsageError(f"--routes {exc}") from None


def _result_json(result: Any, published: list[str]) -> dict[str, Any]:
    return {
        "status": result.status,
        "function_name": result.function_name,
        "function_arn": result.function_arn,
        "version": result.version,
        "previous_version": result.previous_version,
        "url": result.url,
        "url_auth": result.url_auth,
        "unique_identifier": result.unique_identifier,
        "steps": list(result.steps),
        "pruned": list(result.pruned),
        "routes": published,
    }


def cmd_deploy(args: argparse.Namespace) -> int:
    from dify_lambda.infra.builder import BuildRequest, load_build_output
    from dify_lambda.infra.models import DeployOptions
    from dify_lambda.infra.routes import publish_to_file, publish_to_ssm
    from dify_lambda.packaging.build import REPORT_FILE

    _check_route_targets(args)
    source = Path(args.source)
    with _reporter(args) as progress:
        if (source / REPORT_FILE).is_file():
            artifact = load_build_output(source)
        else:
            from dify_lambda.packaging.build import open_package

            package = open_package(source)
            out_dir = args.build_dir or Path("out") / package.manifest.name
            progress(f"building {package.unique_identifier} into {out_dir}")
            artifact = _builder(args)(
                BuildRequest(package=package, out_dir=out_dir, url_auth=args.url_auth or "AWS_IAM"), progress
            )
        deployer = _deployer(args, bucket=args.bucket, create_bucket=not args.no_create_bucket)
        options = DeployOptions(
            name=args.name,
            url_auth=args.url_auth,
            principals=tuple(args.principal),
            role_arn=args.role_arn,
            create_role=not args.no_create_role,
            environment=dict(args.env),
            memory_mb=args.memory,
            timeout_s=args.timeout,
            rotate_secret=args.rotate_secret,
            keep=args.keep,
        )
        if args.dry_run:
            plan, desired = deployer.plan(artifact, options)
            if args.json:
                print_json(
                    {
                        "function_name": desired.name,
                        "status": plan.status,
                        "live": plan.previous_version,
                        "steps": plan.describe(),
                    }
                )
                return 0
            print(f"plan for {desired.name} ({artifact.unique_identifier}): {plan.status}")
            for line in plan.describe():
                print(f"  - {line}")
            if not plan.steps:
                print("  nothing to do: live already serves this code and configuration")
            return 0
        result = deployer.deploy(artifact, options, progress)
        published: list[str] = []
        if args.routes:
            published.append(str(publish_to_file(args.routes, result, secret_env=args.secret_env)))
        if args.routes_ssm:
            publish_to_ssm(deployer.clients.ssm, args.routes_ssm, result, secret_env=args.secret_env)
            published.append(f"ssm:{args.routes_ssm}")
    if args.json:
        print_json(_result_json(result, published))
        return 0
    print(f"{result.status}: {result.unique_identifier}")
    print(f"  function  {result.function_name}")
    previous = (
        f" (was {result.previous_version})" if result.previous_version not in (None, result.version) else ""
    )
    print(f"  version   {result.version}{previous}, alias live")
    print(f"  url       {result.url} ({result.url_auth})")
    if result.pruned:
        print(f"  pruned    version{'s' if len(result.pruned) > 1 else ''} {', '.join(result.pruned)}")
    if result.url_auth == "NONE":
        print("  secret    in the function environment; `dify-lambda ls --show-secrets` prints the endpoint")
    for target in published:
        print(f"  routes    {target}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    with _reporter(args) as progress:
        result = _deployer(args).rollback(args.function, progress)
    if args.json:
        print_json(
            {
                "function_name": result.function_name,
                "from_version": result.from_version,
                "to_version": result.to_version,
            }
        )
        return 0
    print(f"rolled back {result.function_name}: live {result.from_version} -> {result.to_version}")
    return 0


def _confirm(question: str) -> bool:
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_rm(args: argparse.Namespace) -> int:
    from dify_lambda.infra.errors import DeployError
    from dify_lambda.infra.routes import remove_from_file, remove_from_ssm

    _check_route_targets(args)
    deployer = _deployer(args)
    found = deployer.describe(args.function)
    if found is None:
        raise DeployError(f"function {args.function} does not exist or is not managed by dify-lambda")
    if not args.yes:
        targets = ", ".join(
            ["its versions, alias, URL and permissions", "its role if dify-lambda created it"]
            + (["its route entry"] if args.routes or args.routes_ssm else [])
        )
        if not _confirm(f"remove {found.function_name} ({found.unique_identifier}) with {targets}?"):
            print("dify-lambda: nothing removed", file=sys.stderr)
            return 1
    with _reporter(args) as progress:
        removed = deployer.remove(args.function, progress=progress)
        routes: list[str] = []
        if args.routes and removed.url and remove_from_file(args.routes, removed.plugin_id, removed.url):
            routes.append(str(args.routes))
        if (
            args.routes_ssm
            and removed.url
            and remove_from_ssm(deployer.clients.ssm, args.routes_ssm, removed.plugin_id, removed.url)
        ):
            routes.append(f"ssm:{args.routes_ssm}")
    if args.json:
        print_json(
            {
                "function_name": removed.function_name,
                "plugin_id": removed.plugin_id,
                "role_removed": removed.role_removed,
                "routes": routes,
            }
        )
        return 0
    print(f"removed {removed.function_name}")
    if removed.role_removed:
        print(f"  role      {removed.role_removed}")
    for target in routes:
        print(f"  routes    {target} (entry of {removed.plugin_id})")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    functions = _deployer(args).list_deployed()
    rows = []
    for f in functions:
        row = {
            "function": f.function_name,
            "plugin_id": f.plugin_id,
            "version": f.version,
            "alias_version": f.alias_version,
            "url": f.url,
            "auth": f.url_auth,
            "checksum": f.checksum,
        }
        if args.show_secrets and f.url_auth == "NONE":
            row["endpoint"] = f.endpoint
        rows.append(row)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no dify-lambda functions found")
        return 0
    columns = ["function", "plugin_id", "version", "alias_version", "auth", "url"]
    if args.show_secrets:
        columns.append("endpoint")
    widths = {c: max(len(c), *(len(str(r.get(c) or "-")) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(str(row.get(c) or "-").ljust(widths[c]) for c in columns).rstrip())
    return 0


def cmd_connector(args: argparse.Namespace) -> int:
    import logging
    import os

    from dify_lambda.errors import UsageError
    from dify_lambda.infra.connector.server import make_server, serve_until_signalled
    from dify_lambda.infra.connector.service import ConnectorSettings, LaunchService

    api_key = os.environ.get(args.api_key_env, "")
    if not api_key:
        raise UsageError(f"the API key environment variable {args.api_key_env} is empty or unset")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ConnectorSettings(
        allow_unverified=args.allow_unverified,
        daemon_url=args.daemon_url,
        role_arn=args.role_arn,
        launch_budget_s=float(args.launch_timeout),
    )
    service = LaunchService(_deployer(args, bucket=args.bucket), _builder(args), settings)
    server = make_server(
        args.host,
        args.port,
        service,
        api_key=api_key,
        max_package_bytes=args.max_package_mb * MIB,
        read_timeout_s=float(args.read_timeout),
    )
    print(f"dify-lambda connector listening on {server.url}", flush=True)
    # SIGTERM (Docker, ECS) and SIGINT: stop accepting, roll back or finish the launches in flight.
    serve_until_signalled(server, drain_timeout_s=float(args.launch_timeout))
    return 0
