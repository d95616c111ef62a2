"""Shared by every MockLab model: credentials, token counting, error triggers, error mapping.

Error triggers: an input that is exactly ``raise:<kind>`` (an embedding text, a rerank query, a
moderation text, a TTS text, or the transcript hidden in a WAV sent to speech2text) raises the
matching SDK invoke error, e.g. ``raise:ratelimit`` → ``InvokeRateLimitError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
)
from dify_plugin.interfaces.model.ai_model import AIModel

API_KEY_PREFIX = "mock-"

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")
_TRIGGER = re.compile(r"^\s*raise:(\w+)\s*$", re.IGNORECASE)

_TRIGGERED_ERRORS: dict[str, type[Exception]] = {
    "ratelimit": InvokeRateLimitError,
    "badrequest": InvokeBadRequestError,
    "auth": InvokeAuthorizationError,
    "unavailable": InvokeServerUnavailableError,
    "connection": InvokeConnectionError,
    "crash": RuntimeError,
}

#: The SDK maps each raised error through this table and prefixes "[models] <kind>, ".
ERROR_MAPPING: dict[type[InvokeError], list[type[Exception]]] = {
    InvokeConnectionError: [InvokeConnectionError],
    InvokeServerUnavailableError: [InvokeServerUnavailableError],
    InvokeRateLimitError: [InvokeRateLimitError],
    InvokeAuthorizationError: [InvokeAuthorizationError],
    InvokeBadRequestError: [InvokeBadRequestError, ValueError],
}


def check_api_key(credentials: Mapping[str, object]) -> None:
    """Accept any ``api_key`` that starts with ``mock-``; the message never echoes the key."""
    api_key = credentials.get("api_key")
    if not isinstance(api_key, str) or not api_key.startswith(API_KEY_PREFIX):
        raise CredentialsValidateFailedError(f"api_key must be a string starting with '{API_KEY_PREFIX}'")


def check_invocable(model_instance: AIModel, model: str, credentials: Mapping[str, object]) -> None:
    """What every invoke checks first: the key (as an authorization error) and the model name."""
    try:
        check_api_key(credentials)
    except CredentialsValidateFailedError as exc:
        raise InvokeAuthorizationError(str(exc)) from None
    if model_instance.get_model_schema(model, credentials) is None:
        raise InvokeBadRequestError(f"model '{model}' is not offered by mocklab")


def validate_model(model_instance: AIModel, model: str, credentials: Mapping[str, object]) -> None:
    """``validate_model_credentials``: a good key and a known model."""
    check_api_key(credentials)
    if model_instance.get_model_schema(model, credentials) is None:
        raise CredentialsValidateFailedError(f"model '{model}' is not offered by mocklab")


def raise_if_triggered(texts: Iterable[str]) -> None:
    """Raise the error named by the first ``raise:<kind>`` input, if any."""
    for text in texts:
        match = _TRIGGER.match(text)
        if match is None:
            continue
        kind = match.group(1).lower()
        error = _TRIGGERED_ERRORS.get(kind)
        if error is None:
            raise InvokeBadRequestError(f"unknown error kind '{kind}' in raise:<kind>")
        raise error(f"simulated {kind} (raise:{kind})")


def count_tokens(text: str) -> int:
    """Count locally: words and single punctuation marks (no tokenizer download)."""
    return len(_TOKEN.findall(text))


def words(text: str) -> list[str]:
    """Lowercased words, the unit of the lexical rerank score and of moderation."""
    return [word.lower() for word in _WORD.findall(text)]
