"""The standard buffered Lambda handler: ``dify_lambda.handlers.buffered.lambda_handler``.

Used by BUFFERED function URLs, direct ``Invoke`` and ``sam local invoke`` (and by the managed
runtime when ``DIFY_LAMBDA_STREAMING=0``). The plugin is loaded **at module import**, i.e. in
Lambda's init phase (captured by SnapStart, and an init failure is reported as such); every
invocation of the process reuses it. The result carries the same bytes the streaming transport
sends, as one body.
"""

from __future__ import annotations

from typing import Any

from dify_lambda.handlers.app import application_from_env, buffered_result

__all__ = ["lambda_handler"]

_app = application_from_env()


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Answer one function URL 2.0 event with ``{statusCode, headers, body, isBase64Encoded, cookies}``."""
    del context
    return buffered_result(_app.handle_event(event))
