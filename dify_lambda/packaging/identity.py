"""Checksum and identity of a package, computed exactly as the plugin daemon does.

Checksum (daemon ``decoder/checksum.go``): over the file entries sorted by path, concatenate the raw
32-byte ``sha256(path)`` and ``sha256(content)`` of each, hash the whole, print lowercase hex.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

__all__ = [
    "UNIQUE_IDENTIFIER_RE",
    "compute_checksum",
    "plugin_id",
    "serverless_filename",
    "unique_identifier",
]

#: The daemon's ``PluginUniqueIdentifier`` pattern (author optional there, always present here).
UNIQUE_IDENTIFIER_RE = re.compile(
    r"^(?:([a-z0-9_-]{1,64})\/)?([a-z0-9_-]{1,255}):([0-9]{1,4})(\.[0-9]{1,4}){1,3}(-\w{1,16})?@[a-f0-9]{32,64}$"
)


def compute_checksum(files: Iterable[tuple[str, bytes]]) -> str:
    """Daemon checksum of ``(path, content)`` pairs; paths use ``/``, order does not matter."""
    digests = sorted((path, hashlib.sha256(content).digest()) for path, content in files)
    outer = hashlib.sha256()
    for path, content_digest in digests:
        outer.update(hashlib.sha256(path.encode("utf-8")).digest())
        outer.update(content_digest)
    return outer.hexdigest()


def plugin_id(author: str, name: str) -> str:
    """``author/name``: what the host sends as ``X-Plugin-ID``."""
    return f"{author}/{name}"


def unique_identifier(author: str, name: str, version: str, checksum: str) -> str:
    """``author/name:version@checksum``."""
    return f"{author}/{name}:{version}@{checksum}"


def serverless_filename(author: str, name: str, version: str, checksum: str) -> str:
    """``author@name@version@checksum.difypkg``: the name the daemon gives a connector."""
    return f"{author}@{name}@{version}@{checksum}.difypkg"
