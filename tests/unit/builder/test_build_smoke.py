"""Pure parts of the build-time proof: the SDK range check and the smoke init's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from dify_lambda.handlers.plugin import SUPPORTED_SDK
from dify_lambda.packaging.build.options import Target
from dify_lambda.packaging.build.smoke import (
    SdkRangeError,
    SmokeInitError,
    check_sdk_range,
    lambda_environment,
    smoke_result,
)

TARGET = Target("x86_64", "3.12", 512, 900, "AWS_IAM")
LOW, HIGH = SUPPORTED_SDK


def test_the_handlers_lowest_supported_version_passes() -> None:
    version = f"{LOW[0]}.{LOW[1]}.0"
    assert check_sdk_range({"dify_plugin": version, "gevent": "25.0"}) == version
    assert check_sdk_range({"dify-plugin": version}) == version


def test_first_version_above_the_range_stops_in_one_line() -> None:
    version = f"{HIGH[0]}.{HIGH[1]}.0"
    with pytest.raises(SdkRangeError) as info:
        check_sdk_range({"dify_plugin": version})
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"dify_plugin {version} is not supported")
    assert text.endswith("pin a supported SDK")


def test_no_sdk_at_all() -> None:
    with pytest.raises(SdkRangeError, match="do not include dify_plugin"):
        check_sdk_range({"requests": "2.0"})


def test_environment_is_lambdas_with_the_task_root_mapped() -> None:
    function_env = {
        "AWS_LAMBDA_EXEC_WRAPPER": "/var/task/dify_lambda/handlers/exec_wrapper.sh",
        "DIFY_LAMBDA_PLUGIN_ROOT": "/var/task/plugin",
        "TIKTOKEN_CACHE_DIR": "/var/task/tiktoken_cache",
        "INSTALL_METHOD": "serverless",
        "OTHER": "/var/taskforce",
        "DIFY_LAMBDA_URL_AUTH": "NONE",
        "DIFY_LAMBDA_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:s",
    }
    env = lambda_environment(TARGET, Path("/tmp/x/task"), function_env, Path("/tmp/x/tmp"))
    assert env["LAMBDA_TASK_ROOT"] == "/tmp/x/task"
    assert env["DIFY_LAMBDA_PLUGIN_ROOT"] == "/tmp/x/task/plugin"
    assert env["TIKTOKEN_CACHE_DIR"] == "/tmp/x/task/tiktoken_cache"
    assert env["OTHER"] == "/var/taskforce"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    # Auth and secret settings would reach AWS at init: the smoke init proves loading, not auth.
    assert not {"AWS_LAMBDA_EXEC_WRAPPER", "DIFY_LAMBDA_URL_AUTH", "DIFY_LAMBDA_SECRET_ARN"} & set(env)
    assert not any(k.startswith("PYTHON") for k in env)


def test_no_network_sandbox_is_a_skip_that_says_no_plugin_code_ran() -> None:
    result = smoke_result({"ok": False, "sandbox": "unshare refused: Operation not permitted"}, "", 0.1)
    assert result.status == "skipped"
    assert result.note == (
        "smoke init skipped: this host cannot cut the plugin off the network"
        " (unshare refused: Operation not permitted); the plugin's code was not run here"
    )


def test_probe_results() -> None:
    doc = {"ok": True, "sdk_version": "0.9.0", "providers": [{"name": "p", "models": ["llm/m"]}]}
    passed = smoke_result(doc, "", 1.23456)
    assert (passed.status, passed.seconds, passed.sdk_version) == ("passed", 1.235, "0.9.0")
    assert passed.providers == {"p": ("llm/m",)}
    with pytest.raises(
        SmokeInitError, match=r"cannot load from the artifact: ImportError: no x \(--no-smoke"
    ):
        smoke_result({"ok": False, "error": "ImportError: no x"}, "", 0.1)
    with pytest.raises(SmokeInitError, match="cannot load from the artifact: Segmentation fault"):
        smoke_result(None, "noise\nSegmentation fault\n", 0.1)
