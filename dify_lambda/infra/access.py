"""Function URL and resource-policy statements on the ``live`` alias.

Since October 2025 a function URL caller needs both ``lambda:InvokeFunctionUrl`` and
``lambda:InvokeFunction`` (docs/security.md#function-url-permissions). For ``NONE`` that is the
public pair (the second statement limited to calls made through the URL); for ``AWS_IAM`` each
given principal gets both.
Statements dify-lambda manages carry the ``dify-lambda-`` Sid prefix; stale ones are removed so
switching from ``NONE`` to ``AWS_IAM`` really closes the public access.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dify_lambda.infra.artifact import Progress
from dify_lambda.infra.models import UrlAuth
from dify_lambda.packaging.spec import INVOKE_MODE
from dify_lambda.wire import ALIAS_NAME

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

__all__ = ["SID_PREFIX", "Statement", "desired_statements", "ensure_permissions", "ensure_url"]

SID_PREFIX = "dify-lambda-"


@dataclass(frozen=True, slots=True)
class Statement:
    sid: str
    action: str
    principal: str
    url_auth_type: str | None = None
    via_url: bool = False

    def add_permission_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"StatementId": self.sid, "Action": self.action, "Principal": self.principal}
        if self.url_auth_type:
            args["FunctionUrlAuthType"] = self.url_auth_type
        if self.via_url:
            args["InvokedViaFunctionUrl"] = True
        return args


def desired_statements(auth: UrlAuth, principals: tuple[str, ...]) -> list[Statement]:
    """The statements a function with this auth type and these callers must carry."""
    if auth == "NONE":
        return [
            Statement(f"{SID_PREFIX}url-public", "lambda:InvokeFunctionUrl", "*", url_auth_type="NONE"),
            Statement(f"{SID_PREFIX}invoke-public", "lambda:InvokeFunction", "*", via_url=True),
        ]
    out: list[Statement] = []
    for principal in principals:
        tag = hashlib.sha256(principal.encode()).hexdigest()[:12]
        out.append(
            Statement(
                f"{SID_PREFIX}url-{tag}", "lambda:InvokeFunctionUrl", principal, url_auth_type="AWS_IAM"
            )
        )
        out.append(Statement(f"{SID_PREFIX}invoke-{tag}", "lambda:InvokeFunction", principal))
    return out


def ensure_url(lam: LambdaClient, name: str, auth: UrlAuth, progress: Progress) -> str:
    """Create or update the alias's function URL (streaming); return the URL."""
    try:
        current = lam.get_function_url_config(FunctionName=name, Qualifier=ALIAS_NAME)
    except lam.exceptions.ResourceNotFoundException:
        created = lam.create_function_url_config(
            FunctionName=name, Qualifier=ALIAS_NAME, AuthType=auth, InvokeMode=INVOKE_MODE
        )
        progress(f"created function URL ({auth}) on alias {ALIAS_NAME}")
        return created["FunctionUrl"]
    if current["AuthType"] != auth or current.get("InvokeMode") != INVOKE_MODE:
        updated = lam.update_function_url_config(
            FunctionName=name, Qualifier=ALIAS_NAME, AuthType=auth, InvokeMode=INVOKE_MODE
        )
        progress(f"updated function URL to {auth}")
        return updated["FunctionUrl"]
    return current["FunctionUrl"]


def current_sids(lam: LambdaClient, name: str) -> set[str]:
    """Sids of the dify-lambda statements in the alias's resource policy."""
    try:
        policy = json.loads(lam.get_policy(FunctionName=name, Qualifier=ALIAS_NAME)["Policy"])
    except lam.exceptions.ResourceNotFoundException:
        return set()
    statements = policy.get("Statement") or []
    return {s["Sid"] for s in statements if str(s.get("Sid", "")).startswith(SID_PREFIX)}


def ensure_permissions(
    lam: LambdaClient, name: str, auth: UrlAuth, principals: tuple[str, ...], progress: Progress
) -> bool:
    """Make the alias policy hold exactly the desired dify-lambda statements; True if it changed."""
    wanted = {s.sid: s for s in desired_statements(auth, principals)}
    present = current_sids(lam, name)
    changed = False
    for sid in sorted(present - wanted.keys()):
        lam.remove_permission(FunctionName=name, StatementId=sid, Qualifier=ALIAS_NAME)
        progress(f"removed permission {sid}")
        changed = True
    for sid, statement in wanted.items():
        if sid in present:
            continue
        try:
            lam.add_permission(FunctionName=name, Qualifier=ALIAS_NAME, **statement.add_permission_args())
        except lam.exceptions.ResourceConflictException:
            continue  # added concurrently by another deploy of the same function
        progress(f"granted {statement.action} to {statement.principal}")
        changed = True
    return changed
