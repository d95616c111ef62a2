"""Route publication to a file and to SSM, read back by the router's own loaders and tag discovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from infra_helpers import make_artifact

from dify_lambda.infra.aws import AwsClients
from dify_lambda.infra.deployer import Deployer
from dify_lambda.infra.errors import RoutePublishError
from dify_lambda.infra.models import DeployOptions
from dify_lambda.infra.routes import publish_to_file, publish_to_ssm, secret_env_name
from dify_lambda.router.routes import parse_route_table
from dify_lambda.router.sources import load_route_file, routes_from_tags


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_file_publication_is_read_by_the_router(deployer: Deployer, tmp_path: Path, suffix: str) -> None:
    result = deployer.deploy(make_artifact(tmp_path / "a"))
    path = tmp_path / "conf" / f"routes{suffix}"
    publish_to_file(path, result)
    table = load_route_file(path)
    [deployment] = table.deployments_for("acme/tiny")
    assert (deployment.url, deployment.auth, deployment.region) == (result.url, "iam", "us-east-1")
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "no temp file left behind"


def test_file_merge_keeps_other_plugins_and_overrides(deployer: Deployer, tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    pinned = {"deployments": [{"url": "https://pinned.lambda-url.eu-west-1.on.aws/", "auth": "iam"}]}
    path.write_text(
        yaml.safe_dump(
            {
                "routes": {
                    "acme/tiny": {
                        "deployments": [{"url": "https://old.lambda-url.us-east-1.on.aws/"}],
                        "providers": {"tiny": pinned},
                    },
                    "someone/else": {"deployments": [{"url": "https://e.lambda-url.us-east-1.on.aws/"}]},
                }
            }
        )
    )
    result = deployer.deploy(make_artifact(tmp_path / "a"), DeployOptions(url_auth="NONE"))
    publish_to_file(path, result)
    table = load_route_file(path)
    [deployment] = table.deployments_for("acme/tiny")
    assert deployment.url == result.url
    assert (deployment.auth, deployment.secret_env) == ("secret", secret_env_name(result.function_name))
    assert (
        table.deployments_for("acme/tiny", provider="tiny")[0].url
        == "https://pinned.lambda-url.eu-west-1.on.aws/"
    )
    assert table.deployments_for("someone/else")[0].url == "https://e.lambda-url.us-east-1.on.aws/"
    assert result.secret and result.secret not in path.read_text(), "the secret never lands in the table"


def test_broken_existing_file_is_not_overwritten(deployer: Deployer, tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("routes: [unclosed\n")
    result = deployer.deploy(make_artifact(tmp_path / "a"))
    with pytest.raises(RoutePublishError, match=r"routes\.yaml"):
        publish_to_file(path, result)
    assert path.read_text() == "routes: [unclosed\n"


def test_ssm_publication_creates_and_merges(aws: AwsClients, deployer: Deployer, tmp_path: Path) -> None:
    first = deployer.deploy(make_artifact(tmp_path / "a"))
    publish_to_ssm(aws.ssm, "/dify-lambda/routes", first)
    second = deployer.deploy(make_artifact(tmp_path / "b", plugin_id="acme/other", checksum="cd" * 32))
    publish_to_ssm(aws.ssm, "/dify-lambda/routes", second)
    parameter = aws.ssm.get_parameter(Name="/dify-lambda/routes")["Parameter"]
    assert parameter["Type"] == "String"
    table = parse_route_table(json.loads(parameter["Value"]), source="ssm")
    assert table.plugin_ids == ("acme/other", "acme/tiny")
    assert table.deployments_for("acme/other")[0].url == second.url


def test_ssm_parameter_that_is_not_json_is_an_error(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    aws.ssm.put_parameter(Name="/r", Value="not json", Type="String")
    result = deployer.deploy(make_artifact(tmp_path / "a"))
    with pytest.raises(RoutePublishError, match="SSM parameter /r: value is not JSON"):
        publish_to_ssm(aws.ssm, "/r", result)


def test_router_tag_discovery_finds_deployed_functions(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    iam_fn = deployer.deploy(make_artifact(tmp_path / "a"))
    none_fn = deployer.deploy(
        make_artifact(tmp_path / "b", plugin_id="acme/other", checksum="cd" * 32, providers=("p1", "p2")),
        DeployOptions(url_auth="NONE"),
    )
    table = routes_from_tags(aws.lambda_, secret_env="ROUTER_SECRET")
    assert table.plugin_ids == ("acme/other", "acme/tiny")
    [tiny] = table.deployments_for("acme/tiny")
    assert (tiny.url, tiny.auth) == (iam_fn.url, "iam")
    [other] = table.deployments_for("acme/other", provider="p2")
    assert (other.url, other.auth) == (none_fn.url, "secret")
