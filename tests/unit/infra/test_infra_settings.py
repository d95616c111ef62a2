"""The function spec read from a build report, policy statements, route merging."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from dify_lambda.infra.access import desired_statements
from dify_lambda.infra.builder import artifact_from_report
from dify_lambda.infra.errors import BuildOutputError, RoutePublishError
from dify_lambda.infra.models import DeployedFunction, DeployResult
from dify_lambda.infra.routes import deployment_entry, merge_route, secret_env_name
from dify_lambda.packaging.build.report import REPORT_SCHEMA
from dify_lambda.packaging.spec import RUNTIME_ENVIRONMENT, FunctionSpec

SPEC = FunctionSpec("python3.13", "x86_64", 2048, 120, url_auth="NONE", environment={"A": "1"})


def report(**changes: Any) -> dict[str, Any]:
    """The deploy part of a build report, as ``BuildReport.to_dict`` writes it."""
    doc = {
        "schema": REPORT_SCHEMA,
        "plugin_id": "acme/tiny",
        "version": "0.0.1",
        "checksum": "ab" * 32,
        "providers": ["tiny"],
        "artifact": "artifact.zip",
        "function": dataclasses.asdict(SPEC),
        "sizes": {"zipped": 1},
    }
    return {**doc, **changes}


def test_the_deployer_reads_the_reports_function_spec() -> None:
    artifact = artifact_from_report(report(), Path("out"), "out/build-report.json")
    assert artifact.spec == SPEC
    assert (artifact.path, artifact.unique_identifier, artifact.providers) == (
        Path("out/artifact.zip"),
        "acme/tiny:0.0.1@" + "ab" * 32,
        ("tiny",),
    )


def test_a_spec_without_environment_gets_the_runtime_contract() -> None:
    function = {k: v for k, v in dataclasses.asdict(SPEC).items() if k != "environment"}
    spec = artifact_from_report(report(function=function), Path("o"), "r").spec
    assert spec.environment == RUNTIME_ENVIRONMENT
    assert spec.environment["AWS_LAMBDA_EXEC_WRAPPER"] == "/var/task/dify_lambda/handlers/exec_wrapper.sh"
    assert spec.handler == "dify_lambda.handlers.buffered.lambda_handler"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (report(schema=1), "r: not a report of this dify-lambda's build (report schema 2): rebuild with"),
        ({k: v for k, v in report().items() if k != "schema"}, "r: not a report of this dify-lambda's build"),
        (["not", "a", "report"], "r: not a report of this dify-lambda's build"),
        (
            report(function={**dataclasses.asdict(SPEC), "url_auth": "OPEN"}),
            "r: function.url_auth: Input should be",
        ),
        (report(plugin_id=""), "r: plugin_id: String should have at least 1 character"),
        (report(function=None), "r: function: Input should be"),
    ],
)
def test_an_old_foreign_or_invalid_report_is_refused_in_one_line(doc: Any, expected: str) -> None:
    with pytest.raises(BuildOutputError) as caught:
        artifact_from_report(doc, Path("o"), "r")
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)
    assert "OPEN" not in str(caught.value), "values are not echoed"


def test_none_auth_grants_the_public_pair() -> None:
    statements = desired_statements("NONE", ("ignored",))
    args = [s.add_permission_args() for s in statements]
    assert args == [
        {
            "StatementId": "dify-lambda-url-public",
            "Action": "lambda:InvokeFunctionUrl",
            "Principal": "*",
            "FunctionUrlAuthType": "NONE",
        },
        {
            "StatementId": "dify-lambda-invoke-public",
            "Action": "lambda:InvokeFunction",
            "Principal": "*",
            "InvokedViaFunctionUrl": True,
        },
    ]


def test_iam_auth_grants_both_actions_per_principal() -> None:
    principals = ("arn:aws:iam::111122223333:role/a", "444455556666")
    statements = desired_statements("AWS_IAM", principals)
    assert len(statements) == 4
    assert len({s.sid for s in statements}) == 4
    for principal in principals:
        mine = [s for s in statements if s.principal == principal]
        assert sorted(s.action for s in mine) == ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"]
        assert next(s for s in mine if s.action == "lambda:InvokeFunctionUrl").url_auth_type == "AWS_IAM"
    assert desired_statements("AWS_IAM", ()) == []


def result(auth: str = "AWS_IAM", url: str = "https://abc123.lambda-url.us-east-1.on.aws/") -> DeployResult:
    return DeployResult(
        status="created",
        function_name="dify-acme-tiny-0-0-1",
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:dify-acme-tiny-0-0-1",
        version="1",
        previous_version=None,
        url=url,
        url_auth=auth,  # type: ignore[arg-type]
        plugin_id="acme/tiny",
        unique_identifier="acme/tiny:0.0.1@" + "ab" * 32,
        checksum="ab" * 32,
        secret="s3cr3t",
    )


def test_deployment_entry_never_contains_the_secret() -> None:
    assert deployment_entry(result()) == {"url": result().url, "auth": "iam"}
    entry = deployment_entry(result("NONE"))
    assert entry == {
        "url": result().url,
        "auth": "secret",
        "secret_env": "DIFY_LAMBDA_SECRET_DIFY_ACME_TINY_0_0_1",
    }
    assert "s3cr3t" not in repr(entry)
    assert "s3cr3t" not in repr(result("NONE"))
    assert secret_env_name("dify-a-b") == "DIFY_LAMBDA_SECRET_DIFY_A_B"


def test_merge_replaces_default_deployments_and_keeps_overrides() -> None:
    override = {"deployments": [{"url": "https://pinned.lambda-url.eu-west-1.on.aws/", "auth": "iam"}]}
    existing = {
        "version": 1,
        "routes": {
            "acme/tiny": {
                "deployments": [{"url": "https://old.lambda-url.us-east-1.on.aws/", "auth": "iam"}],
                "tenants": {"t1": override},
            },
            "other/plugin": {
                "deployments": [{"url": "https://o.lambda-url.us-east-1.on.aws/", "auth": "iam"}]
            },
        },
    }
    merged = merge_route(existing, "acme/tiny", deployment_entry(result()))
    assert merged["routes"]["acme/tiny"]["deployments"] == [deployment_entry(result())]
    assert merged["routes"]["acme/tiny"]["tenants"] == {"t1": override}
    assert merged["routes"]["other/plugin"] == existing["routes"]["other/plugin"]
    assert existing["routes"]["acme/tiny"]["deployments"][0]["url"].startswith("https://old"), (
        "input not mutated"
    )
    assert merge_route(None, "acme/tiny", deployment_entry(result()))["version"] == 1


def test_merge_refuses_to_produce_an_invalid_table() -> None:
    with pytest.raises(RoutePublishError, match="invalid route table"):
        merge_route({"routes": {}, "unexpected": 1}, "acme/tiny", deployment_entry(result()))


def test_deployed_function_version_and_endpoint() -> None:
    fn = DeployedFunction(
        function_name="dify-x",
        function_arn="arn",
        plugin_id="acme/tiny",
        unique_identifier="acme/tiny:1.2.3@" + "ab" * 32,
        checksum="ab" * 32,
        providers=("tiny",),
        url_auth="NONE",
        alias_version="3",
        url="https://u.lambda-url.us-east-1.on.aws/",
        secret="sec",
    )
    assert fn.version == "1.2.3"
    assert fn.endpoint == "https://u.lambda-url.us-east-1.on.aws/sec"
    assert "sec'" not in repr(fn)
