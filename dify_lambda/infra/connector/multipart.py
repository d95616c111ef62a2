"""A strict ``multipart/form-data`` parser for the launch request (``cgi`` is gone in Python 3.13).

The daemon's Go client writes the form with ``mime/multipart``: CRLF line breaks, a
``Content-Disposition: form-data; name="..."[; filename="..."]`` header per part, quotes and
backslashes in parameters escaped with a backslash. Part bodies are taken byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dify_lambda.infra.errors import ConnectorError

__all__ = ["FilePart", "Form", "boundary_of", "parse_form"]

_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)=(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))')
_MAX_PARTS = 16
_MAX_HEADER_BYTES = 8192


@dataclass(frozen=True, slots=True)
class FilePart:
    filename: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Form:
    fields: dict[str, str]
    files: dict[str, FilePart]


def _params(value: str) -> tuple[str, dict[str, str]]:
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(";" + rest):
        raw = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", raw)
    return head.strip().lower(), params


def boundary_of(content_type: str) -> str:
    """The boundary of a ``multipart/form-data`` content type; ConnectorError otherwise."""
    kind, params = _params(content_type or "")
    if kind != "multipart/form-data":
        raise ConnectorError("Content-Type must be multipart/form-data")
    boundary = params.get("boundary", "")
    if not 1 <= len(boundary) <= 70:
        raise ConnectorError("Content-Type multipart/form-data has no valid boundary")
    return boundary


def _headers(block: bytes) -> dict[str, str]:
    if len(block) > _MAX_HEADER_BYTES:
        raise ConnectorError("a form part has oversized headers")
    out: dict[str, str] = {}
    for line in block.decode("utf-8", "replace").split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ConnectorError("a form part has a malformed header line")
        out[name.strip().lower()] = value.strip()
    return out


def parse_form(content_type: str, body: bytes) -> Form:
    """Split ``body`` into text fields and file parts; errors say what is malformed, never the content."""
    delimiter = b"--" + boundary_of(content_type).encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise ConnectorError("form body does not contain its boundary")
    pos = start + len(delimiter)
    fields: dict[str, str] = {}
    files: dict[str, FilePart] = {}
    for _ in range(_MAX_PARTS + 1):
        if body.startswith(b"--", pos):
            return Form(fields=fields, files=files)
        if not body.startswith(b"\r\n", pos):
            raise ConnectorError("form body is malformed after a boundary")
        end = body.find(b"\r\n" + delimiter, pos + 2)
        if end < 0:
            raise ConnectorError("form body is truncated (no closing boundary)")
        part = body[pos + 2 : end]
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            head, data = (b"", part[2:]) if part.startswith(b"\r\n") else (part, b"")
            if head:
                raise ConnectorError("a form part has no blank line after its headers")
        disposition, params = _params(_headers(head).get("content-disposition", ""))
        name = params.get("name")
        if disposition != "form-data" or not name:
            raise ConnectorError("a form part lacks Content-Disposition: form-data with a name")
        if name in fields or name in files:
            raise ConnectorError(f"form field {name!r} appears more than once")
        if "filename" in params:
            files[name] = FilePart(filename=params["filename"], data=data)
        else:
            try:
                fields[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise ConnectorError(f"form field {name!r} is not UTF-8 text") from None
        pos = end + 2 + len(delimiter)
    raise ConnectorError(f"form has more than {_MAX_PARTS} parts")
