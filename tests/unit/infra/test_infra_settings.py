"""Function settings read from the builder's template, policy statements, route merging."""

from __future__ import annotations

from typing import Any

import pytest

from dify_lambda.infra.access import desired_statements
from dify_lambda.infra.artifact import DEFAULT_ENVIRONMENT, FunctionSettings, settings_from_template
from dify_lambda.infra.errors import RoutePublishError
from dify_lambda.infra.models import DeployedFunction, DeployResult
from dify_lambda.infra.routes import deployment_entry, merge_route, secret_env_name


def template(props: dict[str, Any], globals_fn: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": props}}}
    if globals_fn is not None:
        doc["Globals"] = {"Function": globals_fn}
    return doc


def test_settings_come_from_the_function_resource() -> None:
    settings = settings_from_template(
        template(
            {
                "Runtime": "python3.13",
                "Architectures": ["x86_64"],
                "MemorySize": 2048,
                "Timeout": 120,
                "Handler": "h.h",
                "Environment": {"Variables": {"A": "1", "N": 5, "URL_AUTH": {"Ref": "AuthType"}}},
            }
        )
    )
    assert (
        settings.runtime,
        settings.architecture,
        settings.memory_mb,
        settings.timeout_s,
        settings.handler,
    ) == (
        "python3.13",
        "x86_64",
        2048,
        120,
        "h.h",
    )
    assert settings.environment["A"] == "1"
    assert settings.environment["N"] == "5"
    assert "URL_AUTH" not in settings.environment, "intrinsics are left to the deployer"
    for key, value in DEFAULT_ENVIRONMENT.items():
        assert settings.environment[key] == value


def test_globals_apply_and_function_wins() -> None:
    settings = settings_from_template(
        template(
            {"MemorySize": 512}, {"MemorySize": 256, "Timeout": 30, "Environment": {"Variables": {"G": "g"}}}
        )
    )
    assert (settings.memory_mb, settings.timeout_s) == (512, 30)
    assert settings.environment["G"] == "g"


def test_empty_template_gives_the_runtime_contract_defaults() -> None:
    settings = settings_from_template({})
    default = FunctionSettings()
    assert settings == default
    assert settings.handler == "dify_lambda.handlers.buffered.lambda_handler"
    assert settings.environment["AWS_LAMBDA_EXEC_WRAPPER"] == "/var/task/dify_lambda/handlers/exec_wrapper.sh"


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
