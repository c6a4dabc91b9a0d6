"""Signing keys: one module for model signing, data manifests, audit checkpoints and bundles.

Keys are ECDSA P-256 (the curve OpenSSF model-signing's private-key signer uses), stored as
PEM: ``PREFIX`` (private, PKCS#8, mode 0600) and ``PREFIX.pub`` (SubjectPublicKeyInfo).
A private key may also come from the environment variable named by ``BASTION_SIGNING_KEY_ENV``
(PEM text), so servers need not keep it on disk.

Examples:
    >>> from bastion.artifacts.keys import generate_keypair, sign_bytes, verify_bytes
    >>> priv, pub = generate_keypair("/tmp/doc-key")           # doctest: +SKIP
    >>> sig = sign_bytes(priv, b"hello")                        # doctest: +SKIP
    >>> verify_bytes(pub, b"hello", sig)                        # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.core.errors import ConfigError, InvalidInputError, SignatureError
from bastion.core.inputfile import read_input_file
from bastion.core.paths import atomic_write_bytes

PRIVATE_KEY_MODE = 0o600


def generate_keypair(prefix: str | os.PathLike[str], overwrite: bool = False) -> tuple[Path, Path]:
    """Create ``PREFIX`` (private, 0600) and ``PREFIX.pub``; refuse to overwrite unless asked."""
    priv_path = Path(prefix)
    pub_path = public_path_for(priv_path)
    if not overwrite and (priv_path.exists() or pub_path.exists()):
        raise ConfigError(f"{priv_path} or {pub_path} already exists; pass --force to overwrite")
    key = ec.generate_private_key(ec.SECP256R1())
    priv_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write_bytes(priv_path, priv_pem, mode=PRIVATE_KEY_MODE)
    atomic_write_bytes(pub_path, pub_pem, mode=0o644)
    return priv_path, pub_path


def public_path_for(prefix: str | os.PathLike[str]) -> Path:
    p = Path(prefix)
    return p if p.name.endswith(".pub") else p.with_name(p.name + ".pub")


def load_private_key(path: str | os.PathLike[str]) -> ec.EllipticCurvePrivateKey:
    """Load a PEM private key; refuse group/world-readable files."""
    return read_input_file(path, "private key", _parse_private, private=True,
                           hint=f"create one with: bastion keys generate --out {Path(path)}")


def load_private_key_from_env(var: str) -> ec.EllipticCurvePrivateKey:
    pem = os.environ.get(var)
    if not pem:
        raise ConfigError(f"environment variable {var} holds no private key")
    return _parse_private(pem.encode(), f"${var}")


def _parse_private(data: bytes, where: str) -> ec.EllipticCurvePrivateKey:
    return parse_pem_key(data, where, ec.EllipticCurvePrivateKey,
                         "an elliptic-curve key (Bastion uses ECDSA P-256)", private=True)


def _parse_public(data: bytes, where: str) -> ec.EllipticCurvePublicKey:
    return parse_pem_key(data, where, ec.EllipticCurvePublicKey, "an elliptic-curve public key", private=False)


def parse_pem_key(data: bytes, where: str, key_type: type[Any], expected: str, *, private: bool) -> Any:
    """The PEM key in ``data`` (``where`` names it in errors): an unencrypted ``private`` key, or a public key
    (SubjectPublicKeyInfo), which must be a ``key_type``. ``InvalidInputError`` when it is not PEM of that
    kind, or "{where} is not {expected}" when it is another type of key."""
    try:
        key = serialization.load_pem_private_key(data, password=None) if private \
            else serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{where} is not a PEM {'private' if private else 'public'} key: {exc}") from None
    if not isinstance(key, key_type):
        raise InvalidInputError(f"{where} is not {expected}")
    return key


def load_public_key(path: str | os.PathLike[str]) -> ec.EllipticCurvePublicKey:
    return read_input_file(path, "public key", _parse_public)


def _as_private(key: ec.EllipticCurvePrivateKey | str | os.PathLike[str]) -> ec.EllipticCurvePrivateKey:
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else load_private_key(key)


def _as_public(key: ec.EllipticCurvePublicKey | str | os.PathLike[str]) -> ec.EllipticCurvePublicKey:
    return key if isinstance(key, ec.EllipticCurvePublicKey) else load_public_key(key)


def sign_bytes(key: ec.EllipticCurvePrivateKey | str | os.PathLike[str], data: bytes) -> bytes:
    """ECDSA-SHA256 signature (DER) over ``data``."""
    return _as_private(key).sign(data, ec.ECDSA(hashes.SHA256()))


def verify_bytes(
    key: ec.EllipticCurvePublicKey | str | os.PathLike[str], data: bytes, signature: bytes
) -> None:
    """Raise ``SignatureError`` unless ``signature`` is a valid signature of ``data``."""
    try:
        _as_public(key).verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("signature does not verify with the given public key") from None


def public_key_fingerprint(key: ec.EllipticCurvePublicKey | str | os.PathLike[str]) -> str:
    """sha256 of the DER public key, hex: a stable key id."""
    der = _as_public(key).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise SignatureError(f"malformed base64 signature: {exc}") from None
