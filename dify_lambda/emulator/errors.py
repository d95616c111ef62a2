"""Error leaves of the local function URL emulator (``dify-lambda serve``)."""

from __future__ import annotations

from dify_lambda.errors import DifyLambdaError, PackageError

__all__ = [
    "ArtifactPlatformError",
    "EmulatorError",
    "EnvVarsError",
    "ListenError",
    "ServeInputError",
    "ServeTargetError",
    "WorkerStartError",
]


class EmulatorError(DifyLambdaError):
    """The local emulator could not start or run."""


class ServeInputError(EmulatorError):
    """Bad input to ``serve`` itself (the CLI exits 2): an option, an ``--env-vars`` file, the address."""


class EnvVarsError(ServeInputError):
    """An ``--env-vars`` file or an ``--env`` assignment is malformed."""


class ListenError(ServeInputError):
    """The function URL cannot listen on the requested host and port (in use, unknown host, ...)."""


class ServeTargetError(PackageError):
    """``serve PATH``: PATH is not a built artifact nor a plugin source directory, or cannot run here."""


class ArtifactPlatformError(ServeTargetError):
    """The artifact was built for another architecture or Python than serve can run it on."""


class WorkerStartError(EmulatorError):
    """A worker failed its init (``/init/error``) or exited before becoming ready."""
