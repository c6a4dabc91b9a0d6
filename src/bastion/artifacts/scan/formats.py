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


def sniff(head: bytes, size: int) -> str:
    """Name the container format of a file from its first bytes (512 are enough).

    Returns one of ``zip``, ``npy``, ``hdf5``, ``safetensors``, ``gzip``, ``bz2``, ``xz``, ``zlib``,
    ``lz4``, ``7z``, ``tar``, ``torch-legacy``, ``pickle``, ``pickle0`` (a protocol 0/1 candidate),
    ``onnx-candidate``, ``empty`` or ``unknown``.
    """
    if not head:
        return "empty"
    if head.startswith(ZIP_MAGICS):
        return "zip"
    if head.startswith(SEVENZIP_MAGIC):
        return "7z"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(TORCH_LEGACY_MAGIC):
        return "torch-legacy"
    if len(head) >= 10 and head[8:9] == b"{" and head[9:10] in (b'"', b"}", b" ", b"\n"):
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= size - 8 or n > size:  # oversized headers are still safetensors (and a finding)
            return "safetensors"
    if head[0] == 0x80 and len(head) > 1 and head[1] <= 5:
        return "pickle"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(BZ2_MAGIC):
        return "bz2"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(LZ4_MAGIC):
        return "lz4"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head[0] in PROTO01_START:
        return "pickle0"
    if head[0] == 0x08:
        return "onnx-candidate"
    return "unknown"


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
