from __future__ import annotations

from pathlib import Path

import pytest

from dify_lambda.handlers.config import DEFAULT_MAX_BODY_BYTES, HandlerConfig, SecretSourceKind, UrlAuth
from dify_lambda.handlers.errors import HandlerConfigError

CWD = Path("/somewhere")


def test_defaults_are_iam_without_secret_and_cwd_plugin_root() -> None:
    config = HandlerConfig.from_env({}, cwd=CWD)
    assert config.url_auth is UrlAuth.AWS_IAM
    assert config.plugin_root == CWD
    assert config.secret_source is None
    assert config.allowed_principals == ()
    assert config.max_body_bytes == DEFAULT_MAX_BODY_BYTES


def test_plugin_root_prefers_explicit_then_task_root() -> None:
    assert HandlerConfig.from_env({"LAMBDA_TASK_ROOT": "/var/task"}, cwd=CWD).plugin_root == Path(
        "/var/task/plugin"
    )
    env = {"LAMBDA_TASK_ROOT": "/var/task", "DIFY_LAMBDA_PLUGIN_ROOT": "/opt/p"}
    assert HandlerConfig.from_env(env, cwd=CWD).plugin_root == Path("/opt/p")


def test_none_auth_requires_a_secret() -> None:
    with pytest.raises(HandlerConfigError, match="DIFY_LAMBDA_URL_AUTH=NONE requires a shared secret"):
        HandlerConfig.from_env({"DIFY_LAMBDA_URL_AUTH": "NONE"}, cwd=CWD)


@pytest.mark.parametrize(
    ("variable", "kind"),
    [
        ("DIFY_LAMBDA_SECRET", SecretSourceKind.ENV),
        ("DIFY_LAMBDA_SECRET_ARN", SecretSourceKind.SECRETS_MANAGER),
        ("DIFY_LAMBDA_SECRET_PARAMETER", SecretSourceKind.SSM),
    ],
)
def test_each_secret_source_is_recognised(variable: str, kind: SecretSourceKind) -> None:
    config = HandlerConfig.from_env({"DIFY_LAMBDA_URL_AUTH": "none", variable: "ref-1"}, cwd=CWD)
    assert config.url_auth is UrlAuth.NONE
    assert config.secret_source is kind
    assert config.secret_ref == "ref-1"


def test_two_secret_sources_are_refused() -> None:
    env = {"DIFY_LAMBDA_SECRET": "a", "DIFY_LAMBDA_SECRET_PARAMETER": "/p"}
    with pytest.raises(HandlerConfigError, match="DIFY_LAMBDA_SECRET, DIFY_LAMBDA_SECRET_PARAMETER"):
        HandlerConfig.from_env(env, cwd=CWD)


def test_repr_hides_the_secret_value() -> None:
    config = HandlerConfig.from_env({"DIFY_LAMBDA_SECRET": "s3cr3t-value"}, cwd=CWD)
    assert "s3cr3t-value" not in repr(config)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DIFY_LAMBDA_URL_AUTH": "OPEN"}, "DIFY_LAMBDA_URL_AUTH must be AWS_IAM or NONE"),
        ({"DIFY_LAMBDA_MAX_BODY_BYTES": "lots"}, "DIFY_LAMBDA_MAX_BODY_BYTES must be an integer"),
        ({"DIFY_LAMBDA_MAX_BODY_BYTES": "0"}, "DIFY_LAMBDA_MAX_BODY_BYTES must be positive"),
        ({"DIFY_LAMBDA_ALLOWED_PRINCIPALS": "router"}, "entry 'router' is not an ARN"),
        (
            {
                "DIFY_LAMBDA_URL_AUTH": "NONE",
                "DIFY_LAMBDA_SECRET": "x",
                "DIFY_LAMBDA_ALLOWED_PRINCIPALS": "arn:aws:iam::1:user/a",
            },
            "needs DIFY_LAMBDA_URL_AUTH=AWS_IAM",
        ),
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(HandlerConfigError, match=message):
        HandlerConfig.from_env(env, cwd=CWD)


def test_principals_are_split_and_trimmed() -> None:
    env = {"DIFY_LAMBDA_ALLOWED_PRINCIPALS": " arn:aws:iam::1:user/a , ,arn:aws:iam::1:role/b"}
    config = HandlerConfig.from_env(env, cwd=CWD)
    assert config.allowed_principals == ("arn:aws:iam::1:user/a", "arn:aws:iam::1:role/b")
