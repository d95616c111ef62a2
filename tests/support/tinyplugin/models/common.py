"""Shared bits of the tiny test models: credential check and error mapping."""

from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeBadRequestError,
    InvokeError,
    InvokeRateLimitError,
)


class RateLimited(Exception):
    pass


def check_credentials(credentials: dict) -> None:
    if not str(credentials.get("api_key", "")).startswith("tiny-"):
        raise CredentialsValidateFailedError("api_key must start with tiny-")


ERROR_MAPPING: dict[type[InvokeError], list[type[Exception]]] = {
    InvokeRateLimitError: [RateLimited],
    InvokeBadRequestError: [ValueError],
}
