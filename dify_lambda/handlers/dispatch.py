"""Parsing the ``POST /invoke`` envelope and the seam to the plugin.

:class:`PluginRuntime` is the small protocol the application core talks to; the real one
(:mod:`dify_lambda.handlers.plugin`) runs the SDK inside the plugin process, unit tests use a fake.
Everything here is plain Python (no ``dify_plugin``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dify_lambda import wire
from dify_lambda.handlers.errors import InvalidRequestError, UnknownActionError

__all__ = ["Invocation", "Outcome", "PluginRuntime", "parse_envelope"]

_OPTIONAL_STRINGS = ("conversation_id", "message_id", "app_id", "endpoint_id")
#: A ``\\uD800``-``\\uDFFF`` escape: the only way a lone surrogate gets into decoded JSON from UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


@dataclass(frozen=True, slots=True)
class Invocation:
    """One validated request envelope (routing keys checked, action fields not yet)."""

    session_id: str
    action: str
    data: dict[str, Any]
    conversation_id: str | None = None
    message_id: str | None = None
    app_id: str | None = None
    endpoint_id: str | None = None
    context: dict[str, Any] | None = None


@dataclass(slots=True)
class Outcome:
    """What the runtime reports about a finished stream (for logs and metrics)."""

    #: ``error_type`` of the in-band session error, if the plugin raised.
    error_type: str | None = None


class PluginRuntime(Protocol):
    """The loaded plugin, as seen by the application core."""

    @property
    def plugin_id(self) -> str: ...

    def prepare(self, action: str, data: dict[str, Any]) -> object:
        """Validate ``data`` against the action's SDK request model.

        Raises :class:`InvalidRequestError` naming the first bad field path.
        """
        ...

    def run(self, invocation: Invocation, prepared: object, outcome: Outcome) -> Iterator[bytes]:
        """Yield the event lines (each with its ``\\n\\n``) lazily, as the plugin produces them.

        Always ends with the session ``end`` line; a plugin exception becomes a session ``error``
        line first (recorded in ``outcome``).
        """
        ...


def _kind(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def _load_json(body: bytes) -> Any:
    if not body.strip():
        raise InvalidRequestError("request body is empty; expected a JSON request envelope")
    try:
        # RFC 8259: JSON on the wire is UTF-8 (json.loads(bytes) would also guess UTF-16/32).
        doc = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidRequestError("request body is not UTF-8 encoded JSON") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidRequestError("request body nests JSON arrays or objects too deeply") from None
    if _SURROGATE_ESCAPE.search(body):
        _check_encodable(doc)
    return doc


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_encodable(doc: Any) -> None:
    """Refuse strings holding a lone surrogate: no answer line that echoes them could be UTF-8."""
    if _encodable(json.dumps(doc, ensure_ascii=False)):
        return
    fields = ("session_id", *_OPTIONAL_STRINGS) if isinstance(doc, dict) else ()
    bad = [k for k in fields if isinstance(doc.get(k), str) and not _encodable(doc[k])]
    where = f"field '{bad[0]}'" if bad else "a string"
    raise InvalidRequestError(
        f"request body has {where} with a lone UTF-16 surrogate escape, which is not valid Unicode"
    )


def _require_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    if key not in obj:
        raise InvalidRequestError(f"field '{where}{key}' is missing")
    value = obj[key]
    if not isinstance(value, str):
        raise InvalidRequestError(f"field '{where}{key}' must be a string, got {_kind(value)}")
    return value


def parse_envelope(body: bytes) -> Invocation:
    """Check the envelope and its routing keys; the action's own fields are checked by the runtime."""
    envelope = _load_json(body)
    if not isinstance(envelope, dict):
        raise InvalidRequestError(f"request body must be a JSON object, got {_kind(envelope)}")
    event = _require_str(envelope, "event", "")
    if event != "request":
        raise InvalidRequestError("field 'event' must be \"request\"")
    session_id = _require_str(envelope, "session_id", "")
    if not session_id:
        raise InvalidRequestError("field 'session_id' is empty")
    data = envelope.get("data")
    if not isinstance(data, dict):
        detail = "is missing" if "data" not in envelope else f"must be an object, got {_kind(data)}"
        raise InvalidRequestError(f"field 'data' {detail}")
    optional: dict[str, str | None] = {}
    for key in _OPTIONAL_STRINGS:
        value = envelope.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidRequestError(f"field '{key}' must be a string or null, got {_kind(value)}")
        optional[key] = value
    context = envelope.get("context")
    if context is not None and not isinstance(context, dict):
        raise InvalidRequestError(f"field 'context' must be an object or null, got {_kind(context)}")
    access_type = _require_str(data, "type", "data.")
    if access_type != "model":
        # Never the value itself: messages name fields, not what a caller put in them.
        raise UnknownActionError("data.type is not served: this handler runs model plugins (type 'model')")
    action = _require_str(data, "action", "data.")
    if action not in wire.MODEL_ACTIONS:
        raise UnknownActionError(
            f"data.action is not a model action (expected one of: {', '.join(sorted(wire.MODEL_ACTIONS))})"
        )
    return Invocation(session_id=session_id, action=action, data=data, context=context, **optional)
