"""Per-recipient key wrapping for data sets: X25519 identities and HPKE (RFC 9180) wraps of a data key.

A data set is encrypted once (AES-256-GCM chunks, :mod:`bastion.data.privacy.encryption`) under a
random 256-bit *epoch key*; each file gets its own key ``HKDF-SHA256(epoch key, salt=file_id)``. The
epoch key is wrapped to every reader's X25519 public key with HPKE base mode
``DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM`` (PyCA ``cryptography``'s RFC 9180
implementation). The HPKE ``info`` binds a wrap to its data set, key epoch, ciphertext files and the
recipient's key fingerprint, so a wrap cannot be replayed for another data set, epoch or reader.

Identities are PEM files: ``PREFIX.key`` (PKCS#8 X25519 private key, mode 0600) and ``PREFIX.pub``
(SubjectPublicKeyInfo). A key's fingerprint is the sha256 of its 32 raw public bytes.

Examples:
    >>> key, pub = generate_identity("alice")                          # doctest: +SKIP
    >>> wrapped = wrap_key(epoch_key, load_public(pub), {"dataset": "credit", "epoch": 1})  # doctest: +SKIP
    >>> unwrap_key(wrapped, load_identity(key), {"dataset": "credit", "epoch": 1})         # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.artifacts.keys import parse_pem_key
from bastion.core.errors import ConfigError, IntegrityError, InvalidInputError
from bastion.core.inputfile import read_input_file
from bastion.core.paths import atomic_write_bytes

SUITE_NAME = "HPKE-base/DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM"
WRAP_LABEL = "bastion-dataset-key/v1"
_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


# ----------------------------------------------------------------------------- identities
def generate_identity(prefix: str | os.PathLike[str], overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (0600) and ``PREFIX.pub``; returns both paths."""
    base = Path(prefix)
    key_path, pub_path = base.with_name(base.name + ".key"), base.with_name(base.name + ".pub")
    if not overwrite and (key_path.exists() or pub_path.exists()):
        raise ConfigError(f"{key_path} or {pub_path} already exists; pass --force to overwrite")
    key = X25519PrivateKey.generate()
    atomic_write_bytes(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), mode=0o600)
    atomic_write_bytes(pub_path, public_pem(key.public_key()).encode(), mode=0o644)
    return key_path, pub_path


def public_pem(pub: X25519PublicKey) -> str:
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(pub: X25519PublicKey) -> str:
    """sha256 (hex) of the 32 raw public-key bytes."""
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def parse_public(text: str, where: str) -> X25519PublicKey:
    """An X25519 public key from PEM (SubjectPublicKeyInfo) or base64 of the 32 raw bytes."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = X25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError):
        raise InvalidInputError(f"{where} is not an X25519 public key (PEM, or base64 of 32 bytes); "
                                "create one with: bastion principals keygen --out NAME") from None
    if not isinstance(key, X25519PublicKey):
        raise InvalidInputError(f"{where} is a {type(key).__name__.removeprefix('_')}, not an X25519 key; "
                                "data keys are wrapped with X25519 (bastion principals keygen)")
    return key


def load_public(path_or_text: str | os.PathLike[str]) -> X25519PublicKey:
    """A public key from a file path, or from the key text itself."""
    p = Path(path_or_text)
    try:
        is_file = p.is_file()
    except OSError:  # e.g. a PEM string too long to be a file name
        is_file = False
    if is_file:
        return parse_public(p.read_text("utf-8", "replace"), str(p))
    text = str(path_or_text)
    if text.startswith("-----BEGIN") or (len(text) == 44 and text.endswith("=")):
        return parse_public(text, "--key")
    raise InvalidInputError(f"public key file {p} not found")


def load_identity(path: str | os.PathLike[str]) -> X25519PrivateKey:
    """A private X25519 key from a 0600 PEM file."""
    return read_input_file(path, "private key", _parse_identity, private=True,
                           hint="create one with: bastion principals keygen --out NAME")


def _parse_identity(data: bytes, where: str) -> X25519PrivateKey:
    return parse_pem_key(data, where, X25519PrivateKey,
                         "an X25519 private key (bastion principals keygen makes one)", private=True)


# ----------------------------------------------------------------------------- wrapping
def wrap_key(data_key: bytes, recipient: X25519PublicKey, context: dict[str, Any]) -> str:
    """HPKE-seal ``data_key`` to ``recipient``; ``context`` (canonical JSON) is bound as HPKE ``info``."""
    info = _canonical({**context, "label": WRAP_LABEL, "recipient": fingerprint(recipient)})
    return base64.b64encode(_SUITE.encrypt(data_key, recipient, info=info)).decode()


def unwrap_key(wrapped: str, identity: X25519PrivateKey, context: dict[str, Any]) -> bytes:
    """Open a wrap made by :func:`wrap_key` with the same ``context``; ``IntegrityError`` if it does not open."""
    info = _canonical({**context, "label": WRAP_LABEL, "recipient": fingerprint(identity.public_key())})
    try:
        key = _SUITE.decrypt(base64.b64decode(wrapped, validate=True), identity, info=info)
    except (InvalidTag, ValueError, TypeError):
        raise IntegrityError("the wrapped data key does not open with this private key and context "
                             "(another reader's wrap, another data set or epoch, or a modified record)") from None
    if len(key) != 32:
        raise IntegrityError(f"the unwrapped data key has {len(key)} bytes; expected 32")
    return key


def file_key(epoch_key: bytes, file_id: bytes) -> bytes:
    """The AES-256 key of one ciphertext file: HKDF-SHA256(epoch key, salt=file_id)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=file_id, info=b"bastion-dataset-file/v1").derive(epoch_key)
