"""Docker-free local function URL emulator behind ``dify-lambda serve``.

``serve(path, ...)`` runs a built artifact (exactly as Lambda starts it: exec wrapper, streaming
Runtime API loop) or a plugin source directory in worker subprocesses, each with its own local
Runtime API, behind one local function URL that streams responses as they are produced.
"""

from dify_lambda.emulator.errors import (
    ArtifactPlatformError,
    EmulatorError,
    EnvVarsError,
    ListenError,
    ServeInputError,
    ServeTargetError,
    WorkerStartError,
)
from dify_lambda.emulator.server import LocalFunctionUrl, serve

__all__ = [
    "ArtifactPlatformError",
    "EmulatorError",
    "EnvVarsError",
    "ListenError",
    "LocalFunctionUrl",
    "ServeInputError",
    "ServeTargetError",
    "WorkerStartError",
    "serve",
]
