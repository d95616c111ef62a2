"""CLI command ``invoke``: call one model action on a function URL (or a routed plugin) by hand.

Examples::

    dify-lambda invoke https://abc.lambda-url.us-east-1.on.aws/ invoke_llm --data @llm.json
    dify-lambda invoke --routes routes.yaml --plugin langgenius/openai invoke_text_embedding --data '{...}'
    dify-lambda invoke --routes ssm:/dify-lambda/routes --plugin acme/x invoke_llm --data @llm.json

LLM text deltas are printed as they arrive; other actions print their JSON payloads; usage goes to
stderr at the end. A plugin error prints one line and exits 1; bad flags exit 2.

``--data`` holds the action's fields, or a whole request envelope as the daemon sends it
(``{"event": "request", "data": {...}}``). A URL may end in ``/invoke``. A loopback URL (``serve``)
is called unsigned unless ``--auth`` says otherwise: the local function URL does not check SigV4.
Credentials a plugin echoes back (``validate_*_credentials`` does) are masked unless
``--show-secrets``: every value under a ``credentials`` key, and any value sent as a credential.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["mask_secrets", "normalise_url", "register", "unwrap_data"]

DIRECT_PLUGIN_ID = "cli/direct"
DEFAULT_USER_ID = "dify-lambda-cli"
MASK = "********"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
#: Keys of the request body the router sets itself; dropped from an envelope's ``data``.
_ENVELOPE_KEYS = ("user_id", "type", "action")
#: Credential values shorter than this are not searched for in the output (too many false hits).
_MIN_SECRET_LEN = 6
_USAGE_KEYS = (
    "prompt_tokens",
    "completion_tokens",
    "tokens",
    "total_tokens",
    "total_price",
    "currency",
    "latency",
)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands to the top-level parser."""
    parser = sub.add_parser(
        "invoke",
        help="call a model action on a function URL or a routed plugin",
        description=(
            "Send one model action (invoke_llm, invoke_text_embedding, ...) through the dify-lambda router "
            "to a function URL, or to the deployments a route table lists for --plugin."
        ),
        usage=(
            "dify-lambda invoke (URL | --routes FILE|ssm:NAME --plugin ID) ACTION"
            " --data @file.json|JSON [options]"
        ),
    )
    parser.add_argument(
        "target", nargs="+", metavar="[URL] ACTION", help="function URL (optional) and action"
    )
    parser.add_argument("--data", required=True, help="the action's fields: JSON object, or @file.json")
    parser.add_argument(
        "--routes",
        metavar="FILE|ssm:NAME",
        help="route table: a YAML/JSON file, or ssm:<parameter name> (default AWS credentials and region)",
    )
    parser.add_argument("--plugin", metavar="ID", help="plugin id to route, e.g. langgenius/openai")
    parser.add_argument(
        "--user-id",
        default=None,
        help=f"user_id sent to the plugin (default: the envelope's, else {DEFAULT_USER_ID})",
    )
    parser.add_argument("--tenant-id", default=None, help="tenant id, for tenant-pinned routes")
    parser.add_argument(
        "--auth",
        choices=("iam", "none", "secret"),
        default=None,
        help="auth of URL (default iam; none for a loopback URL such as `dify-lambda serve`)",
    )
    parser.add_argument(
        "--show-secrets", action="store_true", help="print credentials a plugin echoes back, unmasked"
    )
    parser.add_argument("--secret-env", metavar="VAR", help="environment variable holding the shared secret")
    parser.add_argument(
        "--region",
        help="region for SigV4 when the URL host does not name one, or of the --routes ssm: parameter",
    )
    parser.add_argument("--timeout", type=float, default=None, help="total seconds for the call")
    parser.set_defaults(func=_run, _parser=parser)


class _BadData(ValueError):
    """--data is unreadable or not a JSON object."""


def _load_data(raw: str) -> dict[str, Any]:
    source = "--data"
    if raw.startswith("@"):
        path = Path(raw[1:])
        source = f"--data {raw}"
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise _BadData(f"{source}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _BadData(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise _BadData(f"{source}: must be a JSON object with the action's fields")
    return data


def unwrap_data(data: dict[str, Any], action: str) -> tuple[dict[str, Any], str | None]:
    """The action's fields from ``--data`` and the envelope's user_id, if it was a request envelope.

    Accepts the fields alone, a request body (fields plus ``user_id``/``type``/``action``) or a
    whole envelope (``{"event": "request", "data": body}``). An envelope for another action is
    refused rather than sent under the wrong name.
    """
    body = data
    if data.get("event") == "request" and isinstance(data.get("data"), dict):
        body = data["data"]
    named = body.get("action")
    if isinstance(named, str) and named != action:
        raise _BadData(f"--data: the envelope is for action {named!r}, not {action!r}")
    user_id = body.get("user_id") if isinstance(body.get("user_id"), str) else None
    return {k: v for k, v in body.items() if k not in _ENVELOPE_KEYS}, user_id


def normalise_url(url: str) -> str:
    """The function URL without a trailing ``/invoke`` (and its query): the router adds it."""
    from urllib.parse import urlsplit, urlunsplit

    from dify_lambda import wire

    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith(wire.INVOKE_PATH):
        path = path[: -len(wire.INVOKE_PATH)]
        return urlunsplit((parts.scheme, parts.netloc, path + "/", "", ""))
    return url


def _is_loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "") in _LOOPBACK_HOSTS


def _secret_values(data: dict[str, Any]) -> set[str]:
    credentials = data.get("credentials")
    if not isinstance(credentials, dict):
        return set()
    return {v for v in credentials.values() if isinstance(v, str) and len(v) >= _MIN_SECRET_LEN}


def mask_secrets(value: Any, secrets: set[str], *, under_credentials: bool = False) -> Any:
    """``value`` with every value under a ``credentials`` key, and every known secret, masked."""
    if isinstance(value, dict):
        return {
            k: mask_secrets(v, secrets, under_credentials=under_credentials or k == "credentials")
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(v, secrets, under_credentials=under_credentials) for v in value]
    if isinstance(value, str):
        if under_credentials and value:
            return MASK
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if under_credentials and value is not None and not isinstance(value, bool):
        return MASK
    return value


def _text_of(chunk: dict[str, Any]) -> str:
    message = (chunk.get("delta") or {}).get("message") or {}
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("data", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _print_usage(usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    fields = " ".join(f"{k}={usage[k]}" for k in _USAGE_KEYS if k in usage)
    print(f"usage: {fields}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from dify_lambda import wire

    parser: argparse.ArgumentParser = args._parser
    if len(args.target) > 2:
        parser.error("expected [URL] ACTION, got more positional arguments")
    url = normalise_url(args.target[0]) if len(args.target) == 2 else None
    action = args.target[-1]
    if action not in wire.MODEL_ACTIONS:
        parser.error(f"unknown ACTION {action!r} (choose from {', '.join(sorted(wire.MODEL_ACTIONS))})")
    if url is None and (args.routes is None or not args.plugin):
        parser.error("give a function URL, or --routes FILE with --plugin ID (FILE may be ssm:NAME)")
    if url is not None and args.routes is not None:
        parser.error("give either a URL or --routes, not both")
    if url is not None and (args.auth or "iam") == "secret" and not args.secret_env:
        parser.error("--auth secret needs --secret-env VAR")
    if args.secret_env and (args.auth or "iam") != "secret":
        parser.error("--secret-env is only used with --auth secret")
    from dify_lambda.router.sources import SSM_PREFIX, load_route_file, route_loader, ssm_parameter_name

    ssm_name = ssm_parameter_name(args.routes) if url is None and args.routes else None
    if url is None and (args.auth or args.secret_env):
        parser.error("--auth and --secret-env apply to a URL; routes carry their own")
    if url is None and args.region and ssm_name is None:
        parser.error(
            f"--region applies to a URL or to --routes {SSM_PREFIX}NAME; route files carry their own"
        )
    try:
        data, envelope_user = unwrap_data(_load_data(args.data), action)
    except _BadData as exc:
        parser.error(str(exc))
    user_id = args.user_id or envelope_user or DEFAULT_USER_ID
    secrets = set() if args.show_secrets else _secret_values(data)

    from dify_lambda.router.client import Router
    from dify_lambda.router.errors import PluginInvokeError
    from dify_lambda.router.events import StreamEvent
    from dify_lambda.router.routes import parse_route_table

    if url is not None:
        auth = args.auth
        if auth is None and _is_loopback(url):
            auth = "none"
            print(
                "dify-lambda: note: loopback URL, calling it unsigned (IAM is not used by a local "
                "function URL; pass --auth iam to sign anyway)",
                file=sys.stderr,
            )
        deployment: dict[str, Any] = {"url": url, "auth": auth or "iam"}
        if args.secret_env:
            if not os.environ.get(args.secret_env):
                parser.error(f"environment variable {args.secret_env} (--secret-env) is not set")
            deployment["secret_env"] = args.secret_env
        if args.region:
            deployment["region"] = args.region
        plugin_id = args.plugin or DIRECT_PLUGIN_ID
        table = parse_route_table({"routes": {plugin_id: {"deployments": [deployment]}}}, source="URL")
    elif ssm_name is not None:
        region = args.region

        def ssm_client() -> Any:
            import boto3  # lazy: only SSM route tables need it

            return boto3.client("ssm", region_name=region)

        table = route_loader(args.routes, ssm_client=ssm_client)()
        plugin_id = args.plugin
    else:
        table = load_route_file(args.routes)
        plugin_id = args.plugin

    is_llm = action == "invoke_llm"
    usage: Any = None
    out = sys.stdout
    with Router(table) as router:
        try:
            for event in router.invoke(
                plugin_id, action, data, user_id=user_id, tenant_id=args.tenant_id, timeout=args.timeout
            ):
                if not isinstance(event, StreamEvent):
                    continue
                payload = event.data if args.show_secrets else mask_secrets(event.data, secrets)
                if is_llm and isinstance(payload, dict):
                    out.write(_text_of(payload))
                    out.flush()
                    usage = (payload.get("delta") or {}).get("usage") or usage
                    calls = ((payload.get("delta") or {}).get("message") or {}).get("tool_calls")
                    if calls:
                        print(f"\ntool_calls: {json.dumps(calls, ensure_ascii=False)}", file=sys.stderr)
                else:
                    out.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
                    out.flush()
                    if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
                        usage = payload["usage"]
        except PluginInvokeError as exc:
            if is_llm:
                out.write("\n")
            print(f"dify-lambda: plugin error: {exc.error_type}: {exc.error_message}", file=sys.stderr)
            return 1
    if is_llm:
        out.write("\n")
        out.flush()
    _print_usage(usage)
    return 0
