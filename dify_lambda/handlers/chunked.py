"""HTTP/1.1 chunked transfer coding: the one writer and the one reader of the project.

The handler writes its streamed Runtime API response with it; the emulator, the connector and
the test fake of the Runtime API read or write chunked bodies with it. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Protocol

__all__ = [
    "LAST_CHUNK",
    "BodyTooLarge",
    "ChunkError",
    "ChunkedReader",
    "Truncated",
    "encode_chunk",
    "last_chunk",
]

#: The terminating chunk of a body without trailers.
LAST_CHUNK = b"0\r\n\r\n"
MAX_LINE = 65536
#: What AWS's own clients send: lowercase hex, no chunk extensions.
_STRICT_SIZE = re.compile(rb"^([0-9a-f]+)\r\n$")


def encode_chunk(data: bytes) -> bytes:
    """One chunk: lowercase hex size, no extensions. Empty data encodes to nothing."""
    if not data:
        return b""
    return b"%x\r\n%s\r\n" % (len(data), data)


def last_chunk(trailers: Mapping[str, str]) -> bytes:
    """The terminating chunk with its trailer fields (ASCII)."""
    fields = "".join(f"{name}: {value}\r\n" for name, value in trailers.items())
    return f"0\r\n{fields}\r\n".encode("ascii")


class _Readable(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...
    def read(self, size: int = -1, /) -> bytes: ...


class ChunkError(ValueError):
    """The chunked body is malformed."""


class Truncated(ChunkError):
    """The connection closed before the terminating chunk."""


class BodyTooLarge(ChunkError):
    """The body grew past the reader's ``max_bytes``."""


class ChunkedReader:
    """Iterate the chunks of one chunked body read from ``rfile``; then ``trailers`` holds the
    trailer fields (lowercase names).

    ``strict`` accepts only what AWS's own clients send (lowercase hex sizes without extensions,
    well-formed trailer lines, a complete trailer section); otherwise the reader is as lenient as
    an HTTP server usually is.
    """

    def __init__(self, rfile: _Readable, *, strict: bool = False, max_bytes: int | None = None) -> None:
        self._rfile, self._strict, self._max = rfile, strict, max_bytes
        self.trailers: dict[str, str] = {}

    def __iter__(self) -> Iterator[bytes]:
        total = 0
        while True:
            size = self._size(self._rfile.readline(MAX_LINE))
            if size == 0:
                break
            total += size
            if self._max is not None and total > self._max:
                raise BodyTooLarge("the chunked body is too large")
            data = self._rfile.read(size)
            if len(data) != size or self._rfile.read(2) != b"\r\n":
                raise ChunkError("chunk data shorter than its size or not followed by CRLF")
            yield data
        self._read_trailers()

    def _size(self, line: bytes) -> int:
        if not line:
            raise Truncated("unterminated chunked body (connection closed before the 0 chunk)")
        if self._strict:
            match = _STRICT_SIZE.match(line)
            if not match:
                raise ChunkError(f"malformed chunk size line {line[:40]!r}")
            return int(match.group(1), 16)
        try:
            return int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ChunkError(f"malformed chunk size line {line[:40]!r}") from None

    def _read_trailers(self) -> None:
        while True:
            line = self._rfile.readline(MAX_LINE)
            if not line and self._strict:
                raise ChunkError("connection closed inside the trailer section")
            if line == b"\r\n" or (not self._strict and line in (b"\n", b"")):
                return
            name, sep, value = line.decode("latin-1").rstrip("\r\n").partition(":")
            if not sep and self._strict:
                raise ChunkError(f"malformed trailer line {line[:60]!r}")
            self.trailers[name.strip().lower()] = value.strip()
