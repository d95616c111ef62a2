"""Shared-secret sources against moto (Secrets Manager, SSM) and the secret checks end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from moto import mock_aws
from support.catalog import PLUGINS_DIR
from support.handler_proc import running_handler

from dify_lambda import wire
from dify_lambda.handlers.config import HandlerConfig
from dify_lambda.handlers.errors import SecretUnavailableError
from dify_lambda.handlers.secrets import ParameterSecret, secret_from_config

SECRET = "s3cr3t-Path_Token.42"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def none_config(**env: str) -> HandlerConfig:
    return HandlerConfig.from_env({"DIFY_LAMBDA_URL_AUTH": "NONE", **env}, cwd=Path("/p"))


def test_secrets_manager_through_powertools(aws: None) -> None:
    arn = boto3.client("secretsmanager").create_secret(Name="dify/plugin", SecretString=SECRET)["ARN"]
    source = secret_from_config(none_config(DIFY_LAMBDA_SECRET_ARN=arn))
    assert source is not None
    assert source.current() == SECRET


def test_ssm_secure_string_through_powertools(aws: None) -> None:
    boto3.client("ssm").put_parameter(Name="/dify/plugin/secret", Value=SECRET, Type="SecureString")
    source = secret_from_config(none_config(DIFY_LAMBDA_SECRET_PARAMETER="/dify/plugin/secret"))
    assert source is not None
    assert source.current() == SECRET


def test_rotation_is_picked_up_after_max_age(aws: None) -> None:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    client = boto3.client("secretsmanager")
    client.create_secret(Name="rotating", SecretString="first")
    cached = ParameterSecret(SecretsProvider(boto3_client=client), "rotating", what="Secrets Manager secret")
    fresh = ParameterSecret(
        SecretsProvider(boto3_client=client), "rotating", what="Secrets Manager secret", max_age=0
    )
    client.put_secret_value(SecretId="rotating", SecretString="second")
    assert cached.current() == "first"  # within max age: served from the Powertools cache
    assert fresh.current() == "second"


def test_missing_secret_fails_init_naming_it(aws: None) -> None:
    with pytest.raises(SecretUnavailableError, match="Secrets Manager secret 'no-such-secret'"):
        secret_from_config(none_config(DIFY_LAMBDA_SECRET_ARN="no-such-secret"))


def _post(url: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    envelope = wire.build_envelope(
        "get_ai_model_schemas",
        {
            "provider": "mockgpt",
            "model_type": "llm",
            "model": "mockgpt-1",
            "credentials": {"api_key": "mock-x"},
        },
        user_id="u",
        session_id="secret-test",
    )
    return httpx.post(url + path, content=wire.encode_envelope(envelope), headers=headers or {}, timeout=30.0)


def test_none_auth_accepts_header_or_path_secret_and_never_logs_it() -> None:
    env = {"DIFY_LAMBDA_URL_AUTH": "NONE", "DIFY_LAMBDA_SECRET": SECRET}
    with running_handler(PLUGINS_DIR / "mockgpt", env) as handler:
        by_header = _post(handler.url, "/invoke", {wire.SECRET_HEADER: SECRET})
        by_path = _post(handler.url, f"/{SECRET}/invoke")
        health = httpx.get(f"{handler.url}/{SECRET}/health", timeout=30.0)
        missing = _post(handler.url, "/invoke")
        wrong = _post(handler.url, "/invoke", {wire.SECRET_HEADER: "guess"})
        wrong_path = _post(handler.url, "/guess/invoke")
        output = handler.wait_for_output('"status":401', count=3)
    assert by_header.status_code == by_path.status_code == health.status_code == 200
    assert by_header.content == by_path.content
    assert by_header.content.endswith(wire.end_line("secret-test"))
    assert health.content == b"OK"
    for denied in (missing, wrong, wrong_path):
        assert denied.status_code == 401
        assert denied.json()["errorType"] == "UnauthorizedError"
        assert SECRET not in denied.text
    assert SECRET not in output
    assert any(
        json.loads(line).get("status") == 401 for line in output.splitlines() if line.startswith('{"level"')
    )
