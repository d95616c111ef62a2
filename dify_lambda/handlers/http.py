"""Transport-neutral HTTP request/response types used by every handler transport.

The application core (``app.py``) maps an :class:`HttpRequest` to an :class:`HttpResponse` whose
body is an iterator of byte chunks; each transport (streaming Runtime API loop, buffered
``lambda_handler``, local emulator) decides how to deliver those chunks. Streaming transports must
write and flush each chunk the moment the iterator yields it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dify_lambda.handlers.errors import InvalidRequestError, PayloadTooLargeError

__all__ = ["HttpRequest", "HttpResponse", "from_function_url_event"]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    #: Raw path as received, e.g. ``/invoke`` or ``/<secret>/invoke``.
    path: str
    #: Raw query string without the leading ``?``.
    query: str
    #: Header names lowercased; repeated headers comma-joined (function URL semantics).
    headers: Mapping[str, str]
    body: bytes
    request_id: str = ""
    #: ``requestContext.authorizer.iam`` when the URL uses AWS_IAM, else None.
    iam: Mapping[str, Any] | None = None


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    #: Body chunks, produced lazily; an empty chunk means "nothing to send".
    body: Iterator[bytes]
    cookies: list[str] = field(default_factory=list)
    #: Called once after the body has been fully delivered (or delivery failed); used to
    #: flush metrics after the stream ends. Transports must call it exactly once.
    on_close: Any = None

    def close(self) -> None:
        callback, self.on_close = self.on_close, None
        if callback is not None:
            callback()


def from_function_url_event(event: Mapping[str, Any], *, max_body_bytes: int) -> HttpRequest:
    """Turn a function URL (payload format 2.0) event into an :class:`HttpRequest`.

    Honours ``isBase64Encoded``; refuses an oversized (413) or undecodable (400) body.
    """
    if not isinstance(event, Mapping):
        raise InvalidRequestError("event is not a JSON object")
    ctx = event.get("requestContext") or {}
    http = ctx.get("http") or {} if isinstance(ctx, Mapping) else {}
    method = str(http.get("method") or event.get("httpMethod") or "GET").upper()
    path = str(event.get("rawPath") or http.get("path") or "/")
    query = str(event.get("rawQueryString") or "")
    raw_headers = event.get("headers") or {}
    if not isinstance(raw_headers, Mapping):
        raise InvalidRequestError("event field 'headers' is not an object")
    headers = {str(k).lower(): str(v) for k, v in raw_headers.items()}
    raw_body = event.get("body")
    body: bytes
    if raw_body is None:
        body = b""
    elif not isinstance(raw_body, str):
        raise InvalidRequestError("event field 'body' is not a string")
    elif event.get("isBase64Encoded"):
        # base64 grows the payload by 4/3: check the decoded size bound before decoding.
        if len(raw_body) * 3 // 4 > max_body_bytes + 3:
            raise PayloadTooLargeError(f"request body exceeds {max_body_bytes} bytes")
        try:
            body = base64.b64decode(raw_body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError("request body is marked base64 but is not valid base64") from None
    else:
        # A lone surrogate in the event's body text stays bytes that are not UTF-8, which the
        # envelope parser refuses with a 400 (a plain encode() would raise: a 500).
        body = raw_body.encode("utf-8", "surrogatepass")
    if len(body) > max_body_bytes:
        raise PayloadTooLargeError(f"request body of {len(body)} bytes exceeds {max_body_bytes} bytes")
    authorizer = ctx.get("authorizer") if isinstance(ctx, Mapping) else None
    iam = authorizer.get("iam") if isinstance(authorizer, Mapping) else None
    return HttpRequest(
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=body,
        request_id=str(ctx.get("requestId") or "") if isinstance(ctx, Mapping) else "",
        iam=iam if isinstance(iam, Mapping) else None,
    )
