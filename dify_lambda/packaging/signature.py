"""Package signatures, as the official signer writes them and the daemon verifies them
(docs/plugin-package.md §3: what is signed, the algorithm, the zip comment).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from dify_lambda.packaging.errors import KeyFileError, PackageError, SignatureError
from dify_lambda.packaging.zipread import write_zip

if TYPE_CHECKING:
    from dify_lambda.packaging.reader import PluginPackage

__all__ = [
    "AUTHORIZED_CATEGORIES",
    "VERIFICATION_FILE",
    "SignatureInfo",
    "VerifiedSignature",
    "load_private_key",
    "load_public_key",
    "parse_comment",
    "sign_package",
    "signed_data",
    "verify_package",
]

VERIFICATION_FILE = ".verification.dify.json"
AUTHORIZED_CATEGORIES = ("langgenius", "partner", "community")
#: What the daemon assumes for a verified package without a verification file (historical).
DEFAULT_CATEGORY = "langgenius"


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """The parsed zip comment of a signed package."""

    signature: bytes
    time: int


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature that verified, with the category the package claims."""

    time: int
    authorized_category: str
    #: False when the package has no verification file (category then defaults to langgenius).
    verification_file: bool
    key_index: int


def parse_comment(comment: bytes) -> SignatureInfo | None:
    """The signature in a zip comment, or None when the comment holds none (empty or other text)."""
    if not comment:
        return None
    try:
        doc = json.loads(comment.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nesting ~1,000 deep
        return None
    if not isinstance(doc, dict):
        return None
    sig, when = doc.get("signature"), doc.get("time")
    if not isinstance(sig, str) or not isinstance(when, int) or isinstance(when, bool):
        return None
    try:
        raw = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        return None
    return SignatureInfo(signature=raw, time=when)


def signed_data(contents: Iterable[bytes], when: int) -> bytes:
    """The byte string that is signed: entry digests in archive order, then the decimal time."""
    return b"".join(hashlib.sha256(c).digest() for c in contents) + str(when).encode("ascii")


def load_public_key(pem: bytes, source: str = "key") -> rsa.RSAPublicKey:
    """An RSA public key from PEM ``PUBLIC KEY`` (SPKI) or ``RSA PUBLIC KEY`` (PKCS#1)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{source}: not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFileError(f"{source}: not an RSA public key")
    return key


def load_private_key(pem: bytes, source: str = "key") -> rsa.RSAPrivateKey:
    """An unencrypted RSA private key from PEM ``RSA PRIVATE KEY`` or ``PRIVATE KEY``."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(f"{source}: not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{source}: not an RSA private key")
    return key


def _category(pkg: PluginPackage) -> tuple[str, bool]:
    if VERIFICATION_FILE not in pkg.entries:
        return DEFAULT_CATEGORY, False
    try:
        doc = json.loads(pkg.read(VERIFICATION_FILE).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SignatureError(f"{pkg.name}: {VERIFICATION_FILE} is not valid JSON") from None
    category = doc.get("authorized_category") if isinstance(doc, dict) else None
    if category not in AUTHORIZED_CATEGORIES:
        raise SignatureError(
            f"{pkg.name}: {VERIFICATION_FILE} authorized_category must be one of "
            f"{', '.join(AUTHORIZED_CATEGORIES)}"
        )
    return str(category), True


def verify_package(pkg: PluginPackage, keys: Sequence[rsa.RSAPublicKey]) -> VerifiedSignature:
    """Check the package signature against each key in turn; raise :class:`SignatureError` if none fits."""
    if not keys:
        raise KeyFileError("no public key given")
    info = pkg.signature
    if info is None:
        why = "not signed (empty zip comment)" if not pkg.comment else "zip comment is not a signature"
        raise SignatureError(f"{pkg.name}: {why}")
    data = signed_data((pkg.read(e) for e in pkg.zip_order), info.time)
    for index, key in enumerate(keys):
        try:
            key.verify(info.signature, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        category, present = _category(pkg)
        return VerifiedSignature(
            time=info.time, authorized_category=category, verification_file=present, key_index=index
        )
    plural = "any of the given keys" if len(keys) > 1 else "the given key"
    raise SignatureError(f"{pkg.name}: signature does not verify with {plural}")


def sign_package(
    src_bytes: bytes,
    private_key_pem: bytes,
    category: str | None,
    *,
    now: int | None = None,
) -> bytes:
    """Sign a package like ``dify signature sign``: re-zip the entries in order, append the
    verification file when ``category`` is given, sign, and store the signature in the comment.

    An existing verification file is dropped first so re-signing never duplicates it. With
    ``category=None`` no verification file is written (the daemon then reads it as langgenius).
    """
    from dify_lambda.packaging.reader import PluginPackage

    if category is not None and category not in AUTHORIZED_CATEGORIES:
        raise PackageError(f"category must be one of {', '.join(AUTHORIZED_CATEGORIES)}, not {category!r}")
    key = load_private_key(private_key_pem, "private key")
    pkg = PluginPackage.from_bytes(src_bytes)
    entries = [(e, pkg.read(e)) for e in pkg.zip_order if e != VERIFICATION_FILE]
    if category is not None:
        body = json.dumps({"authorized_category": category}, separators=(",", ":")).encode()
        entries.append((VERIFICATION_FILE, body))
    when = int(time.time()) if now is None else now
    signature = key.sign(signed_data((c for _, c in entries), when), padding.PKCS1v15(), hashes.SHA256())
    comment = {"signature": base64.b64encode(signature).decode("ascii"), "time": when}
    return write_zip(entries, json.dumps(comment, separators=(",", ":")).encode())
