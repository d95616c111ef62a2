"""Getting the artifact to Lambda: inline up to 50 MB, through S3 above that."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dify_lambda.infra.artifact import BuiltArtifact, Progress
from dify_lambda.infra.aws import error_code
from dify_lambda.infra.errors import DeployError
from dify_lambda.packaging.build import DIRECT_UPLOAD_LIMIT
from dify_lambda.wire import MIB

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts import STSClient

__all__ = ["DIRECT_UPLOAD_LIMIT", "CodeSource", "default_bucket_name", "discard_code", "prepare_code"]


@dataclass(frozen=True, slots=True)
class CodeSource:
    """Where Lambda reads the code from for one deploy."""

    zip_bytes: bytes | None = None
    bucket: str | None = None
    key: str | None = None

    def lambda_args(self) -> dict[str, Any]:
        """The ``Code``-style arguments for ``create_function`` / ``update_function_code``."""
        if self.zip_bytes is not None:
            return {"ZipFile": self.zip_bytes}
        return {"S3Bucket": self.bucket, "S3Key": self.key}


def default_bucket_name(sts: STSClient, region: str) -> str:
    """``dify-lambda-artifacts-<account>-<region>``: one per account and region, deterministic."""
    account = sts.get_caller_identity()["Account"]
    return f"dify-lambda-artifacts-{account}-{region}"


def prepare_code(
    s3: S3Client,
    sts: STSClient,
    artifact: BuiltArtifact,
    function: str,
    *,
    region: str,
    bucket: str | None,
    create_bucket: bool,
    limit: int = DIRECT_UPLOAD_LIMIT,
    progress: Progress,
) -> CodeSource:
    """Read the zip inline when small enough, else upload it to S3 (creating the bucket if allowed)."""
    size = artifact.size
    if size <= limit:
        return CodeSource(zip_bytes=artifact.path.read_bytes())
    name = bucket or default_bucket_name(sts, region)
    key = f"artifacts/{function}/{artifact.checksum}.zip"
    progress(f"artifact is {size / MIB:.1f} MiB (over {limit // MIB} MiB): uploading to s3://{name}/{key}")
    _ensure_bucket(s3, name, region=region, create=create_bucket)
    try:
        s3.upload_file(str(artifact.path), name, key)
    except Exception as exc:
        raise DeployError(f"could not upload the artifact to s3://{name}/{key} ({_code(exc)})") from exc
    return CodeSource(bucket=name, key=key)


def discard_code(s3: S3Client, source: CodeSource) -> None:
    """Delete the uploaded object: Lambda keeps its own copy once the code is deployed."""
    if source.bucket and source.key:
        # Best effort: a leftover object only costs storage.
        with contextlib.suppress(Exception):
            s3.delete_object(Bucket=source.bucket, Key=source.key)


def _ensure_bucket(s3: S3Client, name: str, *, region: str, create: bool) -> None:
    try:
        s3.head_bucket(Bucket=name)
        return
    except Exception as exc:
        if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise DeployError(f"cannot use bucket {name} ({_code(exc)})") from exc
    if not create:
        raise DeployError(f"bucket {name} does not exist (pass an existing --bucket or allow creating it)")
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
    except Exception as exc:
        raise DeployError(f"could not create bucket {name} ({_code(exc)})") from exc


def _code(exc: BaseException) -> str:
    return error_code(exc) or type(exc).__name__
