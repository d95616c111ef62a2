from __future__ import annotations

from pathlib import Path

import pytest
from unit.handlers.fakes import FakeProvider

from dify_lambda.handlers.config import HandlerConfig, SecretSourceKind
from dify_lambda.handlers.errors import SecretUnavailableError
from dify_lambda.handlers.secrets import ParameterSecret, StaticSecret, secret_from_config


def config(**env: str) -> HandlerConfig:
    return HandlerConfig.from_env({"DIFY_LAMBDA_URL_AUTH": "NONE", **env}, cwd=Path("/p"))


def test_env_secret_needs_no_provider() -> None:
    def no_provider(kind: SecretSourceKind) -> FakeProvider:
        raise AssertionError("must not be called")

    source = secret_from_config(config(DIFY_LAMBDA_SECRET="abc"), provider_factory=no_provider)
    assert isinstance(source, StaticSecret)
    assert source.current() == "abc"
    assert "abc" not in repr(source)


def test_no_secret_configured() -> None:
    assert secret_from_config(HandlerConfig.from_env({}, cwd=Path("/p"))) is None


def test_secrets_manager_source_reads_through_the_provider_with_max_age() -> None:
    provider = FakeProvider({"arn:aws:secretsmanager:us-east-1:1:secret:s": "v1"})
    kinds: list[SecretSourceKind] = []

    def factory(kind: SecretSourceKind) -> FakeProvider:
        kinds.append(kind)
        return provider

    source = secret_from_config(
        config(DIFY_LAMBDA_SECRET_ARN="arn:aws:secretsmanager:us-east-1:1:secret:s"), provider_factory=factory
    )
    assert kinds == [SecretSourceKind.SECRETS_MANAGER]
    assert source is not None
    assert source.current() == "v1"
    name, max_age, options = provider.calls[-1]
    assert name.endswith("secret:s")
    assert max_age is not None and max_age > 0
    assert options == {}


def test_ssm_source_decrypts_and_accepts_bytes() -> None:
    provider = FakeProvider({"/dify/secret": b"v2"})
    source = secret_from_config(
        config(DIFY_LAMBDA_SECRET_PARAMETER="/dify/secret"), provider_factory=lambda _: provider
    )
    assert source is not None
    assert source.current() == "v2"
    assert provider.calls[-1][2] == {"decrypt": True}


def test_unreadable_secret_fails_init_naming_the_source_only() -> None:
    provider = FakeProvider({}, fail=True)
    with pytest.raises(SecretUnavailableError, match="SSM parameter '/dify/secret': ConnectionError"):
        ParameterSecret(provider, "/dify/secret", what="SSM parameter")


def test_empty_secret_fails_init() -> None:
    with pytest.raises(SecretUnavailableError, match="holds no non-empty string"):
        ParameterSecret(FakeProvider({"n": ""}), "n", what="Secrets Manager secret")


def test_refresh_failure_keeps_the_last_good_value() -> None:
    provider = FakeProvider({"n": "good"})
    source = ParameterSecret(provider, "n", what="SSM parameter")
    provider.fail = True
    assert source.current() == "good"
