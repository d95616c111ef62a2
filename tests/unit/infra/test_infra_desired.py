"""What the deployer wants, from an artifact and options (no AWS), and route removal."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dify_lambda.infra.artifact import BuiltArtifact
from dify_lambda.infra.deployer import desired_environment
from dify_lambda.infra.models import DeployOptions
from dify_lambda.infra.routes import remove_route
from dify_lambda.packaging.spec import FunctionSpec

ARTIFACT = BuiltArtifact(
    path=Path("never-read.zip"),
    plugin_id="acme/tiny",
    version="0.0.1",
    checksum="ab" * 32,
    providers=("tiny",),
    spec=FunctionSpec("python3.12", "arm64", 512, 900, environment={"INSTALL_METHOD": "serverless"}),
)


def new_secret() -> str:
    return "fresh-secret"


def test_iam_auth_has_no_path_secret_even_if_one_was_left() -> None:
    env = desired_environment(ARTIFACT, DeployOptions(), {"DIFY_LAMBDA_SECRET": "old"}, new_secret)
    assert env == {"INSTALL_METHOD": "serverless", "DIFY_LAMBDA_URL_AUTH": "AWS_IAM"}


def test_none_auth_keeps_the_current_secret_or_makes_one() -> None:
    options = DeployOptions(url_auth="NONE")
    assert (
        desired_environment(ARTIFACT, options, {"DIFY_LAMBDA_SECRET": "old"}, new_secret)[
            "DIFY_LAMBDA_SECRET"
        ]
        == "old"
    )
    assert desired_environment(ARTIFACT, options, {}, new_secret)["DIFY_LAMBDA_SECRET"] == "fresh-secret"


def test_rotation_replaces_the_secret() -> None:
    options = DeployOptions(url_auth="NONE", rotate_secret=True)
    env = desired_environment(ARTIFACT, options, {"DIFY_LAMBDA_SECRET": "old"}, new_secret)
    assert env["DIFY_LAMBDA_SECRET"] == "fresh-secret"


def test_a_secret_reference_means_no_generated_secret() -> None:
    options = DeployOptions(
        url_auth="NONE", environment={"DIFY_LAMBDA_SECRET_ARN": "arn:aws:secretsmanager:x"}
    )
    env = desired_environment(ARTIFACT, options, {}, new_secret)
    assert "DIFY_LAMBDA_SECRET" not in env


def test_the_builds_url_auth_applies_unless_the_options_name_one() -> None:
    built_open = dataclasses.replace(ARTIFACT, spec=dataclasses.replace(ARTIFACT.spec, url_auth="NONE"))
    env = desired_environment(built_open, DeployOptions(), {}, new_secret)
    assert (env["DIFY_LAMBDA_URL_AUTH"], env["DIFY_LAMBDA_SECRET"]) == ("NONE", "fresh-secret")
    env = desired_environment(built_open, DeployOptions(url_auth="AWS_IAM"), {}, new_secret)
    assert env == {"INSTALL_METHOD": "serverless", "DIFY_LAMBDA_URL_AUTH": "AWS_IAM"}


def test_remove_route_drops_only_that_deployment_then_the_route() -> None:
    doc = {
        "version": 1,
        "routes": {
            "acme/tiny": {"deployments": [{"url": "https://a/"}, {"url": "https://b/"}], "models": {}},
            "acme/other": {"deployments": [{"url": "https://c/"}]},
        },
    }
    first = remove_route(doc, "acme/tiny", "https://a/")
    assert first is not None
    assert first["routes"]["acme/tiny"] == {"deployments": [{"url": "https://b/"}], "models": {}}
    second = remove_route(first, "acme/tiny", "https://b/")
    assert second is not None
    assert set(second["routes"]) == {"acme/other"}
    assert remove_route(second, "acme/tiny", "https://b/") is None
    assert remove_route(doc, "acme/other", "https://nowhere/") is None
