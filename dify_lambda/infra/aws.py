"""boto3 clients for the deployer, created in one place so tests can inject their own."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dify_lambda.infra.errors import RegionError

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

__all__ = ["AwsClients", "error_code", "resolve_region"]


def resolve_region(region: str | None) -> str:
    """The region from the argument, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``."""
    found = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not found:
        raise RegionError("no AWS region: pass --region or set AWS_REGION")
    return found


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (empty for anything else)."""
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


@dataclass(frozen=True, slots=True)
class AwsClients:
    """The clients the deployer and route publisher use, all for one region."""

    region: str
    lambda_: LambdaClient
    iam: IAMClient
    s3: S3Client
    ssm: SSMClient
    sts: STSClient

    @classmethod
    def create(cls, region: str | None = None, *, profile: str | None = None) -> AwsClients:
        """Clients from the default credential chain (or ``profile``) in the resolved region."""
        import boto3

        name = resolve_region(region)
        session = boto3.session.Session(region_name=name, profile_name=profile)
        return cls(
            region=name,
            lambda_=session.client("lambda"),
            iam=session.client("iam"),
            s3=session.client("s3"),
            ssm=session.client("ssm"),
            sts=session.client("sts"),
        )
