"""The serverless connector's wire formats, as the Dify plugin daemon reads them (docs/connector.md §6).

Launch progress is a stream of ``data: {"Stage","State","Obj","Message"}`` lines, each followed by
a blank line; the run-success ``Message`` is ``endpoint=<url>,name=<function>,id=<id>`` parsed as
comma-separated ``key=value`` pairs, so no value may contain a comma.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from dify_lambda.infra.errors import ConnectorError

__all__ = [
    "PONG",
    "Stage",
    "State",
    "chunk",
    "error_body",
    "instance_item",
    "instances_body",
    "run_success_message",
]

Stage = Literal["healthz", "start", "build", "run", "end"]
State = Literal["running", "success", "failed"]
#: The ping answer: the JSON string "pong", quotes included.
PONG = json.dumps("pong").encode()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def chunk(stage: Stage, state: State, message: str, obj: str = "") -> bytes:
    """One launch line: ``data: {...}`` plus a blank line (SSE framing; the daemon strips ``data:``)."""
    # A line break inside the message would split the JSON over two lines the daemon then skips.
    flat = " ".join(message.split())
    return b"data: " + _json({"Stage": stage, "State": state, "Obj": obj, "Message": flat}) + b"\n\n"


def run_success_message(endpoint: str, name: str, ident: str) -> str:
    """``endpoint=<url>,name=<fn>,id=<id>``; refuses values the daemon's parser would split."""
    for key, value in (("endpoint", endpoint), ("name", name), ("id", ident)):
        if "," in value or not value:
            raise ConnectorError(f"launch result field {key!r} is empty or contains a comma")
    return f"endpoint={endpoint},name={name},id={ident}"


def instance_item(ident: str, name: str, endpoint: str, resource_name: str) -> dict[str, Any]:
    """One ``Items`` entry; the daemon uses ``Name``, ``Endpoint`` and ``ResourceName`` of the first."""
    return {
        "ID": ident,
        "Name": name,
        "Endpoint": endpoint,
        "ResourceName": resource_name,
        "Status": {"State": "running"},
    }


def instances_body(items: list[dict[str, Any]], error: str = "") -> bytes:
    return _json({"error": error, "Items": items})


def error_body(message: str) -> bytes:
    return _json({"error": message})
