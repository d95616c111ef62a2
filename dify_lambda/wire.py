"""The wire contract shared by the handler (server side) and the router (client side).

This module is the only place both may import. It must stay light: standard library and pydantic
only, never ``dify_plugin`` (which gevent-patches the process on import) and never boto3.

The formats follow the SDK's own serverless mode byte for byte (docs/wire-protocol.md §2-§3):
``POST <url>/invoke?action=<action>`` with a JSON request envelope, answered by compact JSON event
lines each followed by ``"\\n\\n"``; the stream always ends with a session ``end`` message.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

# --- HTTP surface --------------------------------------------------------------------------------

INVOKE_PATH = "/invoke"
HEALTH_PATH = "/health"
#: Header the daemon sends with every call; also echoed as ``session_id`` in the body.
SESSION_ID_HEADER = "Dify-Plugin-Session-ID"
#: Header carrying the shared secret for ``AuthType: NONE`` URLs (what the router sends).
SECRET_HEADER = "X-Dify-Lambda-Secret"  # noqa: S105 - a header name, not a secret
#: What the SDK's Flask server answers with (Flask's default); the daemon does not check it.
RESPONSE_CONTENT_TYPE = "text/html; charset=utf-8"
HEALTH_BODY = b"OK"
LINE_DELIMITER = b"\n\n"

MIB = 1024 * 1024
#: Lambda function URL request payload limit (Lambda "MB" are MiB).
FUNCTION_URL_MAX_REQUEST_BYTES = 6 * MIB
#: What the daemon allows per request envelope, leaving a margin under the URL limit.
MAX_REQUEST_BYTES = 5 * MIB
#: Longest single event line the daemon's scanner accepts (must stay strictly below).
MAX_LINE_BYTES = 5 * MIB
#: Lambda's limit on a function's unzipped code (a "MB" that is a MiB, too).
MAX_UNZIPPED_BYTES = 250 * MIB

# --- The function's code layout and environment (written by the builder, the deployer and the
# emulator, read by the handler) -----------------------------------------------------------------

LAMBDA_TASK_ROOT = "/var/task"
HANDLER = "dify_lambda.handlers.buffered.lambda_handler"
#: Relative to the task root; set as ``AWS_LAMBDA_EXEC_WRAPPER`` to stream responses.
EXEC_WRAPPER = "dify_lambda/handlers/exec_wrapper.sh"
#: The plugin's files inside the artifact, relative to the task root.
PLUGIN_DIR = "plugin"

ENV_PLUGIN_ROOT = "DIFY_LAMBDA_PLUGIN_ROOT"
ENV_URL_AUTH = "DIFY_LAMBDA_URL_AUTH"
ENV_ALLOWED_PRINCIPALS = "DIFY_LAMBDA_ALLOWED_PRINCIPALS"
ENV_MAX_BODY_BYTES = "DIFY_LAMBDA_MAX_BODY_BYTES"
ENV_STREAMING = "DIFY_LAMBDA_STREAMING"
#: The interpreter the exec wrapper runs (the emulator's; unset on Lambda).
ENV_PYTHON = "DIFY_LAMBDA_PYTHON"
#: The three places the shared secret can come from, in the handler's order of preference.
ENV_SECRET = "DIFY_LAMBDA_SECRET"  # noqa: S105 - a variable name, not a secret
ENV_SECRET_ARN = "DIFY_LAMBDA_SECRET_ARN"  # noqa: S105
ENV_SECRET_PARAMETER = "DIFY_LAMBDA_SECRET_PARAMETER"  # noqa: S105
SECRET_ENVS = (ENV_SECRET, ENV_SECRET_ARN, ENV_SECRET_PARAMETER)

# --- The router's settings (environment of Dify's API process) -----------------------------------

ENV_ROUTES = "DIFY_LAMBDA_ROUTES"
ENV_ROUTES_REFRESH = "DIFY_LAMBDA_ROUTES_REFRESH"
ENV_ROUTES_TIMEOUT = "DIFY_LAMBDA_ROUTES_TIMEOUT"
ENV_ROUTER_PLUGINS = "DIFY_LAMBDA_ROUTER_PLUGINS"

# --- Lambda error shape --------------------------------------------------------------------------


def lambda_error_body(error_type: str, message: str) -> bytes:
    """``{"errorType", "errorMessage"}``: how Lambda, the handler and the emulator answer a failed call."""
    return json.dumps({"errorType": error_type, "errorMessage": message}, ensure_ascii=False).encode()


def read_lambda_error(doc: dict[str, Any]) -> tuple[str, str, str]:
    """``(error type, message, request id)`` of a Lambda error document, ``""`` where absent.

    Also reads the AWS API's own spellings (``__type``, ``Message``, ``message``), which a function
    URL uses for errors it raises itself (throttling, payload too large).
    """
    return (
        str(doc.get("errorType") or doc.get("__type") or ""),
        str(doc.get("errorMessage") or doc.get("Message") or doc.get("message") or ""),
        str(doc.get("requestId") or ""),
    )


# --- Identity of deployed functions (tags, stack outputs, environment) ---------------------------

TAG_MANAGED = "dify-lambda:managed"
TAG_PLUGIN_ID = "dify-lambda:plugin-id"
TAG_UNIQUE_IDENTIFIER = "dify-lambda:unique-identifier"
TAG_CHECKSUM = "dify-lambda:checksum"
#: Providers joined by spaces (AWS tag values may not contain commas).
TAG_PROVIDERS = "dify-lambda:providers"
TAG_AUTH = "dify-lambda:auth"

OUTPUT_FUNCTION_URL = "FunctionUrl"
OUTPUT_FUNCTION_NAME = "FunctionName"
OUTPUT_FUNCTION_ARN = "FunctionArn"
OUTPUT_PLUGIN_ID = "PluginId"
OUTPUT_PROVIDERS = "Providers"
OUTPUT_UNIQUE_IDENTIFIER = "PluginUniqueIdentifier"

ALIAS_NAME = "live"


def join_providers(providers: Iterable[str]) -> str:
    """Providers as one tag or output value (space separated)."""
    return " ".join(providers)


def split_providers(value: str) -> list[str]:
    """Inverse of :func:`join_providers`; also accepts commas (hand-written stack outputs)."""
    return value.replace(",", " ").split()


# The daemon's ``PluginUniqueIdentifier`` parts (docs/plugin-package.md §2).
_AUTHOR = r"[a-z0-9_-]{1,64}"
_NAME = r"[a-z0-9_-]{1,255}"
VERSION_PATTERN = r"[0-9]{1,4}(?:\.[0-9]{1,4}){1,3}(?:-\w{1,16})?"
_CHECKSUM = r"[a-f0-9]{32,64}"
#: ``[author/]name:version@checksum`` (the author is optional for the daemon, always present here).
UNIQUE_IDENTIFIER_RE = re.compile(
    rf"^(?:(?P<author>{_AUTHOR})/)?(?P<name>{_NAME}):(?P<version>{VERSION_PATTERN})@(?P<checksum>{_CHECKSUM})$"
)
#: The daemon's serverless file name: the same parts joined with ``@``.
_FILENAME_RE = re.compile(
    rf"^(?P<author>{_AUTHOR})@(?P<name>{_NAME})@(?P<version>{VERSION_PATTERN})@(?P<checksum>{_CHECKSUM})\.difypkg$"
)


@dataclass(frozen=True, slots=True)
class PluginIdentity:
    """A plugin package's identity and the forms it takes: plugin id, unique identifier, the
    serverless file name (also ``str()``) and the function tags."""

    author: str
    name: str
    version: str
    checksum: str

    @classmethod
    def from_filename(cls, filename: str) -> PluginIdentity | None:
        """Parse ``<author>@<name>@<version>@<checksum>.difypkg``; None when it does not match."""
        match = _FILENAME_RE.match(filename)
        return cls(**match.groupdict()) if match else None

    @property
    def plugin_id(self) -> str:
        """``author/name``: what the host sends as ``X-Plugin-ID``."""
        return f"{self.author}/{self.name}"

    @property
    def unique_identifier(self) -> str:
        return f"{self.plugin_id}:{self.version}@{self.checksum}"

    @property
    def serverless_filename(self) -> str:
        return f"{self.author}@{self.name}@{self.version}@{self.checksum}.difypkg"

    def tags(self, providers: Iterable[str]) -> dict[str, str]:
        return identity_tags(
            plugin_id=self.plugin_id,
            unique_identifier=self.unique_identifier,
            checksum=self.checksum,
            providers=providers,
        )

    def __str__(self) -> str:
        return self.serverless_filename


@dataclass(frozen=True, slots=True)
class TaggedFunction:
    """What a managed function's tags say about it (see :func:`read_identity_tags`)."""

    plugin_id: str
    unique_identifier: str
    checksum: str
    providers: tuple[str, ...]
    #: The tag's AuthType value, ``""`` when absent.
    auth: str


def read_identity_tags(tags: Mapping[str, str]) -> TaggedFunction | None:
    """The identity tags of a function; None unless it is tagged as managed by dify-lambda."""
    if str(tags.get(TAG_MANAGED, "")).lower() != "true":
        return None
    return TaggedFunction(
        plugin_id=tags.get(TAG_PLUGIN_ID, ""),
        unique_identifier=tags.get(TAG_UNIQUE_IDENTIFIER, ""),
        checksum=tags.get(TAG_CHECKSUM, ""),
        providers=tuple(split_providers(tags.get(TAG_PROVIDERS, ""))),
        auth=tags.get(TAG_AUTH, ""),
    )


def identity_tags(
    *, plugin_id: str, unique_identifier: str, checksum: str, providers: Iterable[str]
) -> dict[str, str]:
    """The tags that identify a dify-lambda plugin function.

    ``TAG_AUTH`` is left to the caller: the deployer writes the literal AuthType, a SAM template a
    reference to its ``AuthType`` parameter.
    """
    return {
        TAG_MANAGED: "true",
        TAG_PLUGIN_ID: plugin_id,
        TAG_UNIQUE_IDENTIFIER: unique_identifier,
        TAG_CHECKSUM: checksum,
        TAG_PROVIDERS: join_providers(providers),
    }


# --- Actions -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One model action: its name, the model type it is sent with, and the host's dispatch path."""

    action: str
    model_type: str | None
    dispatch_path: str


MODEL_ACTIONS: dict[str, ActionSpec] = {
    spec.action: spec
    for spec in (
        ActionSpec("invoke_llm", "llm", "llm/invoke"),
        ActionSpec("get_llm_num_tokens", "llm", "llm/num_tokens"),
        ActionSpec("invoke_text_embedding", "text-embedding", "text_embedding/invoke"),
        ActionSpec("invoke_multimodal_embedding", "text-embedding", "multimodal_embedding/invoke"),
        ActionSpec("get_text_embedding_num_tokens", "text-embedding", "text_embedding/num_tokens"),
        ActionSpec("invoke_rerank", "rerank", "rerank/invoke"),
        ActionSpec("invoke_multimodal_rerank", "rerank", "multimodal_rerank/invoke"),
        ActionSpec("invoke_tts", "tts", "tts/invoke"),
        ActionSpec("get_tts_model_voices", "tts", "tts/model/voices"),
        ActionSpec("invoke_speech2text", "speech2text", "speech2text/invoke"),
        ActionSpec("invoke_moderation", "moderation", "moderation/invoke"),
        ActionSpec("validate_provider_credentials", None, "model/validate_provider_credentials"),
        ActionSpec("validate_model_credentials", None, "model/validate_model_credentials"),
        ActionSpec("get_ai_model_schemas", None, "model/schema"),
        ActionSpec("start_polling", "llm", "model/polling/start"),
        ActionSpec("check_polling", "llm", "model/polling/check"),
    )
}
ACTIONS_BY_DISPATCH_PATH: dict[str, ActionSpec] = {s.dispatch_path: s for s in MODEL_ACTIONS.values()}
#: Actions whose list inputs may be split into serial batches and merged (daemon behaviour).
BATCHABLE_ACTIONS = frozenset({"invoke_text_embedding", "get_text_embedding_num_tokens"})


# --- Request envelope ----------------------------------------------------------------------------


def new_session_id() -> str:
    return str(uuid.uuid4())


def build_envelope(
    action: str,
    data: dict[str, Any],
    *,
    user_id: str,
    session_id: str | None = None,
    access_type: str = "model",
) -> dict[str, Any]:
    """Build the request envelope exactly as the daemon does (``type``/``action`` inside ``data``)."""
    body = {"user_id": user_id, "type": access_type, "action": action, **data}
    return {
        "session_id": session_id or new_session_id(),
        "conversation_id": None,
        "message_id": None,
        "app_id": None,
        "endpoint_id": None,
        "context": {},
        "event": "request",
        "data": body,
    }


def encode_envelope(envelope: dict[str, Any]) -> bytes:
    """Compact JSON, as Go's encoder writes it (no spaces)."""
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


# --- Event lines ---------------------------------------------------------------------------------

SessionMessageType = Literal["stream", "end", "error", "invoke"]


def session_line(session_id: str, message_type: SessionMessageType, data: Any) -> bytes:
    """One session event line plus its delimiter: compact, key order ``event, session_id, data``."""
    doc = {"event": "session", "session_id": session_id, "data": {"type": message_type, "data": data}}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode() + LINE_DELIMITER


def end_line(session_id: str) -> bytes:
    return session_line(session_id, "end", {})


def error_line(session_id: str, error_type: str, message: str, args: dict[str, Any] | None = None) -> bytes:
    return session_line(
        session_id, "error", {"error_type": error_type, "message": message, "args": args or {}}
    )
