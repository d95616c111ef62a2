"""Finding the functions dify-lambda manages, by name or by tag."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from dify_lambda import wire
from dify_lambda.infra.models import DeployedFunction
from dify_lambda.infra.naming import FUNCTION_PREFIX
from dify_lambda.wire import (
    ALIAS_NAME,
    TAG_AUTH,
    TAG_CHECKSUM,
    TAG_MANAGED,
    TAG_PLUGIN_ID,
    TAG_PROVIDERS,
    TAG_UNIQUE_IDENTIFIER,
    split_providers,
)

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

__all__ = ["describe", "find_by_checksum", "list_deployed"]


def _from_config(lam: LambdaClient, config: Mapping[str, Any], tags: Mapping[str, str]) -> DeployedFunction:
    name = config["FunctionName"]
    try:
        alias_version: str | None = lam.get_alias(FunctionName=name, Name=ALIAS_NAME)["FunctionVersion"]
    except lam.exceptions.ResourceNotFoundException:
        alias_version = None
    try:
        url: str | None = lam.get_function_url_config(FunctionName=name, Qualifier=ALIAS_NAME)["FunctionUrl"]
    except lam.exceptions.ResourceNotFoundException:
        url = None
    variables = (config.get("Environment") or {}).get("Variables") or {}
    providers = tags.get(TAG_PROVIDERS, "")
    return DeployedFunction(
        function_name=name,
        function_arn=config["FunctionArn"],
        plugin_id=tags.get(TAG_PLUGIN_ID, ""),
        unique_identifier=tags.get(TAG_UNIQUE_IDENTIFIER, ""),
        checksum=tags.get(TAG_CHECKSUM, ""),
        providers=tuple(split_providers(providers)),
        url_auth=tags.get(TAG_AUTH, ""),
        alias_version=alias_version,
        url=url,
        secret=variables.get(wire.ENV_SECRET),
    )


def describe(lam: LambdaClient, name: str) -> DeployedFunction | None:
    """The managed function called ``name``, or None when absent or not managed by dify-lambda."""
    try:
        found = lam.get_function(FunctionName=name)
    except lam.exceptions.ResourceNotFoundException:
        return None
    tags = found.get("Tags") or {}
    if tags.get(TAG_MANAGED) != "true":
        return None
    return _from_config(lam, found["Configuration"], tags)


def _functions(lam: LambdaClient) -> Iterator[Mapping[str, Any]]:
    for page in lam.get_paginator("list_functions").paginate():
        yield from page.get("Functions", [])


def list_deployed(lam: LambdaClient) -> list[DeployedFunction]:
    """Every ``dify-*`` function tagged as managed, sorted by name."""
    out: list[DeployedFunction] = []
    for config in _functions(lam):
        if not config["FunctionName"].startswith(FUNCTION_PREFIX):
            continue  # outside the IAM policy's dify-* scope, and not ours
        tags = lam.list_tags(Resource=config["FunctionArn"]).get("Tags") or {}
        if tags.get(TAG_MANAGED) == "true":
            out.append(_from_config(lam, config, tags))
    return sorted(out, key=lambda f: f.function_name)


def find_by_checksum(lam: LambdaClient, checksum: str) -> DeployedFunction | None:
    """The first managed function whose checksum tag matches (a full scan; prefer :func:`describe`)."""
    for function in list_deployed(lam):
        if function.checksum == checksum:
            return function
    return None
