"""The naive baseline: one sample per ciphertext, TenSEAL's vector–matrix product.

This is what the TenSEAL tutorials do (``enc_x.mm(W) + b``); each product needs rotations
(Galois keys) and a whole ciphertext per sample. Kept only to measure against.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.defenses.encrypted.model import HEModel


def naive_logits(ctx: Any, model: HEModel, x: np.ndarray) -> tuple[np.ndarray, int]:
    """Encrypt each sample alone, evaluate, decrypt. Returns (logits, ciphertext bytes per sample)."""
    import tenseal as ts

    arr = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    out, size = [], 0
    for row in arr:
        enc = ts.ckks_vector(ctx, row.tolist())
        size = len(enc.serialize())
        for layer in model.layers:
            if layer.kind == "square":
                enc = enc.square()
            else:
                assert layer.weight is not None and layer.bias is not None
                enc = enc.mm(layer.weight.T.tolist()) + layer.bias.tolist()
        out.append(np.asarray(enc.decrypt(), dtype=np.float64))
    return np.stack(out), size
