"""invoke's pure helpers: --data envelopes, /invoke URLs, secret masking."""

from __future__ import annotations

import pytest

from dify_lambda.cli.invoke import MASK, _BadData, mask_secrets, normalise_url, unwrap_data

FIELDS = {"provider": "mockgpt", "credentials": {"api_key": "sk-secret-123"}}


def test_plain_fields_pass_through() -> None:
    assert unwrap_data(dict(FIELDS), "validate_provider_credentials") == (FIELDS, None)


def test_whole_envelope_is_unwrapped_and_its_user_kept() -> None:
    envelope = {
        "session_id": "s",
        "event": "request",
        "data": {"user_id": "u-1", "type": "model", "action": "validate_provider_credentials", **FIELDS},
    }
    assert unwrap_data(envelope, "validate_provider_credentials") == (FIELDS, "u-1")


def test_envelope_for_another_action_is_refused() -> None:
    envelope = {"event": "request", "data": {"action": "invoke_llm", **FIELDS}}
    with pytest.raises(_BadData, match="'invoke_llm', not 'invoke_rerank'"):
        unwrap_data(envelope, "invoke_rerank")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8000/invoke", "http://127.0.0.1:8000/"),
        ("http://127.0.0.1:8000/invoke/", "http://127.0.0.1:8000/"),
        (
            "https://x.lambda-url.us-east-1.on.aws/invoke?action=invoke_llm",
            "https://x.lambda-url.us-east-1.on.aws/",
        ),
        (
            "https://x.lambda-url.us-east-1.on.aws/s3cr3t/invoke",
            "https://x.lambda-url.us-east-1.on.aws/s3cr3t/",
        ),
        ("https://x.lambda-url.us-east-1.on.aws/", "https://x.lambda-url.us-east-1.on.aws/"),
    ],
)
def test_url_ending_in_invoke_is_accepted(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


def test_credentials_echoed_back_are_masked() -> None:
    payload = {
        "result": True,
        "credentials": {"api_key": "sk-secret-123", "base": "https://api", "retries": 3, "flag": True},
        "note": "validated with sk-secret-123",
        "items": [{"credentials": {"token": "abc"}}],
    }
    masked = mask_secrets(payload, {"sk-secret-123"})
    assert masked == {
        "result": True,
        "credentials": {"api_key": MASK, "base": MASK, "retries": MASK, "flag": True},
        "note": f"validated with {MASK}",
        "items": [{"credentials": {"token": MASK}}],
    }
