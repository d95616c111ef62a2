"""Where route tables come from: a file, an SSM parameter, stack outputs or Lambda tags; plus a cache.

The AWS sources take an injected boto3 client (``ssm``, ``cloudformation`` or ``lambda``) so the
router itself never imports boto3; tests pass moto-backed clients or small stubs. A route
*location* is either a file path or ``ssm:<parameter name>`` (:func:`route_loader`).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from dify_lambda import wire
from dify_lambda.router.errors import InvalidRouteTableError, RouteSourceError
from dify_lambda.router.routes import RouteTable, parse_route_table, region_from_url

__all__ = [
    "MAX_ROUTE_TABLE_BYTES",
    "SSM_PREFIX",
    "RouteCache",
    "load_route_file",
    "route_loader",
    "routes_from_ssm",
    "routes_from_stack_outputs",
    "routes_from_tags",
    "ssm_parameter_name",
]

logger = logging.getLogger(__name__)

_AUTH_ALIASES = {"aws_iam": "iam", "iam": "iam", "none": "none", "secret": "secret"}
#: Prefix of a route location naming an SSM parameter instead of a file.
SSM_PREFIX = "ssm:"
#: Largest route document read (a file or a parameter value); real tables are a few kilobytes.
MAX_ROUTE_TABLE_BYTES = wire.MIB


def _read_regular_file(file: Path, limit: int) -> bytes:
    """Up to ``limit`` bytes of a regular file; anything else (FIFO, device, directory) is refused.

    Opened non-blocking, so a FIFO without a writer cannot stall the caller (Dify's start-up).
    """
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise RouteSourceError(f"{file}: cannot read route table: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RouteSourceError(f"{file}: route table is not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise InvalidRouteTableError(f"{file}: route table is over {limit} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise RouteSourceError(f"{file}: cannot read route table: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def load_route_file(path: str | Path) -> RouteTable:
    """Read a YAML or JSON route table (a regular file, size-capped); errors name the file and the entry."""
    file = Path(path)
    data = _read_regular_file(file, MAX_ROUTE_TABLE_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRouteTableError(f"{file}: route table is not UTF-8 text") from None
    raw = _decode(text, as_json=file.suffix.lower() == ".json", where=str(file))
    return parse_route_table(raw, source=file.name)


def _decode(text: str, *, as_json: bool, where: str) -> Any:
    """Decode a route document as JSON or YAML; errors name ``where`` and the line, never the text."""
    if as_json:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidRouteTableError(f"{where}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        except RecursionError:
            raise InvalidRouteTableError(f"{where}: route table nests too deeply") from None
    import yaml  # lazy: only YAML tables need it

    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise InvalidRouteTableError(f"{where}: route table nests too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidRouteTableError(f"{where}: invalid YAML{line}") from None


def _aws_error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ``ClientError`` (or a look-alike), else the class name."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code", "") if isinstance(response, Mapping) else ""
    return str(code) or type(exc).__name__


def routes_from_ssm(ssm_client: Any, name: str) -> RouteTable:
    """Read the route table held in the SSM parameter ``name`` (JSON, as the deployer writes it, or YAML).

    ``ssm_client`` is a boto3 ``ssm`` client; SecureString parameters are decrypted. Errors name
    ``ssm:<name>`` and the entry: :class:`RouteSourceError` when the parameter is missing or the
    call fails, :class:`InvalidRouteTableError` when the value is not a valid route table.
    """
    source = f"{SSM_PREFIX}{name}"
    if not name:
        raise RouteSourceError(f"{source}: empty SSM parameter name")
    try:
        value = ssm_client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except Exception as exc:  # botocore errors; botocore is not imported here
        code = _aws_error_code(exc)
        if code == "ParameterNotFound":
            raise RouteSourceError(f"{source}: SSM parameter not found") from None
        raise RouteSourceError(f"{source}: get_parameter failed: {code}") from None
    if not isinstance(value, str):
        raise InvalidRouteTableError(f"{source}: parameter value is not a string")
    if len(value) > MAX_ROUTE_TABLE_BYTES:
        raise InvalidRouteTableError(f"{source}: parameter value is over {MAX_ROUTE_TABLE_BYTES} bytes")
    # The deployer writes compact JSON; a hand-written YAML value works too.
    raw = _decode(value, as_json=value.lstrip().startswith(("{", "[")), where=source)
    return parse_route_table(raw, source=source)


def ssm_parameter_name(location: str | Path) -> str | None:
    """The parameter name of an ``ssm:<name>`` route location, or None for a file path."""
    if isinstance(location, Path) or not location.startswith(SSM_PREFIX):
        return None
    name = location[len(SSM_PREFIX) :].strip()
    if not name:
        raise RouteSourceError(f"{location!r}: expected ssm:<parameter name>")
    return name


def route_loader(
    location: str | Path, *, ssm_client: Callable[[], Any] | None = None
) -> Callable[[], RouteTable]:
    """A :class:`RouteCache` loader for a route location: ``ssm:<name>`` or a file path.

    For SSM, ``ssm_client`` is a factory of the boto3 client, called once on the first load (so the
    caller decides how boto3 is imported and configured).
    """
    name = ssm_parameter_name(location)
    if name is None:
        return lambda: load_route_file(location)
    if ssm_client is None:
        raise RouteSourceError(f"{SSM_PREFIX}{name}: no SSM client to read the route table with")
    factory = ssm_client
    clients: list[Any] = []

    def load() -> RouteTable:
        if not clients:
            try:
                clients.append(factory())
            except Exception as exc:  # e.g. botocore NoRegionError
                raise RouteSourceError(
                    f"{SSM_PREFIX}{name}: cannot create the SSM client: {type(exc).__name__}"
                ) from None
        return routes_from_ssm(clients[0], name)

    return load


def _normalise_auth(value: str | None, default: str, *, where: str) -> str:
    if not value:
        return default
    auth = _AUTH_ALIASES.get(value.strip().lower())
    if auth is None:
        raise InvalidRouteTableError(f"{where}: unknown auth {value!r} (expected AWS_IAM, NONE or secret)")
    return auth


def _deployment(url: str, auth: str, secret_env: str | None, region: str | None) -> dict[str, Any]:
    dep: dict[str, Any] = {"url": url, "auth": auth}
    if region and not region_from_url(url):
        dep["region"] = region
    if auth == "secret":
        dep["secret_env"] = secret_env
    return dep


def _add(table: dict[str, Any], plugin_id: str, providers: Iterable[str], dep: dict[str, Any]) -> None:
    route = table.setdefault(plugin_id, {"deployments": [], "providers": {}})
    route["deployments"].append(dep)
    for provider in providers:
        route["providers"].setdefault(provider, {"deployments": []})["deployments"].append(dep)


def routes_from_stack_outputs(
    cloudformation: Any,
    stack_names: Iterable[str],
    *,
    auth: str = "iam",
    secret_env: str | None = None,
) -> RouteTable:
    """Build routes from the outputs of dify-lambda stacks (``FunctionUrl``, ``PluginId``, ``Providers``).

    Outputs may carry a common prefix per function (``<Prefix>FunctionUrl``, ``<Prefix>PluginId``),
    so one stack can hold several plugins.
    """
    table: dict[str, Any] = {}
    for stack in stack_names:
        try:
            stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
        except Exception as exc:  # botocore ClientError and friends; boto3 is not imported here
            raise RouteSourceError(f"stack {stack!r}: describe_stacks failed: {type(exc).__name__}") from None
        outputs = {o["OutputKey"]: o["OutputValue"] for s in stacks for o in s.get("Outputs", [])}
        prefixes = [
            k[: -len(wire.OUTPUT_FUNCTION_URL)] for k in outputs if k.endswith(wire.OUTPUT_FUNCTION_URL)
        ]
        if not prefixes:
            raise InvalidRouteTableError(f"stack {stack!r}: no '{wire.OUTPUT_FUNCTION_URL}' output")
        for prefix in sorted(prefixes):
            where = f"stack {stack!r}: output '{prefix}{wire.OUTPUT_PLUGIN_ID}'"
            plugin_id = outputs.get(prefix + wire.OUTPUT_PLUGIN_ID)
            if not plugin_id:
                raise InvalidRouteTableError(f"{where} is missing")
            providers = wire.split_providers(outputs.get(prefix + wire.OUTPUT_PROVIDERS, ""))
            url = outputs[prefix + wire.OUTPUT_FUNCTION_URL]
            _add(table, plugin_id, providers, _deployment(url, auth, secret_env, None))
    return parse_route_table({"routes": table}, source="stack outputs")


def _paginate(call: Callable[..., Mapping[str, Any]], key: str, **kwargs: Any) -> Iterable[Any]:
    marker: str | None = None
    while True:
        page = call(**kwargs, **({"Marker": marker} if marker else {}))
        yield from page.get(key, [])
        marker = page.get("NextMarker")
        if not marker:
            return


def _url_config(lambda_client: Any, name: str) -> Mapping[str, Any] | None:
    """The function URL config of the ``live`` alias, else of the unqualified function."""
    for qualifier in (wire.ALIAS_NAME, None):
        try:
            kwargs = {"FunctionName": name, **({"Qualifier": qualifier} if qualifier else {})}
            config: Mapping[str, Any] = lambda_client.get_function_url_config(**kwargs)
            return config
        except Exception as exc:
            code = _aws_error_code(exc)
            if code != "ResourceNotFoundException":
                raise RouteSourceError(f"function {name!r}: get_function_url_config failed: {code}") from None
    return None


def routes_from_tags(lambda_client: Any, *, secret_env: str | None = None) -> RouteTable:
    """Discover functions tagged ``dify-lambda:managed`` and build routes from their tags and URLs.

    Uses ``list_functions``, ``list_tags`` and ``get_function_url_config`` (``list_function_url_configs``
    is avoided: moto does not implement it). Functions without a URL are skipped with a warning.
    """
    table: dict[str, Any] = {}
    try:
        functions = list(_paginate(lambda_client.list_functions, "Functions"))
    except Exception as exc:
        raise RouteSourceError(f"list_functions failed: {type(exc).__name__}") from None
    for fn in functions:
        arn, name = fn["FunctionArn"], fn["FunctionName"]
        try:
            tags = lambda_client.list_tags(Resource=arn).get("Tags", {})
        except Exception as exc:
            raise RouteSourceError(f"function {name!r}: list_tags failed: {type(exc).__name__}") from None
        tagged = wire.read_identity_tags(tags)
        if tagged is None:
            continue
        if not tagged.plugin_id:
            raise InvalidRouteTableError(f"function {name!r}: tag '{wire.TAG_PLUGIN_ID}' is missing")
        config = _url_config(lambda_client, name)
        if config is None:
            logger.warning("dify-lambda function %s has no function URL; skipped", name)
            continue
        url_auth = "none" if config.get("AuthType") == "NONE" else "iam"
        auth = _normalise_auth(tagged.auth, url_auth, where=f"function {name!r}: tag '{wire.TAG_AUTH}'")
        if url_auth == "none" and auth == "none" and secret_env:
            auth = "secret"
        region = arn.split(":")[3] if arn.count(":") >= 4 else None
        _add(
            table,
            tagged.plugin_id,
            tagged.providers,
            _deployment(config["FunctionUrl"], auth, secret_env, region),
        )
    return parse_route_table({"routes": table}, source="lambda tags")


class RouteCache:
    """A route table reloaded from ``loader`` at most every ``refresh_seconds`` (thread/greenlet safe).

    A failed refresh keeps the last good table (logged); a failed first load raises.
    """

    def __init__(
        self,
        loader: Callable[[], RouteTable],
        *,
        refresh_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._refresh = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._table: RouteTable | None = None
        self._loaded_at = 0.0
        self.last_error: Exception | None = None

    @classmethod
    def static(cls, table: RouteTable) -> RouteCache:
        cache = cls(lambda: table, refresh_seconds=float("inf"))
        cache._table = table
        return cache

    def get(self) -> RouteTable:
        table = self._table
        if table is not None and self._clock() - self._loaded_at < self._refresh:
            return table
        with self._lock:
            if self._table is not None and self._clock() - self._loaded_at < self._refresh:
                return self._table
            try:
                fresh = self._loader()
            except Exception as exc:
                if self._table is None:
                    raise
                self.last_error = exc
                self._loaded_at = self._clock()  # wait a full interval before trying again
                logger.warning("route table refresh failed, keeping the previous table: %s", exc)
                return self._table
            self._table, self._loaded_at, self.last_error = fresh, self._clock(), None
            return fresh
