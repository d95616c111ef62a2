"""Reading what exists for one function name into a :class:`~dify_lambda.infra.plan.RemoteState`.

Read-only: ``deploy --dry-run`` runs this and the planner, and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dify_lambda.infra import access
from dify_lambda.infra.naming import role_name
from dify_lambda.infra.plan import FunctionConfig, RemoteState, RoleState, UrlState, VersionState
from dify_lambda.infra.role import role_state
from dify_lambda.wire import ALIAS_NAME

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient

__all__ = ["observe", "version_state"]


def version_state(cfg: Any) -> VersionState:
    """One entry of ``list_versions_by_function`` (or a function configuration)."""
    return VersionState(
        version=str(cfg.get("Version", "$LATEST")),
        code_sha256=str(cfg.get("CodeSha256", "")),
        config=FunctionConfig.from_lambda(cfg),
        role=cfg.get("Role"),
    )


def observe(lam: LambdaClient, iam: IAMClient, name: str, *, check_role: bool = True) -> RemoteState:
    """The function ``name`` as it is now: ``$LATEST``, published versions, alias, URL, policy, role.

    ``check_role=False`` skips IAM entirely (an explicit ``--role-arn``: the deployer may lack IAM
    read permissions, and the managed role does not matter then).
    """
    role = role_state(iam, name) if check_role else RoleState(name=role_name(name))
    try:
        found = lam.get_function(FunctionName=name)
    except lam.exceptions.ResourceNotFoundException:
        return RemoteState(name=name, role=role)
    cfg = found["Configuration"]
    published: list[VersionState] = []
    for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=name):
        published.extend(version_state(v) for v in page.get("Versions", []) if v["Version"].isdigit())
    try:
        alias: str | None = lam.get_alias(FunctionName=name, Name=ALIAS_NAME)["FunctionVersion"]
    except lam.exceptions.ResourceNotFoundException:
        alias = None
    url: UrlState | None = None
    sids: set[str] = set()
    if alias is not None:
        try:
            u = lam.get_function_url_config(FunctionName=name, Qualifier=ALIAS_NAME)
            url = UrlState(url=u["FunctionUrl"], auth=u["AuthType"], invoke_mode=u.get("InvokeMode"))
        except lam.exceptions.ResourceNotFoundException:
            url = None
        sids = access.current_sids(lam, name)
    return RemoteState(
        name=name,
        role=role,
        latest=version_state({**cfg, "Version": "$LATEST"}),
        function_arn=cfg["FunctionArn"],
        tags=dict(found.get("Tags") or {}),
        versions=tuple(published),
        alias_version=alias,
        url=url,
        sids=frozenset(sids),
    )
