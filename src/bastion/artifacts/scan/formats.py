"""Format detection by content (magic bytes and structure), never by file extension."""

from __future__ import annotations

import zipfile
from typing import IO

PROTO01_START = frozenset(b"(]}c)NILFSVXUTGJKMdl.")
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
GZIP_MAGIC = b"\x1f\x8b"
BZ2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
LZ4_MAGIC = b"\x04\x22\x4d\x18"
SEVENZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
# magic prefixes in the order sniff tries them: these before the safetensors and pickle checks, ...
_LEADING_MAGICS: tuple[tuple[bytes | tuple[bytes, ...], str], ...] = (
    (ZIP_MAGICS, "zip"), (SEVENZIP_MAGIC, "7z"), (NPY_MAGIC, "npy"), (HDF5_MAGIC, "hdf5"),
    (TORCH_LEGACY_MAGIC, "torch-legacy"),
)
# ... and these after them
_COMPRESSION_MAGICS: tuple[tuple[bytes, str], ...] = (
    (GZIP_MAGIC, "gzip"), (BZ2_MAGIC, "bz2"), (XZ_MAGIC, "xz"), (LZ4_MAGIC, "lz4"),
)


def sniff(head: bytes, size: int) -> str:
    """Name the container format of a file from its first bytes (512 are enough).

    Returns one of ``zip``, ``npy``, ``hdf5``, ``safetensors``, ``gzip``, ``bz2``, ``xz``, ``zlib``,
    ``lz4``, ``7z``, ``tar``, ``torch-legacy``, ``pickle``, ``pickle0`` (a protocol 0/1 candidate),
    ``onnx-candidate``, ``empty`` or ``unknown``.
    """
    if not head:
        return "empty"
    kind = _by_magic(head, _LEADING_MAGICS)
    if kind is not None:
        return kind
    if len(head) >= 10 and head[8:9] == b"{" and head[9:10] in (b'"', b"}", b" ", b"\n"):
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= size - 8 or n > size:  # oversized headers are still safetensors (and a finding)
            return "safetensors"
    if head[0] == 0x80 and len(head) > 1 and head[1] <= 5:
        return "pickle"
    kind = _by_magic(head, _COMPRESSION_MAGICS)
    if kind is not None:
        return kind
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head[0] in PROTO01_START:
        return "pickle0"
    if head[0] == 0x08:
        return "onnx-candidate"
    return "unknown"


def _by_magic(head: bytes, magics: tuple[tuple[bytes | tuple[bytes, ...], str], ...]) -> str | None:
    """The format of the first magic prefix ``head`` starts with (in table order), or None."""
    return next((kind for magic, kind in magics if head.startswith(magic)), None)


def classify_zip(zf: zipfile.ZipFile) -> str:
    """Name what a zip archive holds: torch checkpoint, TorchScript, torch.export, npz, Keras v3 or plain zip."""
    names = zf.namelist()
    base = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if any(n == "archive_format" or n.endswith("/archive_format") for n in names):
        return "torch-export"
    if any(n.startswith("code/") or "/code/__torch__" in n for n in names) or "constants.pkl" in base:
        return "torchscript"
    if "data.pkl" in base:
        return "torch-zip"
    if "schema.json" in names and all(n == "schema.json" or n.endswith((".npy", ".json")) or "/" not in n
                                       for n in names):
        return "skops"
    if names and all(n.endswith(".npy") for n in names):
        return "numpy-npz"
    if "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names):
        return "keras-v3"
    return "zip"


def read_head(fh: IO[bytes], n: int = 512) -> bytes:
    pos = fh.tell()
    head = fh.read(n)
    fh.seek(pos)
    return head


def looks_like_text(head: bytes) -> bool:
    """UTF-8 text without NUL bytes (a README, JSON or YAML file: inert, and not a model format)."""
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a multi-byte character cut at the end of the sample
    return True
