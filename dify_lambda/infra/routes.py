"""Route publication: write a deployed function into the router's route table.

The table format is the router's own (:mod:`dify_lambda.router.routes`); the merged document is
validated with the router's parser before anything is written, so a deploy can never leave a table
the router refuses. A deploy moves the plugin's default traffic to the new function (its
``deployments`` list is replaced) and keeps the provider, model and tenant overrides a human wrote.
Targets: a YAML/JSON file (written atomically) and, optionally, an SSM String parameter holding the
same document as JSON.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dify_lambda.errors import RouterError
from dify_lambda.infra.aws import error_code
from dify_lambda.infra.errors import RoutePublishError
from dify_lambda.infra.models import DeployResult
from dify_lambda.router.routes import RouteTable, parse_route_table

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

__all__ = [
    "check_route_file",
    "deployment_entry",
    "merge_route",
    "publish_to_file",
    "publish_to_ssm",
    "remove_from_file",
    "remove_from_ssm",
    "remove_route",
    "secret_env_name",
]

#: SSM standard-tier parameters hold at most 4 KB; larger tables need the advanced tier.
SSM_STANDARD_LIMIT = 4096


def secret_env_name(function_name: str) -> str:
    """The environment variable the router reads a NONE function's secret from."""
    return "DIFY_LAMBDA_SECRET_" + re.sub(r"[^A-Z0-9]+", "_", function_name.upper()).strip("_")


def deployment_entry(result: DeployResult, *, secret_env: str | None = None) -> dict[str, Any]:
    """The router ``Deployment`` for a deploy: ``iam`` for AWS_IAM URLs, ``secret`` (by env var) for NONE.

    The secret value itself is never written to the table; the router reads it from ``secret_env``.
    """
    if result.url_auth == "AWS_IAM":
        return {"url": result.url, "auth": "iam"}
    return {
        "url": result.url,
        "auth": "secret",
        "secret_env": secret_env or secret_env_name(result.function_name),
    }


def merge_route(
    document: dict[str, Any] | None, plugin_id: str, deployment: dict[str, Any]
) -> dict[str, Any]:
    """Return ``document`` with ``routes[plugin_id].deployments`` set to ``[deployment]`` (validated)."""
    doc: dict[str, Any] = dict(document or {})
    doc.setdefault("version", 1)
    routes = dict(doc.get("routes") or {})
    route = dict(routes.get(plugin_id) or {})
    route["deployments"] = [deployment]
    routes[plugin_id] = route
    doc["routes"] = routes
    _validate(doc, "merged route table")
    return doc


def _validate(doc: dict[str, Any], source: str) -> RouteTable:
    try:
        return parse_route_table(doc, source=source)
    except RouterError as exc:
        raise RoutePublishError(f"refusing to write an invalid route table: {exc}") from exc


def _load_file(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            raw = json.loads(text) if text.strip() else None
        else:
            import yaml

            raw = yaml.safe_load(text)
    except (OSError, ValueError) as exc:
        raise RoutePublishError(
            f"{path}: cannot read the existing route table ({type(exc).__name__})"
        ) from exc
    except Exception as exc:  # yaml.YAMLError without importing yaml at module level
        raise RoutePublishError(f"{path}: the existing route table is not valid YAML") from exc
    if raw is not None and not isinstance(raw, dict):
        raise RoutePublishError(f"{path}: top level must be a mapping with a 'routes' key")
    return raw


def _dump(doc: dict[str, Any], path: Path) -> str:
    if path.suffix.lower() == ".json":
        return json.dumps(doc, indent=2, sort_keys=False) + "\n"
    import yaml

    return str(yaml.safe_dump(doc, sort_keys=False))


def check_route_file(path: str | os.PathLike[str]) -> None:
    """Raise :class:`RoutePublishError` when ``path`` exists but is not a valid route table."""
    file = Path(path)
    if file.exists() and not file.is_file():
        raise RoutePublishError(f"{file}: not a file")
    doc = _load_file(file)
    if doc is not None:
        try:
            parse_route_table(doc, source=str(file))
        except RouterError as exc:
            raise RoutePublishError(f"{file}: not a valid route table ({exc})") from exc


def remove_route(document: dict[str, Any], plugin_id: str, url: str) -> dict[str, Any] | None:
    """``document`` without the deployment at ``url`` of ``plugin_id`` (None when it had none).

    A plugin left with no deployment loses its route entirely (overrides included): they would
    point nowhere.
    """
    routes = dict(document.get("routes") or {})
    route = routes.get(plugin_id)
    if not isinstance(route, dict):
        return None
    deployments = [
        d for d in route.get("deployments") or [] if not (isinstance(d, dict) and d.get("url") == url)
    ]
    if len(deployments) == len(route.get("deployments") or []):
        return None
    if deployments:
        routes[plugin_id] = {**route, "deployments": deployments}
    else:
        del routes[plugin_id]
    return {**document, "routes": routes}


def _write_file(file: Path, doc: dict[str, Any]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    # Write to a sibling temp file and rename: a reader never sees half a table.
    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_dump(doc, file))
        Path(tmp).replace(file)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise RoutePublishError(f"{file}: cannot write the route table ({exc.strerror or exc})") from exc


def remove_from_file(path: str | os.PathLike[str], plugin_id: str, url: str) -> bool:
    """Remove ``plugin_id``'s deployment at ``url`` from the route file; True if it was there."""
    file = Path(path)
    doc = _load_file(file)
    changed = remove_route(doc, plugin_id, url) if doc is not None else None
    if changed is None:
        return False
    _write_file(file, changed)
    return True


def remove_from_ssm(ssm: SSMClient, name: str, plugin_id: str, url: str) -> bool:
    """Remove ``plugin_id``'s deployment at ``url`` from the SSM route table; True if it was there."""
    _found, doc = _load_ssm(ssm, name)
    changed = remove_route(doc, plugin_id, url) if isinstance(doc, dict) else None
    if changed is None:
        return False
    _write_ssm(ssm, name, changed)
    return True


def _load_ssm(ssm: SSMClient, name: str) -> tuple[bool, Any]:
    """Whether the SSM parameter ``name`` exists, and the JSON it holds (None when it does not)."""
    try:
        value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        return True, json.loads(value)
    except ssm.exceptions.ParameterNotFound:
        return False, None
    except json.JSONDecodeError as exc:
        raise RoutePublishError(f"SSM parameter {name}: value is not JSON") from exc


def _write_ssm(ssm: SSMClient, name: str, doc: dict[str, Any]) -> None:
    """Store ``doc`` as compact JSON, in the Advanced tier only when the Standard one is too small."""
    body = json.dumps(doc, separators=(",", ":"))
    tier: Literal["Standard", "Advanced"] = (
        "Standard" if len(body.encode()) <= SSM_STANDARD_LIMIT else "Advanced"
    )
    try:
        ssm.put_parameter(Name=name, Value=body, Type="String", Overwrite=True, Tier=tier)
    except Exception as exc:
        raise RoutePublishError(
            f"SSM parameter {name}: put_parameter failed ({error_code(exc) or exc})"
        ) from exc


def publish_to_file(
    path: str | os.PathLike[str], result: DeployResult, *, secret_env: str | None = None
) -> Path:
    """Merge the deploy into the route file at ``path`` (YAML unless it ends in ``.json``)."""
    file = Path(path)
    doc = merge_route(_load_file(file), result.plugin_id, deployment_entry(result, secret_env=secret_env))
    _write_file(file, doc)
    return file


def publish_to_ssm(
    ssm: SSMClient, name: str, result: DeployResult, *, secret_env: str | None = None
) -> dict[str, Any]:
    """Merge the deploy into the JSON route table held in the SSM String parameter ``name``."""
    found, current = _load_ssm(ssm, name)
    if found and not isinstance(current, dict):
        raise RoutePublishError(f"SSM parameter {name}: value is not a JSON object")
    doc = merge_route(current, result.plugin_id, deployment_entry(result, secret_env=secret_env))
    _write_ssm(ssm, name, doc)
    return doc
