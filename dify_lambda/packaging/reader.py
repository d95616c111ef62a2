"""Read and validate a ``.difypkg`` (or a plugin source directory) without trusting it.

Every consumer (inspect, verify, the Lambda builder, the connector) opens packages through
:class:`PluginPackage`. Construction either succeeds with a fully validated package held in memory
or raises one :class:`~dify_lambda.errors.PackageError` subclass with a one-line message.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dify_lambda.packaging.contents import validate_contents
from dify_lambda.packaging.errors import ManifestError, PackageError, PackageTooLargeError, UnsafePackageError
from dify_lambda.packaging.identity import compute_checksum
from dify_lambda.packaging.limits import DEFAULT_LIMITS, ReadLimits
from dify_lambda.packaging.providers import ModelProviderSpec
from dify_lambda.packaging.signature import parse_comment
from dify_lambda.packaging.source import collect_directory
from dify_lambda.packaging.zipread import read_zip
from dify_lambda.wire import UNIQUE_IDENTIFIER_RE, PluginIdentity

__all__ = ["ModelProviderSpec", "PluginPackage", "ReadLimits"]


class PluginPackage:
    """A validated plugin package: manifest, providers, identity and file contents.

    Examples
    --------
    >>> pkg = PluginPackage.open("author-name.difypkg")  # doctest: +SKIP
    >>> pkg.unique_identifier  # doctest: +SKIP
    'author/name:0.0.1@3f2a...'
    """

    def __init__(
        self,
        *,
        name: str,
        files: dict[str, bytes],
        order: tuple[str, ...],
        comment: bytes,
        limits: ReadLimits,
    ) -> None:
        """Validate ``files``; prefer :meth:`open`, :meth:`from_bytes` or :meth:`from_directory`."""
        contents = validate_contents(files, name, limits)
        self.name = name
        self._files = files
        self.manifest = contents.manifest
        self.providers = contents.providers
        #: Plugin kinds present but not served (``tools``, ``endpoints``, ...) -> their YAML paths.
        self.other_kinds = contents.other_kinds
        #: Accepted but suspicious, one line each; ``inspect`` and ``build`` print them.
        self.warnings = contents.warnings
        self.entries = sorted(files)
        #: File entries in archive order (the order signatures are computed in).
        self.zip_order = order
        self.uncompressed_size = sum(len(c) for c in files.values())
        self.comment = comment
        self.signature = parse_comment(comment)
        m = self.manifest
        self.checksum = compute_checksum(files.items())
        self.identity = PluginIdentity(m.author, m.name, m.version, self.checksum)
        self.plugin_id = self.identity.plugin_id
        self.unique_identifier = self.identity.unique_identifier
        self.serverless_filename = self.identity.serverless_filename
        if not UNIQUE_IDENTIFIER_RE.match(self.unique_identifier):
            raise ManifestError("manifest.yaml: author/name/version give an invalid unique identifier")

    # --- constructors ----------------------------------------------------------------------------

    @classmethod
    def from_bytes(
        cls, data: bytes, *, name: str = "<bytes>", limits: ReadLimits = DEFAULT_LIMITS
    ) -> PluginPackage:
        """Read a package held in memory."""
        contents = read_zip(data, name, limits)
        return cls(
            name=name, files=contents.files, order=contents.order, comment=contents.comment, limits=limits
        )

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, limits: ReadLimits = DEFAULT_LIMITS) -> PluginPackage:
        """Read a ``.difypkg`` file (refusing anything but a regular file within a sane size)."""
        p = Path(path)
        try:
            # O_NONBLOCK: opening a FIFO must not hang; it is refused below like any non-file.
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise PackageError(f"{p}: no such file") from None
        except OSError as exc:
            raise PackageError(f"{p}: cannot open ({exc.strerror or type(exc).__name__})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePackageError(f"{p}: not a regular file")
            # A valid package is at most its uncompressed cap, plus deflate's worst-case growth and
            # two headers with a maximal name per entry; anything bigger is refused unread.
            cap = int(limits.max_uncompressed_bytes * 1.01) + 2200 * limits.max_entries + 2 * 65_536
            if st.st_size > cap:
                raise PackageTooLargeError(f"{p}: {st.st_size} bytes on disk, over the limit of {cap} bytes")
            with os.fdopen(os.dup(fd), "rb") as fh:
                data = fh.read(cap + 1)
        finally:
            os.close(fd)
        return cls.from_bytes(data, name=str(p), limits=limits)

    @classmethod
    def from_directory(
        cls, path: str | os.PathLike[str], *, limits: ReadLimits = DEFAULT_LIMITS
    ) -> PluginPackage:
        """Read a plugin source directory, applying the packager's ignore rules.

        The result has the files ``dify-lambda package`` would include, except a
        ``requirements.txt`` the packager generates from ``uv.lock`` (so the checksum then differs).
        """
        source = collect_directory(path, limits=limits)
        order = tuple(source.files)
        return cls(name=str(path), files=source.files, order=order, comment=b"", limits=limits)

    # --- access ----------------------------------------------------------------------------------

    def read(self, name: str) -> bytes:
        """The bytes of one file entry."""
        try:
            return self._files[name]
        except KeyError:
            raise PackageError(f"{self.name}: no entry {name!r}") from None

    def files(self) -> dict[str, bytes]:
        """A copy of ``path -> bytes`` for every file entry."""
        return dict(self._files)

    def extract_to(self, dest: str | os.PathLike[str]) -> None:
        """Write every file under ``dest`` (created if needed), never outside it, never through a link.

        Existing paths are checked before anything is written, so a refused extraction leaves
        ``dest`` as it was.
        """
        root = Path(dest)
        root.mkdir(parents=True, exist_ok=True)
        if root.is_symlink():
            raise UnsafePackageError(f"{root}: destination is a symlink")
        for entry in self.entries:
            self._check_target(root, entry)
        for entry in self.entries:
            parts = entry.split("/")
            directory = root
            for part in parts[:-1]:
                directory = directory / part
                if not directory.is_dir():
                    directory.mkdir(0o755)
            self._check_target(root, entry)  # again, now that the directories exist
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
            try:
                fd = os.open(directory / parts[-1], flags, 0o644)
            except OSError as exc:
                raise UnsafePackageError(f"{root}: cannot write {entry!r} ({exc.strerror})") from None
            with os.fdopen(fd, "wb") as fh:
                fh.write(self._files[entry])

    @staticmethod
    def _check_target(root: Path, entry: str) -> None:
        parts = entry.split("/")
        path = root
        for depth, part in enumerate(parts):
            path = path / part
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return
            last = depth == len(parts) - 1
            if stat.S_ISLNK(st.st_mode):
                raise UnsafePackageError(f"{root}: {'/'.join(parts[: depth + 1])} exists and is a symlink")
            if not last and not stat.S_ISDIR(st.st_mode):
                raise UnsafePackageError(
                    f"{root}: {'/'.join(parts[: depth + 1])} exists and is not a directory"
                )
            if last and not stat.S_ISREG(st.st_mode):
                raise UnsafePackageError(f"{root}: {entry} exists and is not a regular file")

    def __repr__(self) -> str:
        return f"PluginPackage({self.unique_identifier!r})"
