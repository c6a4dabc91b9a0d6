"""Packed CKKS inference: many samples per ciphertext, no rotations.

Layout ("feature-major" packing): feature ``j`` of up to ``slots`` samples is one ciphertext, so
a linear layer is ``out_i = Σ_j W_ij · ct_j + b_i`` — plaintext-scalar multiplications and
additions only (no Galois keys, no rotations), and a square activation is one ciphertext
multiplication per hidden unit. One pass over ``d`` input ciphertexts classifies ``slots``
samples at once; the naive approach (``naive.py``) encrypts one sample per ciphertext and pays a
rotation-heavy vector–matrix product for each.

Files exchanged between client and server are zip archives of serialised ciphertexts with a
JSON header (never pickle). The server only ever loads the *public* context.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bastion.core.errors import DependencyError, InvalidInputError, SignatureError
from bastion.core.inputfile import read_input_file
from bastion.core.paths import atomic_write_bytes
from bastion.defenses.encrypted.model import HEModel
from bastion.defenses.encrypted.params import CKKSParams

CT_FORMAT = "bastion-he-ciphertexts/1"
MAX_ARCHIVE_ENTRIES = 100_000
MAX_ENTRY_BYTES = 64 << 20


def _ts() -> Any:
    try:
        import tenseal as ts
    except ImportError as exc:  # pragma: no cover - tenseal is in the federated extra
        raise DependencyError.missing("tenseal", "federated") from exc
    return ts


def make_context(params: CKKSParams, galois: bool = False) -> Any:
    """A fresh secret CKKS context (holds the secret key: keep it on the client)."""
    ts = _ts()
    ctx = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=params.poly_modulus_degree,
        coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
    )
    ctx.global_scale = 2.0**params.scale_bits
    if galois:
        ctx.generate_galois_keys()
    return ctx


def save_context(ctx: Any, secret_path: Path, public_path: Path) -> None:
    """Secret context to ``secret_path`` (0600); public context (no secret key) to ``public_path``."""
    atomic_write_bytes(secret_path, ctx.serialize(save_secret_key=True), mode=0o600)
    atomic_write_bytes(public_path, ctx.serialize(save_secret_key=False), mode=0o644)


def load_context(path: str | Path, expect_secret: bool | None = None) -> Any:
    """Load a serialised context; ``expect_secret`` guards against using the wrong file."""
    ts = _ts()
    p = Path(path)

    def parse(data: bytes, where: str) -> Any:
        try:
            return ts.context_from(data)
        except Exception as exc:
            raise InvalidInputError(f"{where} is not a TenSEAL context: {exc}") from None

    ctx = read_input_file(p, "CKKS context", parse, hint="create one with: bastion he keygen")
    if expect_secret is True and not ctx.is_private():
        raise InvalidInputError(f"{p} is a public context; decryption needs the secret context")
    if expect_secret is False and ctx.is_private():
        raise InvalidInputError(
            f"{p} holds the secret key; the server must only receive the public context (he keygen writes both)"
        )
    return ctx


@dataclass
class CipherBatch:
    """Ciphertexts for ``n_samples`` samples: ``chunks[c][j]`` = feature/unit ``j`` of chunk ``c``."""

    chunks: list[list[Any]]
    chunk_sizes: list[int]
    kind: str = "inputs"

    @property
    def n_samples(self) -> int:
        return sum(self.chunk_sizes)

    def save(self, path: str | Path, params: CKKSParams) -> None:
        atomic_write_bytes(path, self.to_bytes(params), mode=0o644)

    def to_bytes(self, params: CKKSParams) -> bytes:
        import io

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            header = {
                "format": CT_FORMAT,
                "kind": self.kind,
                "chunk_sizes": self.chunk_sizes,
                "width": len(self.chunks[0]) if self.chunks else 0,
                "ckks": params.to_dict(),
            }
            zf.writestr("header.json", json.dumps(header))
            for c, cts in enumerate(self.chunks):
                for j, ct in enumerate(cts):
                    zf.writestr(f"ct/{c}/{j}.bin", ct.serialize())
        return buf.getvalue()

    @classmethod
    def load(cls, path: str | Path, ctx: Any) -> CipherBatch:
        return read_input_file(path, "ciphertext archive", lambda data, where: cls.from_bytes(data, ctx, where))

    @classmethod
    def from_bytes(cls, data: bytes, ctx: Any, where: str = "ciphertexts") -> CipherBatch:
        import io

        ts = _ts()
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            raise InvalidInputError(f"{where} is not a Bastion ciphertext archive") from None
        infos = zf.infolist()
        if len(infos) > MAX_ARCHIVE_ENTRIES or any(i.file_size > MAX_ENTRY_BYTES for i in infos):
            raise InvalidInputError(f"{where} is too large (entries or entry size over the limit)")
        try:
            header = json.loads(zf.read("header.json"))
        except KeyError:
            raise InvalidInputError(f"{where} has no header.json") from None
        if header.get("format") != CT_FORMAT:
            raise InvalidInputError(f"{where}: unknown ciphertext format {header.get('format')!r}")
        sizes = [int(s) for s in header["chunk_sizes"]]
        width = int(header["width"])
        chunks = []
        for c in range(len(sizes)):
            row = []
            for j in range(width):
                try:
                    raw = zf.read(f"ct/{c}/{j}.bin")
                except KeyError:
                    raise InvalidInputError(f"{where} is missing ciphertext ct/{c}/{j}.bin") from None
                try:
                    row.append(ts.ckks_vector_from(ctx, raw))
                except Exception as exc:
                    raise SignatureError(f"{where}: ciphertext ct/{c}/{j}.bin is corrupt: {exc}") from None
            chunks.append(row)
        return cls(chunks, sizes, str(header.get("kind", "inputs")))


def encrypt_batch(ctx: Any, x: np.ndarray, n_features: int, slots: int) -> CipherBatch:
    """Encrypt ``x`` (n, …) feature-major, ``slots`` samples per ciphertext."""
    ts = _ts()
    arr = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if arr.shape[1] != n_features:
        raise InvalidInputError(f"inputs have {arr.shape[1]} features; the model expects {n_features}")
    if not np.isfinite(arr).all():
        raise InvalidInputError("inputs contain NaN or infinite values")
    chunks, sizes = [], []
    for start in range(0, len(arr), slots):
        block = arr[start : start + slots]
        chunks.append([ts.ckks_vector(ctx, block[:, j].tolist()) for j in range(n_features)])
        sizes.append(len(block))
    return CipherBatch(chunks, sizes, "inputs")


def evaluate(model: HEModel, batch: CipherBatch) -> CipherBatch:
    """Run the model on ciphertexts (server side: needs only the public context)."""
    out_chunks = []
    for cts in batch.chunks:
        if len(cts) != model.n_features:
            raise InvalidInputError(f"ciphertext batch has width {len(cts)}; the model expects {model.n_features}")
        h = cts
        for layer in model.layers:
            if layer.kind == "square":
                h = [ct.square() for ct in h]
                continue
            assert layer.weight is not None and layer.bias is not None
            nxt = []
            for i in range(layer.weight.shape[0]):
                acc = None
                for j, ct in enumerate(h):
                    wij = float(layer.weight[i, j])
                    if wij == 0.0:
                        continue
                    term = ct * wij
                    acc = term if acc is None else acc + term
                if acc is None:  # an all-zero row: bias only
                    acc = h[0] * 0.0
                nxt.append(acc + float(layer.bias[i]))
            h = nxt
        out_chunks.append(h)
    return CipherBatch(out_chunks, list(batch.chunk_sizes), "outputs")


def decrypt_outputs(ctx: Any, batch: CipherBatch) -> np.ndarray:
    """Decrypt output ciphertexts to logits (n, n_classes); needs the secret context."""
    if not ctx.is_private():
        raise InvalidInputError("decryption needs the secret context, not the public one")
    rows = []
    for cts, n in zip(batch.chunks, batch.chunk_sizes, strict=True):
        cols = [np.asarray(ct.decrypt(), dtype=np.float64)[:n] for ct in cts]
        rows.append(np.stack(cols, axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 0))


def ciphertext_bytes(batch: CipherBatch) -> int:
    return sum(len(ct.serialize()) for cts in batch.chunks for ct in cts)

