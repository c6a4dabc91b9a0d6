"""AES-256-GCM envelope encryption of data files at rest, streamed in authenticated chunks.

File layout (``BASTENC1``)::

    magic "BASTENC1" | u32 header length | header JSON | chunk* ; chunk = u32 length | ciphertext+tag

The header holds an immutable part (``file_id``, ``chunk_size``, algorithm) and the key
envelope (``kek_id``, wrapped data key). A fresh random 256-bit data key encrypts the chunks;
the key-encryption key (KEK) wraps it with AES-256-GCM. Every chunk has its own nonce
(``file nonce prefix || chunk index``) and AAD binding the immutable header digest, the chunk
index and a final-chunk flag: a flipped byte, reordered chunks or a truncated file all fail
authentication. Decryption writes to a temp file and renames it only after the last chunk
authenticates, so no partial plaintext is ever left. ``rekey`` re-wraps the data key under a
new KEK without touching the chunks.

Examples:
    >>> generate_kek("kek.key")                                   # doctest: +SKIP
    >>> encrypt_file("train.csv", "train.csv.enc", "kek.key")     # doctest: +SKIP
    >>> decrypt_file("train.csv.enc", "train.csv", "kek.key")     # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.core.errors import ConfigError, IntegrityError, InvalidInputError
from bastion.core.inputfile import read_input_file
from bastion.core.paths import atomic_output, atomic_write_bytes

MAGIC = b"BASTENC1"
KEY_PREFIX = "bastion-kek-v1:"
KEK_ENV = "BASTION_DATA_KEK"
DEFAULT_CHUNK = 1 << 20
_U32 = struct.Struct(">I")


# ----------------------------------------------------------------------------- keys
def generate_kek(path: str | os.PathLike[str], overwrite: bool = False) -> tuple[Path, str]:
    """Write a new random 256-bit KEK to ``path`` (mode 0600); returns (path, key id)."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise ConfigError(f"{p} already exists; pass --force to overwrite")
    kek = os.urandom(32)
    atomic_write_bytes(p, (KEY_PREFIX + base64.b64encode(kek).decode() + "\n").encode(), mode=0o600)
    return p, kek_id(kek)


def kek_id(kek: bytes) -> str:
    """A stable public id of a KEK (never the key itself)."""
    return hashlib.sha256(b"bastion-kek-id" + kek).hexdigest()[:16]


def _parse_kek(text: str, where: str) -> bytes:
    text = text.strip()
    if text.startswith(KEY_PREFIX):
        text = text[len(KEY_PREFIX) :]
    try:
        kek = base64.b64decode(text, validate=True)
    except ValueError:
        raise InvalidInputError(f"{where} is not a Bastion data key (base64 of 32 bytes)") from None
    if len(kek) != 32:
        raise InvalidInputError(f"{where} holds {len(kek)} bytes; an AES-256 KEK has 32")
    return kek


def load_kek(path: str | os.PathLike[str] | None = None) -> bytes:
    """Load a KEK from a 0600 key file, or from ``$BASTION_DATA_KEK`` when ``path`` is None."""
    if path is None:
        env = os.environ.get(KEK_ENV)
        if not env:
            raise ConfigError(f"no --key given and ${KEK_ENV} is not set; create one with: bastion data keygen")
        return _parse_kek(env, f"${KEK_ENV}")
    return read_input_file(path, "key file", lambda data, where: _parse_kek(data.decode("utf-8", "replace"), where),
                           private=True, hint=f"create one with: bastion data keygen --out {Path(path)}")


# ----------------------------------------------------------------------------- header
def _wrap(kek: bytes, dek: bytes, file_id: bytes) -> dict[str, str]:
    nonce = os.urandom(12)
    wrapped = AESGCM(kek).encrypt(nonce, dek, b"bastion-dek" + file_id)
    b64 = base64.b64encode
    return {"kek_id": kek_id(kek), "wrap_nonce": b64(nonce).decode(), "wrapped_key": b64(wrapped).decode()}


def _unwrap(kek: bytes, envelope: dict[str, Any], file_id: bytes, where: str) -> bytes:
    if envelope.get("kek_id") != kek_id(kek):
        raise IntegrityError(
            f"{where} was encrypted under key id {envelope.get('kek_id')}; the given key has id {kek_id(kek)}"
        )
    try:
        return AESGCM(kek).decrypt(
            base64.b64decode(envelope["wrap_nonce"], validate=True),
            base64.b64decode(envelope["wrapped_key"], validate=True),
            b"bastion-dek" + file_id,
        )
    except (InvalidTag, KeyError, ValueError, TypeError):
        raise IntegrityError(f"{where}: the wrapped data key does not authenticate (header tampered?)") from None


def _aad_base(header: dict[str, Any]) -> bytes:
    immutable = {k: header[k] for k in ("version", "algorithm", "file_id", "nonce_prefix", "chunk_size")}
    return hashlib.sha256(json.dumps(immutable, sort_keys=True).encode()).digest()


def _read_header(fh: BinaryIO, where: str) -> tuple[dict[str, Any], bytes]:
    if fh.read(len(MAGIC)) != MAGIC:
        raise InvalidInputError(f"{where} is not a Bastion encrypted file (bad magic)")
    raw_len = fh.read(4)
    if len(raw_len) != 4:
        raise IntegrityError(f"{where}: truncated header")
    (n,) = _U32.unpack(raw_len)
    if n > 1 << 16:
        raise IntegrityError(f"{where}: header length {n} is implausible")
    raw = fh.read(n)
    try:
        header = json.loads(raw)
        ok = (
            header["version"] == 1 and header["algorithm"] == "AES-256-GCM"
            and len(base64.b64decode(header["file_id"], validate=True)) == 16
            and len(base64.b64decode(header["nonce_prefix"], validate=True)) == 4
            and isinstance(header["chunk_size"], int) and 1 <= header["chunk_size"] <= 1 << 30
            and isinstance(header["envelope"], dict)
        )
    except (json.JSONDecodeError, KeyError, ValueError, TypeError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise IntegrityError(f"{where}: header is corrupt (modified file?)")
    return header, raw


def _write_header(fh: BinaryIO, header: dict[str, Any]) -> None:
    raw = json.dumps(header, sort_keys=True).encode()
    fh.write(MAGIC + _U32.pack(len(raw)) + raw)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(8, "big")


def _aad(base: bytes, index: int, final: bool) -> bytes:
    return base + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


# ----------------------------------------------------------------------------- encrypt/decrypt
def _new_header(envelope: dict[str, Any], chunk_size: int, file_id: bytes) -> tuple[dict[str, Any], bytes]:
    if chunk_size < 1 or chunk_size > 1 << 30:
        raise ConfigError(f"chunk size {chunk_size} out of range (1 B .. 1 GiB)")
    prefix = os.urandom(4)
    header: dict[str, Any] = {
        "version": 1, "algorithm": "AES-256-GCM", "chunk_size": chunk_size,
        "file_id": base64.b64encode(file_id).decode(), "nonce_prefix": base64.b64encode(prefix).decode(),
        "envelope": envelope,
    }
    return header, prefix


def _write_encrypted(dst: Path, header: dict[str, Any], dek: bytes, blocks: Iterator[bytes]) -> tuple[int, int]:
    """Encrypt ``blocks`` (plaintext chunks, at most ``chunk_size`` each) into ``dst`` atomically."""
    base = _aad_base(header)
    prefix = base64.b64decode(header["nonce_prefix"])
    aes = AESGCM(dek)
    n_chunks = total = 0
    with atomic_output(dst) as fout:
        _write_header(fout, header)
        block = next(blocks, b"")
        while True:
            nxt = next(blocks, None)
            final = nxt is None
            ct = aes.encrypt(_nonce(prefix, n_chunks), block, _aad(base, n_chunks, final))
            fout.write(_U32.pack(len(ct)) + ct)
            total += len(block)
            n_chunks += 1
            if nxt is None:
                break
            block = nxt
    return total, n_chunks


def _plain_blocks(path: Path, chunk_size: int) -> Iterator[bytes]:
    with open(path, "rb") as fin:
        while block := fin.read(chunk_size):
            yield block


def _decrypted_blocks(fin: BinaryIO, header: dict[str, Any], dek: bytes, where: str) -> Iterator[bytes]:
    """Authenticated plaintext chunks of an open ``BASTENC1`` file positioned after its header."""
    prefix = base64.b64decode(header["nonce_prefix"])
    aes = AESGCM(dek)
    base = _aad_base(header)
    max_ct = int(header["chunk_size"]) + 16
    index = 0
    ct = _read_chunk(fin, max_ct, where, index)
    if ct is None:
        raise IntegrityError(f"{where}: no data chunks (file truncated)")
    while ct is not None:
        nxt = _read_chunk(fin, max_ct, where, index + 1)
        try:
            yield aes.decrypt(_nonce(prefix, index), ct, _aad(base, index, nxt is None))
        except InvalidTag:
            raise IntegrityError(
                f"{where}: chunk {index} failed authentication (modified, reordered or "
                "truncated ciphertext); no plaintext was written"
            ) from None
        index += 1
        ct = nxt


def read_file_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The header of an encrypted file (ids, chunk size, key envelope); nothing is decrypted."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"{p} not found")
    with open(p, "rb") as fin:
        return _read_header(fin, str(p))[0]


def encrypt_with_data_key(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], dek: bytes, envelope: dict[str, Any],
    file_id: bytes, chunk_size: int = DEFAULT_CHUNK,
) -> dict[str, Any]:
    """Encrypt ``src`` under a data key the caller manages (``envelope`` says how it is wrapped)."""
    src_p, dst_p = Path(src), Path(dst)
    if not src_p.is_file():
        raise InvalidInputError(f"{src_p} not found")
    if len(dek) != 32 or len(file_id) != 16:
        raise ConfigError("a data key has 32 bytes and a file id 16")
    header, _ = _new_header(envelope, chunk_size, file_id)
    total, n_chunks = _write_encrypted(dst_p, header, dek, _plain_blocks(src_p, chunk_size))
    return {"path": str(dst_p), "bytes": total, "chunks": n_chunks, "file_id": header["file_id"]}


def decrypt_with_data_key(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], dek: bytes | Callable[[dict[str, Any]], bytes]
) -> dict[str, Any]:
    """Decrypt and authenticate ``src`` into ``dst`` (atomic, nothing written on failure).

    ``dek`` is the data key, or a function of the file's header that returns it (so the key can
    depend on the file id)."""
    src_p, dst_p = Path(src), Path(dst)
    if not src_p.is_file():
        raise InvalidInputError(f"{src_p} not found")
    total = n_chunks = 0
    with open(src_p, "rb") as fin:
        header, _ = _read_header(fin, str(src_p))
        key = dek(header) if callable(dek) else dek
        with atomic_output(dst_p) as fout:
            for pt in _decrypted_blocks(fin, header, key, str(src_p)):
                fout.write(pt)
                total += len(pt)
                n_chunks += 1
    return {"path": str(dst_p), "bytes": total, "chunks": n_chunks, "header": header}


def reencrypt_with_data_key(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], old_dek: bytes | Callable[[dict[str, Any]], bytes],
    new_dek: bytes, envelope: dict[str, Any], file_id: bytes,
) -> dict[str, Any]:
    """Move ``src`` to a new data key in one streamed pass: each chunk is authenticated under the old key and
    encrypted under the new one in memory (the plaintext never reaches the disk)."""
    src_p, dst_p = Path(src), Path(dst)
    if not src_p.is_file():
        raise InvalidInputError(f"{src_p} not found")
    with open(src_p, "rb") as fin:
        old_header, _ = _read_header(fin, str(src_p))
        key = old_dek(old_header) if callable(old_dek) else old_dek
        header, _ = _new_header(envelope, int(old_header["chunk_size"]), file_id)
        total, n_chunks = _write_encrypted(dst_p, header, new_dek, _decrypted_blocks(fin, old_header, key, str(src_p)))
    return {"path": str(dst_p), "bytes": total, "chunks": n_chunks, "file_id": header["file_id"]}


def encrypt_file(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], kek: bytes | str | os.PathLike[str],
    chunk_size: int = DEFAULT_CHUNK,
) -> dict[str, Any]:
    """Encrypt ``src`` to ``dst`` (atomic); returns a summary (chunks, bytes, kek_id)."""
    key = kek if isinstance(kek, bytes) else load_kek(kek)
    dek, file_id = os.urandom(32), os.urandom(16)
    envelope = _wrap(key, dek, file_id)
    info = encrypt_with_data_key(src, dst, dek, envelope, file_id, chunk_size)
    return {"path": info["path"], "bytes": info["bytes"], "chunks": info["chunks"], "kek_id": envelope["kek_id"]}


def decrypt_file(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], kek: bytes | str | os.PathLike[str]
) -> dict[str, Any]:
    """Decrypt and authenticate ``src`` into ``dst``; on any failure nothing is written."""
    key = kek if isinstance(kek, bytes) else load_kek(kek)

    def unwrap(header: dict[str, Any]) -> bytes:
        return _unwrap(key, header.get("envelope", {}), base64.b64decode(header["file_id"]), str(src))

    info = decrypt_with_data_key(src, dst, unwrap)
    return {"path": info["path"], "bytes": info["bytes"], "chunks": info["chunks"],
            "kek_id": info["header"]["envelope"]["kek_id"]}


def _read_chunk(fh: BinaryIO, max_ct: int, where: str, index: int) -> bytes | None:
    raw = fh.read(4)
    if not raw:
        return None
    if len(raw) != 4:
        raise IntegrityError(f"{where}: chunk {index} length is truncated")
    (n,) = _U32.unpack(raw)
    if n < 16 or n > max_ct:
        raise IntegrityError(f"{where}: chunk {index} has an invalid length {n}")
    ct = fh.read(n)
    if len(ct) != n:
        raise IntegrityError(f"{where}: chunk {index} is truncated")
    return ct


def rekey_file(
    path: str | os.PathLike[str], old_kek: bytes | str | os.PathLike[str], new_kek: bytes | str | os.PathLike[str]
) -> dict[str, Any]:
    """Re-wrap the data key of ``path`` under ``new_kek`` (chunks are copied unchanged, atomically)."""
    old = old_kek if isinstance(old_kek, bytes) else load_kek(old_kek)
    new = new_kek if isinstance(new_kek, bytes) else load_kek(new_kek)
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"{p} not found")
    with open(p, "rb") as fin:
        header, _ = _read_header(fin, str(p))
        file_id = base64.b64decode(header["file_id"])
        dek = _unwrap(old, header.get("envelope", {}), file_id, str(p))
        old_id = header["envelope"]["kek_id"]
        header["envelope"] = _wrap(new, dek, file_id)
        with atomic_output(p) as fout:
            _write_header(fout, header)
            while block := fin.read(DEFAULT_CHUNK):
                fout.write(block)
    return {"path": str(p), "old_kek_id": old_id, "kek_id": header["envelope"]["kek_id"]}
