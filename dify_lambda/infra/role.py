"""The minimal execution role: Lambda may assume it, and it may write its own logs. Nothing more."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING

from dify_lambda.infra.aws import error_code
from dify_lambda.infra.errors import DeployError
from dify_lambda.infra.naming import role_name
from dify_lambda.wire import TAG_MANAGED

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

__all__ = ["BASIC_EXECUTION_POLICY", "delete_role", "ensure_role"]

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


def ensure_role(iam: IAMClient, function: str) -> tuple[str, bool]:
    """Return ``(role ARN, created)`` for ``dify-lambda-<function>``, creating it when missing."""
    name = role_name(function)
    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"], False
    except iam.exceptions.NoSuchEntityException:
        pass
    try:
        arn = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=_TRUST,
            Description=f"Execution role of the dify-lambda function {function}",
            Tags=[{"Key": TAG_MANAGED, "Value": "true"}],
        )["Role"]["Arn"]
        iam.attach_role_policy(RoleName=name, PolicyArn=BASIC_EXECUTION_POLICY)
    except Exception as exc:
        raise DeployError(f"could not create execution role {name} ({error_code(exc) or exc})") from exc
    return arn, True


def delete_role(iam: IAMClient, function: str) -> None:
    """Detach the basic policy and delete the role (cleanup after a failed first deploy)."""
    name = role_name(function)
    with contextlib.suppress(iam.exceptions.NoSuchEntityException):
        iam.detach_role_policy(RoleName=name, PolicyArn=BASIC_EXECUTION_POLICY)
    with contextlib.suppress(iam.exceptions.NoSuchEntityException):
        iam.delete_role(RoleName=name)
