"""Signing and verification (docs/plugin-package.md §3). The signed data is rebuilt here from the spec:
sha256 of each entry in archive order, then the decimal time."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from support.pkgfactory import build_zip, good_package, plugin_files

from dify_lambda.errors import PackageError, SignatureError
from dify_lambda.packaging.errors import KeyFileError
from dify_lambda.packaging.reader import PluginPackage
from dify_lambda.packaging.signature import (
    VERIFICATION_FILE,
    load_private_key,
    load_public_key,
    sign_package,
    verify_package,
)

WHEN = 1744632035


def entries_in_order(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def test_signed_package_layout_and_signature_by_hand(rsa_keys: tuple[bytes, bytes]) -> None:
    private, public = rsa_keys
    signed = sign_package(good_package(), private, "partner", now=WHEN)
    entries = entries_in_order(signed)
    # entries keep their order; the verification file is appended last
    assert [p for p, _ in entries] == [*sorted(plugin_files()), VERIFICATION_FILE]
    assert entries[-1][1] == b'{"authorized_category":"partner"}'
    with zipfile.ZipFile(io.BytesIO(signed)) as zf:
        comment = zf.comment
    doc = json.loads(comment)
    assert list(doc) == ["signature", "time"]
    assert doc["time"] == WHEN
    assert comment == json.dumps(doc, separators=(",", ":")).encode()
    data = b"".join(hashlib.sha256(body).digest() for _, body in entries) + str(WHEN).encode()
    key = serialization.load_pem_public_key(public)
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(base64.b64decode(doc["signature"]), data, padding.PKCS1v15(), hashes.SHA256())


def test_verify_roundtrip(rsa_keys: tuple[bytes, bytes]) -> None:
    private, public = rsa_keys
    pkg = PluginPackage.from_bytes(sign_package(good_package(), private, "community", now=WHEN))
    result = verify_package(pkg, [load_public_key(public)])
    assert (result.time, result.authorized_category, result.verification_file, result.key_index) == (
        WHEN,
        "community",
        True,
        0,
    )


def test_no_verification_file_means_langgenius(rsa_keys: tuple[bytes, bytes]) -> None:
    private, public = rsa_keys
    signed = sign_package(good_package(), private, None, now=WHEN)
    pkg = PluginPackage.from_bytes(signed)
    assert VERIFICATION_FILE not in pkg.entries
    result = verify_package(pkg, [load_public_key(public)])
    assert result.authorized_category == "langgenius"
    assert not result.verification_file


def test_spki_public_key_and_second_key(rsa_keys: tuple[bytes, bytes]) -> None:
    private, _ = rsa_keys
    spki = (
        load_private_key(private)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert spki.startswith(b"-----BEGIN PUBLIC KEY-----")
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    pkg = PluginPackage.from_bytes(sign_package(good_package(), private, "partner", now=WHEN))
    assert verify_package(pkg, [other, load_public_key(spki)]).key_index == 1


def test_wrong_key_fails(rsa_keys: tuple[bytes, bytes]) -> None:
    private, _ = rsa_keys
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    pkg = PluginPackage.from_bytes(sign_package(good_package(), private, "partner", now=WHEN))
    with pytest.raises(SignatureError, match="signature does not verify with the given key"):
        verify_package(pkg, [other])


def test_tampered_entry_fails(rsa_keys: tuple[bytes, bytes]) -> None:
    private, public = rsa_keys
    signed = sign_package(good_package(), private, "partner", now=WHEN)
    with zipfile.ZipFile(io.BytesIO(signed)) as zf:
        comment = zf.comment
    entries = dict(entries_in_order(signed))
    entries["main.py"] += b"# injected\n"
    tampered = build_zip(list(entries.items()), comment=comment, sort=False)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_package(PluginPackage.from_bytes(tampered), [load_public_key(public)])


def test_tampered_time_fails(rsa_keys: tuple[bytes, bytes]) -> None:
    private, public = rsa_keys
    signed = sign_package(good_package(), private, "partner", now=WHEN)
    with zipfile.ZipFile(io.BytesIO(signed)) as zf:
        doc = json.loads(zf.comment)
    doc["time"] = WHEN + 1
    tampered = build_zip(entries_in_order(signed), comment=json.dumps(doc).encode(), sort=False)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_package(PluginPackage.from_bytes(tampered), [load_public_key(public)])


def test_unsigned_and_non_signature_comments(rsa_keys: tuple[bytes, bytes]) -> None:
    key = load_public_key(rsa_keys[1])
    with pytest.raises(SignatureError, match=r"not signed \(empty zip comment\)"):
        verify_package(PluginPackage.from_bytes(good_package()), [key])
    with pytest.raises(SignatureError, match="zip comment is not a signature"):
        verify_package(PluginPackage.from_bytes(build_zip(plugin_files(), comment=b"hi")), [key])


def test_bad_verification_file(rsa_keys: tuple[bytes, bytes]) -> None:
    private, public = rsa_keys
    # sign a package whose files already include a bogus verification file, without replacing it
    files = {**plugin_files(), VERIFICATION_FILE: b'{"authorized_category":"root"}'}
    entries = sorted(files.items())
    data = b"".join(hashlib.sha256(b).digest() for _, b in entries) + str(WHEN).encode()
    sig = load_private_key(private).sign(data, padding.PKCS1v15(), hashes.SHA256())
    comment = json.dumps({"signature": base64.b64encode(sig).decode(), "time": WHEN}).encode()
    pkg = PluginPackage.from_bytes(build_zip(entries, comment=comment))
    with pytest.raises(
        SignatureError, match="authorized_category must be one of langgenius, partner, community"
    ):
        verify_package(pkg, [load_public_key(public)])


def test_resigning_replaces_the_verification_file(rsa_keys: tuple[bytes, bytes]) -> None:
    private, public = rsa_keys
    once = sign_package(good_package(), private, "partner", now=WHEN)
    twice = sign_package(once, private, "community", now=WHEN + 5)
    names = [p for p, _ in entries_in_order(twice)]
    assert names.count(VERIFICATION_FILE) == 1
    result = verify_package(PluginPackage.from_bytes(twice), [load_public_key(public)])
    assert (result.authorized_category, result.time) == ("community", WHEN + 5)


def test_bad_inputs(rsa_keys: tuple[bytes, bytes]) -> None:
    private, public = rsa_keys
    with pytest.raises(KeyFileError, match=re.escape("k.pem: not a PEM public key")):
        load_public_key(b"garbage", "k.pem")
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        load_private_key(public)
    with pytest.raises(PackageError, match="category must be one of"):
        sign_package(good_package(), private, "root")
    with pytest.raises(KeyFileError, match="no public key given"):
        verify_package(PluginPackage.from_bytes(good_package()), [])
