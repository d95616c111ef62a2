"""dify_lambda.infra: deploy plugin functions with boto3, publish routes, run the serverless connector.

Examples
--------
>>> from dify_lambda.infra import AwsClients, Deployer, DeployOptions, load_build_output
>>> deployer = Deployer(AwsClients.create("us-east-1"))  # doctest: +SKIP
>>> artifact = load_build_output(Path("out/mockgpt"))  # doctest: +SKIP
>>> deployer.deploy(artifact, DeployOptions(principals=(router_role_arn,)))  # doctest: +SKIP
"""

from __future__ import annotations

from dify_lambda.infra.artifact import BuiltArtifact
from dify_lambda.infra.aws import AwsClients
from dify_lambda.infra.builder import BuildRequest, load_build_output, packaging_builder
from dify_lambda.infra.deployer import Deployer
from dify_lambda.infra.models import DeployedFunction, DeployOptions, DeployResult, RollbackResult
from dify_lambda.infra.routes import publish_to_file, publish_to_ssm

__all__ = [
    "AwsClients",
    "BuildRequest",
    "BuiltArtifact",
    "DeployOptions",
    "DeployResult",
    "DeployedFunction",
    "Deployer",
    "RollbackResult",
    "load_build_output",
    "packaging_builder",
    "publish_to_file",
    "publish_to_ssm",
]
