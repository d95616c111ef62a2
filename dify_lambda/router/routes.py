"""The route table: which function URL(s) serve which plugin, provider, model or tenant.

A table maps plugin ids (``org/plugin``, Dify's ``X-Plugin-ID``) to deployments, with optional
overrides. Resolution order for one call: ``tenants[tenant_id]`` of the plugin route, then
``models["<provider>/<model>"]``, then ``providers[provider]``, then the route's own deployments.

Example (YAML; JSON works too)::

    routes:
      langgenius/openai:
        deployments:
          - url: https://abc123.lambda-url.us-east-1.on.aws/
            auth: iam                  # iam | none | secret; region comes from the URL host
          - url: https://def456.lambda-url.eu-west-1.on.aws/
            weight: 2
        models:
          openai/gpt-4o:
            deployments: [{url: "https://...", auth: secret, secret_env: OPENAI_FN_SECRET}]
        tenants:
          9f3c...:                     # pin one tenant to its own deployment
            deployments: [{url: "https://...", auth: none}]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from dify_lambda.router.errors import InvalidRouteTableError, NoRouteError

__all__ = [
    "Deployment",
    "Route",
    "RouteTable",
    "RouteTarget",
    "format_validation_error",
    "parse_route_table",
    "region_from_url",
]

AuthMode = Literal["iam", "none", "secret"]
PLUGIN_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_URL_HOST_RE = re.compile(r"^[a-z0-9]+\.lambda-url\.(?P<region>[a-z0-9-]+)\.on\.aws$")
#: Mapping fields whose next location element is a user key, shown as ``['key']``.
_KEYED_FIELDS = frozenset({"routes", "providers", "models", "tenants"})


def region_from_url(url: str) -> str | None:
    """The region of a function URL host ``<id>.lambda-url.<region>.on.aws``, else None."""
    host = (urlsplit(url).hostname or "").lower()
    match = _URL_HOST_RE.match(host)
    return match.group("region") if match else None


class Deployment(BaseModel):
    """One function URL serving a route."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    region: str | None = None
    auth: AuthMode = "iam"
    #: Name of the environment variable holding the shared secret (``auth: secret``).
    secret_env: str | None = None
    #: The shared secret itself (``auth: secret``); never logged or shown in repr.
    secret: SecretStr | None = None
    weight: float = Field(default=1.0, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(
                "must be an http(s) URL with a host, e.g. https://<id>.lambda-url.<region>.on.aws/"
            )
        if parts.query or parts.fragment:
            raise ValueError("must not have a query string or fragment")
        return value

    @model_validator(mode="after")
    def _check_auth(self) -> Deployment:
        if self.region is None:
            object.__setattr__(self, "region", region_from_url(self.url))
        if self.auth == "iam" and not self.region:
            raise ValueError(
                "auth 'iam' needs 'region' (the URL host is not <id>.lambda-url.<region>.on.aws)"
            )
        if self.auth == "secret":
            if (self.secret_env is None) == (self.secret is None):
                raise ValueError("auth 'secret' needs exactly one of 'secret_env' or 'secret'")
        elif self.secret_env is not None or self.secret is not None:
            raise ValueError(f"'secret_env'/'secret' are only valid with auth 'secret', not {self.auth!r}")
        return self

    @property
    def key(self) -> str:
        """Identity of the deployment for cooldowns and logs (the URL, which is not secret)."""
        return self.url


class RouteTarget(BaseModel):
    """A set of deployments (an override at provider, model or tenant level)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deployments: tuple[Deployment, ...] = Field(min_length=1)


class Route(RouteTarget):
    """The route of one plugin id, with optional overrides."""

    providers: dict[str, RouteTarget] = Field(default_factory=dict)
    #: Keyed ``"<provider>/<model>"``.
    models: dict[str, RouteTarget] = Field(default_factory=dict)
    tenants: dict[str, RouteTarget] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _check_model_keys(cls, value: dict[str, RouteTarget]) -> dict[str, RouteTarget]:
        for key in value:
            provider, sep, model = key.partition("/")
            if not sep or not provider or not model:
                raise ValueError(f"key {key!r} must be '<provider>/<model>'")
        return value

    def select(
        self, *, provider: str | None = None, model: str | None = None, tenant_id: str | None = None
    ) -> tuple[Deployment, ...]:
        if tenant_id is not None and tenant_id in self.tenants:
            return self.tenants[tenant_id].deployments
        if provider and model and f"{provider}/{model}" in self.models:
            return self.models[f"{provider}/{model}"].deployments
        if provider and provider in self.providers:
            return self.providers[provider].deployments
        return self.deployments


class RouteTable(BaseModel):
    """Routes keyed by plugin id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    routes: dict[str, Route] = Field(default_factory=dict)

    @field_validator("routes")
    @classmethod
    def _check_plugin_ids(cls, value: dict[str, Route]) -> dict[str, Route]:
        for key in value:
            if not PLUGIN_ID_RE.match(key):
                raise ValueError(f"key {key!r} is not a plugin id '<org>/<plugin>'")
        return value

    @property
    def plugin_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.routes))

    def deployments_for(
        self,
        plugin_id: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        tenant_id: str | None = None,
    ) -> tuple[Deployment, ...]:
        route = self.routes.get(plugin_id)
        if route is None:
            known = ", ".join(self.plugin_ids) or "none"
            raise NoRouteError(f"no route for plugin id {plugin_id!r} (routes: {known})")
        return route.select(provider=provider, model=model, tenant_id=tenant_id)


def _format_loc(loc: Sequence[int | str]) -> str:
    out = ""
    keyed = False
    for part in loc:
        if isinstance(part, int) or keyed:
            out += f"[{part!r}]"
            keyed = False
        else:
            out += f".{part}" if out else str(part)
            keyed = part in _KEYED_FIELDS
    return out


def format_validation_error(source: str, error: ValidationError) -> str:
    """One ``<source>: <location>: <message>`` line per problem.

    Example: ``routes.yaml: routes['a/b'].deployments[1].url: ...``.
    """
    lines = []
    items = error.errors(include_url=False, include_input=False)
    for item in items:
        loc = list(item["loc"])
        # A tuple whose items failed is also reported as too short: keep only the precise errors.
        if item["type"] == "too_short" and any(
            len(o["loc"]) > len(loc) and list(o["loc"][: len(loc)]) == loc for o in items
        ):
            continue
        where = _format_loc(loc)
        msg = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{source}: {where}: {msg}" if where else f"{source}: {msg}")
    return "\n".join(lines)


def parse_route_table(raw: Any, *, source: str) -> RouteTable:
    """Validate a decoded route table; raises :class:`InvalidRouteTableError` naming the entry."""
    if not isinstance(raw, Mapping):
        raise InvalidRouteTableError(f"{source}: top level must be a mapping with a 'routes' key")
    try:
        return RouteTable.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRouteTableError(format_validation_error(source, exc)) from None
