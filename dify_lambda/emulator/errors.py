"""Error leaves of the local function URL emulator (``dify-lambda serve``)."""

from __future__ import annotations

from dify_lambda.errors import DifyLambdaError, PackageError

__all__ = ["EmulatorError", "ServeTargetError", "WorkerStartError"]


class EmulatorError(DifyLambdaError):
    """The local emulator could not start or run."""


class ServeTargetError(PackageError):
    """``serve PATH``: PATH is not a built artifact nor a plugin source directory, or cannot run here."""


class WorkerStartError(EmulatorError):
    """A worker failed its init (``/init/error``) or exited before becoming ready."""
