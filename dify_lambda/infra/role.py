"""The minimal execution role: Lambda may assume it, and it may write its own logs. Nothing more.

The role is created and its policy attached as two calls; the executor removes a role it created
when the attach (or anything after it) fails, and :func:`role_state` lets the planner see a role
that exists without its policy so it is repaired instead of reused as is.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING

from dify_lambda.infra.aws import error_code
from dify_lambda.infra.errors import DeployError
from dify_lambda.infra.naming import role_name
from dify_lambda.infra.plan import RoleState
from dify_lambda.wire import TAG_MANAGED

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

__all__ = ["BASIC_EXECUTION_POLICY", "attach_policy", "create_role", "delete_role", "role_state"]

BASIC_EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def role_state(iam: IAMClient, function: str) -> RoleState:
    """Whether ``dify-lambda-<function>`` exists, carries the basic policy, and is tagged as ours."""
    name = role_name(function)
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        return RoleState(name=name)
    attached = iam.list_attached_role_policies(RoleName=name).get("AttachedPolicies") or []
    tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name).get("Tags") or []}
    return RoleState(
        name=name,
        arn=role["Arn"],
        has_policy=any(p.get("PolicyArn") == BASIC_EXECUTION_POLICY for p in attached),
        managed=tags.get(TAG_MANAGED) == "true",
    )


def create_role(iam: IAMClient, function: str) -> str:
    """Create ``dify-lambda-<function>`` (no policy yet); return its ARN."""
    name = role_name(function)
    try:
        return iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=_TRUST,
            Description=f"Execution role of the dify-lambda function {function}",
            Tags=[{"Key": TAG_MANAGED, "Value": "true"}],
        )["Role"]["Arn"]
    except Exception as exc:
        raise DeployError(f"could not create execution role {name} ({error_code(exc) or exc})") from exc


def attach_policy(iam: IAMClient, function: str) -> None:
    """Attach the basic execution policy (logs) to the managed role."""
    name = role_name(function)
    try:
        iam.attach_role_policy(RoleName=name, PolicyArn=BASIC_EXECUTION_POLICY)
    except Exception as exc:
        raise DeployError(
            f"could not attach the execution policy to role {name} ({error_code(exc) or type(exc).__name__})"
        ) from exc


def delete_role(iam: IAMClient, function: str) -> None:
    """Detach the basic policy and delete the role (cleanup, or ``rm``)."""
    name = role_name(function)
    with contextlib.suppress(iam.exceptions.NoSuchEntityException):
        iam.detach_role_policy(RoleName=name, PolicyArn=BASIC_EXECUTION_POLICY)
    with contextlib.suppress(iam.exceptions.NoSuchEntityException):
        iam.delete_role(RoleName=name)
