"""The function a build produces, as one frozen value: :class:`FunctionSpec`.

The builder resolves it once (``packaging.build.app.function_spec``); the SAM renderer writes it into
``template.yaml``, the build report records it under ``function`` and ``dify-lambda deploy`` creates
the function from that record, so the template and the API deploy cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from dify_lambda import wire

__all__ = ["INVOKE_MODE", "RUNTIME_ENVIRONMENT", "URL_AUTH_TYPES", "FunctionSpec", "UrlAuth"]

UrlAuth = Literal["AWS_IAM", "NONE"]
URL_AUTH_TYPES: tuple[UrlAuth, ...] = ("AWS_IAM", "NONE")

#: The handler streams its answer (docs/handler.md), so the function URL must too.
INVOKE_MODE: Final[Literal["RESPONSE_STREAM"]] = "RESPONSE_STREAM"
#: The runtime contract of docs/architecture.md: every built function gets these variables.
RUNTIME_ENVIRONMENT: Mapping[str, str] = {
    "AWS_LAMBDA_EXEC_WRAPPER": f"{wire.LAMBDA_TASK_ROOT}/{wire.EXEC_WRAPPER}",
    wire.ENV_PLUGIN_ROOT: f"{wire.LAMBDA_TASK_ROOT}/{wire.PLUGIN_DIR}",
    "INSTALL_METHOD": "serverless",
}


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """Everything the function is created with, apart from the plugin identity and the code.

    ``environment`` holds the literal variables (the runtime contract included); the URL auth and
    the secret settings are added by whoever deploys (template parameters, or the deployer).
    ``url_auth`` is the default AuthType of the function URL.
    """

    runtime: str
    architecture: str
    memory_mb: int
    timeout: int
    url_auth: UrlAuth = "AWS_IAM"
    handler: str = wire.HANDLER
    environment: Mapping[str, str] = field(default_factory=lambda: dict(RUNTIME_ENVIRONMENT))
    snapstart: bool = False
    function_name: str | None = None
