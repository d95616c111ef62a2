"""Finding the functions dify-lambda manages, by name or by tag."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from dify_lambda import wire
from dify_lambda.infra.models import DeployedFunction
from dify_lambda.infra.naming import FUNCTION_PREFIX
from dify_lambda.wire import ALIAS_NAME, TaggedFunction, read_identity_tags

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

__all__ = ["describe", "find_by_checksum", "list_deployed"]


def _from_config(lam: LambdaClient, config: Mapping[str, Any], tagged: TaggedFunction) -> DeployedFunction:
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
    return DeployedFunction(
        function_name=name,
        function_arn=config["FunctionArn"],
        plugin_id=tagged.plugin_id,
        unique_identifier=tagged.unique_identifier,
        checksum=tagged.checksum,
        providers=tagged.providers,
        url_auth=tagged.auth,
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
    tagged = read_identity_tags(found.get("Tags") or {})
    return None if tagged is None else _from_config(lam, found["Configuration"], tagged)


def _functions(lam: LambdaClient) -> Iterator[Mapping[str, Any]]:
    for page in lam.get_paginator("list_functions").paginate():
        yield from page.get("Functions", [])


def list_deployed(lam: LambdaClient) -> list[DeployedFunction]:
    """Every ``dify-*`` function tagged as managed, sorted by name."""
    out: list[DeployedFunction] = []
    for config in _functions(lam):
        if not config["FunctionName"].startswith(FUNCTION_PREFIX):
            continue  # outside the IAM policy's dify-* scope, and not ours
        tagged = read_identity_tags(lam.list_tags(Resource=config["FunctionArn"]).get("Tags") or {})
        if tagged is not None:
            out.append(_from_config(lam, config, tagged))
    return sorted(out, key=lambda f: f.function_name)


def find_by_checksum(lam: LambdaClient, checksum: str) -> DeployedFunction | None:
    """The first managed function whose checksum tag matches (a full scan; prefer :func:`describe`)."""
    for function in list_deployed(lam):
        if function.checksum == checksum:
            return function
    return None
