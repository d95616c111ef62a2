"""Exit codes and one-line messages, option types and the progress reporter (no I/O)."""

from __future__ import annotations

import argparse
import errno
import io

import pytest
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from dify_lambda.cli.exits import describe_failure
from dify_lambda.cli.options import architecture, function_name, positive_int
from dify_lambda.cli.progress import Reporter
from dify_lambda.errors import (
    ArtifactTooLargeError,
    DependencyResolutionError,
    ManifestError,
    SignatureError,
    UsageError,
)
from dify_lambda.infra.errors import DeployError, FunctionNameError, RegionError
from dify_lambda.router.errors import InvalidRouteTableError


def client_error(code: str, operation: str = "CreateFunction") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "secret-looking detail"}}, operation)


@pytest.mark.parametrize(
    ("exc", "code", "fragment"),
    [
        (UsageError("--x: bad"), 2, "--x: bad"),
        (ManifestError("manifest.yaml: no version"), 2, "manifest.yaml"),
        (ArtifactTooLargeError("too big"), 2, "too big"),
        (InvalidRouteTableError("routes.yaml: bad"), 2, "routes.yaml"),
        (FunctionNameError("bad name"), 2, "bad name"),
        (RegionError("no AWS region"), 2, "no AWS region"),
        (SignatureError("not signed"), 1, "not signed"),
        (DeployError("deploying x failed (Throttling)"), 1, "Throttling"),
        (DependencyResolutionError("no wheel for x"), 1, "no wheel"),
        (NoCredentialsError(), 2, "no AWS credentials"),
        (NoRegionError(), 2, "no AWS region"),
        (client_error("AccessDeniedException"), 1, "AWS denied CreateFunction"),
        (client_error("ThrottlingException"), 1, "CreateFunction failed (ThrottlingException)"),
        (OSError(errno.EADDRINUSE, "Address already in use"), 2, "already in use"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "x.yaml"), 2, "x.yaml"),
        (PermissionError(errno.EACCES, "Permission denied", "/root/x"), 1, "Permission denied"),
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), 1, "broken pipe"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (ZeroDivisionError("division by zero"), 1, "unexpected ZeroDivisionError"),
    ],
)
def test_each_failure_has_its_exit_code_and_one_line(exc: BaseException, code: int, fragment: str) -> None:
    status, line = describe_failure(exc)
    assert status == code
    assert fragment in line
    assert "\n" not in line
    assert "secret-looking" not in line, "AWS messages are not echoed, only their codes"


def test_unexpected_errors_do_not_echo_their_message() -> None:
    _, line = describe_failure(ValueError("sk-live-123"))
    assert "sk-live-123" not in line
    assert "--debug" in line


@pytest.mark.parametrize(
    ("spelling", "lambda_name"),
    [
        ("x86_64", "x86_64"),
        ("amd64", "x86_64"),
        ("arm64", "arm64"),
        ("aarch64", "arm64"),
        ("AMD64", "x86_64"),
    ],
)
def test_architecture_accepts_lambda_and_manifest_spellings(spelling: str, lambda_name: str) -> None:
    assert architecture(spelling) == lambda_name


def test_bad_option_values_are_argparse_errors() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="unknown architecture"):
        architecture("sparc")
    with pytest.raises(argparse.ArgumentTypeError, match="positive"):
        positive_int("0")
    with pytest.raises(argparse.ArgumentTypeError, match="whole number"):
        positive_int("two")
    with pytest.raises(argparse.ArgumentTypeError, match="dify-"):
        function_name("other-function")
    assert function_name("dify-ok") == "dify-ok"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reporter_stamps_steps_with_elapsed_time_and_beats_when_silent() -> None:
    out, clock = io.StringIO(), Clock()
    reporter = Reporter(out, heartbeat_s=10.0, clock=clock)
    reporter("resolving dependencies")
    clock.now += 5
    reporter.tick()  # not silent long enough yet
    clock.now += 7
    reporter.tick()
    clock.now += 3
    reporter("compiling")
    lines = out.getvalue().splitlines()
    assert lines == [
        "  [  0.0 s] resolving dependencies",
        "  [ 12.0 s] ... still resolving dependencies (12 s)",
        "  [ 15.0 s] compiling",
    ]


def test_quiet_reporter_prints_nothing() -> None:
    out = io.StringIO()
    reporter = Reporter(out, quiet=True, heartbeat_s=1.0, clock=Clock())
    reporter("step")
    reporter.tick()
    assert out.getvalue() == ""
