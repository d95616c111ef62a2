"""Fixtures for the packaging unit tests."""

from __future__ import annotations

import pytest
from support.pkgfactory import rsa_key_pair


@pytest.fixture(scope="session")
def rsa_keys() -> tuple[bytes, bytes]:
    """One 2048-bit RSA key pair per test session: (private PKCS#1 PEM, public PKCS#1 PEM)."""
    return rsa_key_pair(2048)
