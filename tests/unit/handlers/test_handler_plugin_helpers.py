"""The SDK-independent helpers of dify_lambda.handlers.plugin (the module imports no SDK at load)."""

from __future__ import annotations

import sys

import pytest

from dify_lambda import wire
from dify_lambda.handlers.errors import UnknownActionError, UnsupportedSdkError
from dify_lambda.handlers.plugin import (
    EXECUTOR_METHODS,
    SdkPluginRuntime,
    _session_arguments,
    check_sdk_version,
    describe_validation_error,
)
from dify_lambda.handlers.sdk_versions import SdkProfile, parse_version


def test_importing_the_runtime_module_does_not_import_the_sdk() -> None:
    assert "dify_plugin" not in sys.modules


def test_every_model_action_maps_to_an_executor_method() -> None:
    assert set(EXECUTOR_METHODS) == set(wire.MODEL_ACTIONS)


@pytest.mark.parametrize("version", ["0.2.0", "0.4.0b1", "0.6.2", "0.9.0", "0.10.0", "0.10.2", "0.10.15rc1"])
def test_supported_versions(version: str) -> None:
    check_sdk_version(version)


@pytest.mark.parametrize("version", ["0.1.0", "0.0.1b75", "0.11.0", "1.0.0", "garbage", "0"])
def test_unsupported_versions_are_refused_clearly(version: str) -> None:
    with pytest.raises(
        UnsupportedSdkError, match=rf"dify_plugin {version} is not supported: .*>=0\.2,<0\.11"
    ):
        check_sdk_version(version)


@pytest.mark.parametrize(
    ("version", "traceback"),
    [("0.2.4", False), ("0.9.1", False), ("0.10.0", False), ("0.10.1", True), ("0.10.2", True)],
)
def test_error_traceback_follows_the_release(version: str, traceback: bool) -> None:
    assert SdkProfile.of(version).error_traceback is traceback


def test_profile_refuses_what_the_range_refuses() -> None:
    with pytest.raises(UnsupportedSdkError):
        SdkProfile.of("0.11.0")


@pytest.mark.parametrize(
    ("version", "parsed"),
    [("0.4.0b1", (0, 4, 0)), ("0.6.2+local", (0, 6, 2)), ("0.7", (0, 7, 0)), ("x.1", None)],
)
def test_parse_version(version: str, parsed: tuple[int, int, int] | None) -> None:
    assert parse_version(version) == parsed


def test_validation_message_names_the_first_field_path() -> None:
    errors = [
        {"loc": ("prompt_messages", 0, "role"), "type": "enum", "msg": "Input should be 'user' or 'tool'"},
        {"loc": ("stop",), "type": "list_type", "msg": "Input should be a valid list"},
    ]
    message = describe_validation_error("invoke_llm", errors)
    assert message == (
        "invalid request for action invoke_llm: field 'data.prompt_messages.0.role': "
        "Input should be 'user' or 'tool' [enum] (and 1 more)"
    )


def test_validation_message_hides_custom_validator_text() -> None:
    errors = [{"loc": ("texts",), "type": "value_error", "msg": "Value error, secret prompt text here"}]
    message = describe_validation_error("invoke_text_embedding", errors)
    assert "secret prompt" not in message
    assert "field 'data.texts': invalid value [value_error]" in message


class _SessionWithoutContext:
    """Stands in for a 0.2/0.3 ``Session``: no ``context``, no ``max_invocation_timeout``."""

    def __init__(self, session_id: str, executor: object, reader: object, writer: object) -> None:
        del session_id, executor, reader, writer


class _SessionWithKwargs:
    def __init__(self, session_id: str, **kwargs: object) -> None:
        del session_id, kwargs


def test_session_arguments_follow_the_release_signature() -> None:
    assert _session_arguments(_SessionWithoutContext) == {"session_id", "executor", "reader", "writer"}


def test_a_session_taking_any_keyword_is_refused() -> None:
    with pytest.raises(UnsupportedSdkError, match=r"\*\*kwargs"):
        _session_arguments(_SessionWithKwargs)


def test_an_action_the_release_does_not_route_is_unknown() -> None:
    runtime = SdkPluginRuntime(plugin_id="a/b", sdk_version="0.6.2", routes={}, sdk=object())
    with pytest.raises(UnknownActionError, match=r"start_polling is not served by dify_plugin 0\.6\.2"):
        runtime.prepare("start_polling", {})
