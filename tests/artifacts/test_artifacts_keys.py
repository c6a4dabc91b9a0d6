"""Loading signing keys: each refusal names the file and what to do about it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bastion.artifacts.keys import (
    generate_keypair,
    load_private_key,
    load_public_key,
    sign_bytes,
    verify_bytes,
)
from bastion.core.errors import ConfigError, InvalidInputError


def test_a_generated_pair_loads_and_signs(tmp_path: Path) -> None:
    priv, pub = generate_keypair(tmp_path / "k")
    verify_bytes(load_public_key(pub), b"m", sign_bytes(load_private_key(priv), b"m"))


def test_a_missing_private_key_says_how_to_make_one(tmp_path: Path) -> None:
    p = tmp_path / "none"
    with pytest.raises(InvalidInputError) as err:
        load_private_key(p)
    assert str(err.value) == f"private key {p} not found; create one with: bastion keys generate --out {p}"
    with pytest.raises(InvalidInputError, match=rf"^public key {re.escape(str(p))} not found$"):
        load_public_key(p)


def test_a_readable_private_key_is_refused(tmp_path: Path) -> None:
    priv, _ = generate_keypair(tmp_path / "k")
    os.chmod(priv, 0o644)
    with pytest.raises(ConfigError, match=r"has mode 0o644; it must be 0600"):
        load_private_key(priv)


def test_files_that_are_not_pem_keys(tmp_path: Path) -> None:
    p = tmp_path / "k"
    p.write_text("hello")
    os.chmod(p, 0o600)
    with pytest.raises(InvalidInputError, match=rf"^{re.escape(str(p))} is not a PEM private key: "):
        load_private_key(p)
    with pytest.raises(InvalidInputError, match=rf"^{re.escape(str(p))} is not a PEM public key: "):
        load_public_key(p)


def test_keys_of_another_type_are_refused(tmp_path: Path) -> None:
    other = X25519PrivateKey.generate()
    priv, pub = tmp_path / "x", tmp_path / "x.pub"
    priv.write_bytes(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    os.chmod(priv, 0o600)
    pub.write_bytes(other.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(InvalidInputError, match="is not an elliptic-curve key"):
        load_private_key(priv)
    with pytest.raises(InvalidInputError, match="is not an elliptic-curve public key"):
        load_public_key(pub)
