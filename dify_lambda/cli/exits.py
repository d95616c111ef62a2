"""Exit codes of the command line, and the one line each failure prints (README, "Exit codes").

- 0: success.
- 1: an operation or check failed on valid input: a signature did not verify, a deploy or an AWS
  call failed, the system refused (permission denied), the output pipe closed.
- 2: bad input: usage errors, invalid options (a --port already in use included), missing input
  files, an invalid or hostile package or route file, an invalid or outdated build report, a plugin
  too large for Lambda, no AWS credentials or region configured.
- 130: interrupted (Ctrl-C).

No traceback reaches the user unless ``--debug`` is given; messages never echo secrets or input
values (dify-lambda's own errors are written that way; for anything else only its class is named).
"""

from __future__ import annotations

import errno
from typing import Final

from dify_lambda.errors import (
    ArtifactTooLargeError,
    DifyLambdaError,
    PackageError,
    SignatureError,
    UnsupportedTargetError,
    UsageError,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "describe_failure"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_INTERRUPTED: Final = 130

#: Errors that mean "the input was wrong", by class name so this module imports no heavy parts.
_BAD_INPUT_NAMES = frozenset(
    {
        "BuildOutputError",  # infra: the build directory's report is missing, invalid or outdated
        "FunctionNameError",  # infra: --name is not a valid Lambda name
        "RegionError",  # infra: no region configured
        "InvalidRouteTableError",  # router: route file is not a valid table
        "RouteSourceError",  # router: route file or parameter missing or unreadable
        "ServeTargetError",  # emulator: PATH is not something serve can run
        "ServeInputError",  # emulator: an option, an --env-vars file or the address
        "RequirementError",  # builder: a requirements line that is not plain PEP 508 (hostile or malformed)
        "MissingWheelsError",  # builder: a requirement without a wheel for the target (see --allow-sdist)
        "SdkRangeError",  # builder: the plugin pins a dify_plugin the handler does not serve
        "TiktokenDataError",  # builder: --tiktoken-cache lacks a file, or an unknown encoding
    }
)
#: Errors that mean "a valid input, and the operation failed", where a base class is bad input.
_FAILED_NAMES = frozenset({"TiktokenFetchError"})
_BAD_PATH_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR})


def _is_bad_input(exc: DifyLambdaError) -> bool:
    if isinstance(exc, SignatureError):
        return False  # a check that failed (verify), not a malformed input
    if isinstance(exc, (UsageError, PackageError, UnsupportedTargetError, ArtifactTooLargeError)):
        return True
    # The most specific class that either table names decides (a fetch failure is not bad input,
    # although it derives from the tiktoken data error, which is).
    for cls in type(exc).__mro__:
        if cls.__name__ in _FAILED_NAMES:
            return False
        if cls.__name__ in _BAD_INPUT_NAMES:
            return True
    return False


def _botocore(exc: BaseException) -> tuple[int, str] | None:
    """One line for botocore's errors, without importing botocore when it was never used."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "BotoCoreError" not in names and "ClientError" not in names:
        return None
    if "NoCredentialsError" in names or "PartialCredentialsError" in names:
        return EXIT_BAD_INPUT, (
            "no AWS credentials found: configure a profile (--profile, AWS_PROFILE) or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if "NoRegionError" in names:
        return EXIT_BAD_INPUT, "no AWS region: pass --region or set AWS_REGION"
    if "ProfileNotFound" in names:
        return EXIT_BAD_INPUT, "the AWS profile given is not in the shared config"
    if "ClientError" in names:
        response = getattr(exc, "response", {}) or {}
        code = str(response.get("Error", {}).get("Code", "")) or "unknown"
        operation = getattr(exc, "operation_name", "") or "an AWS call"
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            return EXIT_FAILED, f"AWS denied {operation} (AccessDenied): the credentials lack a permission"
        if code in (
            "ExpiredToken",
            "ExpiredTokenException",
            "InvalidClientTokenId",
            "UnrecognizedClientException",
        ):
            return EXIT_FAILED, f"AWS rejected the credentials ({code}): refresh or replace them"
        return EXIT_FAILED, f"{operation} failed ({code})"
    if "EndpointConnectionError" in names or "ConnectTimeoutError" in names:
        return EXIT_FAILED, "cannot reach the AWS endpoint (network or AWS_ENDPOINT_URL)"
    return EXIT_FAILED, f"AWS request failed ({type(exc).__name__})"


def _os_error(exc: OSError) -> tuple[int, str]:
    where = f": {exc.filename}" if exc.filename else ""
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.EADDRINUSE:
        return EXIT_BAD_INPUT, "the address is already in use: pick another --port (0 picks a free one)"
    if exc.errno in _BAD_PATH_ERRNOS:
        return EXIT_BAD_INPUT, f"{reason}{where}"
    return EXIT_FAILED, f"{reason}{where}"


def describe_failure(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line (without the ``dify-lambda: error:`` prefix) for ``exc``."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, BrokenPipeError):
        return EXIT_FAILED, "output closed before everything was written (broken pipe)"
    if isinstance(exc, DifyLambdaError):
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (EXIT_BAD_INPUT if _is_bad_input(exc) else EXIT_FAILED), text
    found = _botocore(exc)
    if found is not None:
        return found
    if isinstance(exc, OSError):
        return _os_error(exc)
    return EXIT_FAILED, f"unexpected {type(exc).__name__} (run with --debug for the traceback)"
