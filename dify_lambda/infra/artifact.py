"""What the deployer needs from a build: the zip, the plugin identity and the function spec.

The builder (``dify_lambda.packaging.build``) resolves one
:class:`~dify_lambda.packaging.spec.FunctionSpec` and records it in ``build-report.json``; the
deployer creates the function from that spec (:mod:`dify_lambda.infra.builder` reads it).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dify_lambda import wire
from dify_lambda.packaging.spec import FunctionSpec

__all__ = ["BuiltArtifact", "Progress", "code_sha256", "no_progress"]

#: A progress callback: receives one short human-readable line per step.
Progress = Callable[[str], None]


def no_progress(_line: str) -> None:
    """A progress callback that ignores everything."""


def code_sha256(path: Path) -> str:
    """Base64 SHA-256 of a file: the form Lambda reports as ``CodeSha256``."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


@dataclass(frozen=True, slots=True)
class BuiltArtifact:
    """A Lambda zip, the identity of the plugin inside it and the function it is built for."""

    path: Path
    plugin_id: str
    version: str
    checksum: str
    spec: FunctionSpec
    providers: tuple[str, ...] = ()

    @property
    def identity(self) -> wire.PluginIdentity:
        author, _, name = self.plugin_id.partition("/")
        return wire.PluginIdentity(author, name, self.version, self.checksum)

    @property
    def unique_identifier(self) -> str:
        return self.identity.unique_identifier

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def code_sha256(self) -> str:
        return code_sha256(self.path)
