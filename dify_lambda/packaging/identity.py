"""The checksum of a package, computed exactly as the plugin daemon does (docs/plugin-package.md §2);
its identity forms are ``dify_lambda.wire.PluginIdentity``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["compute_checksum"]


def compute_checksum(files: Iterable[tuple[str, bytes]]) -> str:
    """Daemon checksum of ``(path, content)`` pairs; paths use ``/``, order does not matter."""
    digests = sorted((path, hashlib.sha256(content).digest()) for path, content in files)
    outer = hashlib.sha256()
    for path, content_digest in digests:
        outer.update(hashlib.sha256(path.encode("utf-8")).digest())
        outer.update(content_digest)
    return outer.hexdigest()
