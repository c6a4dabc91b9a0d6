"""STRIP: prediction entropy under superimposition (Gao et al. 2019, https://arxiv.org/abs/1902.06531).

A trigger keeps the prediction fixed whatever is superimposed on the input, so a poisoned
input's predictions over ``n_overlays`` blends with random other samples have near-zero entropy.
Used here per training sample, and at inference time on incoming inputs.

Examples:
    >>> import numpy as np
    >>> const = lambda xb: np.tile([1.0, 0.0], (len(xb), 1))       # a model that always says 0
    >>> float(strip_entropy(const, np.zeros((4, 3)), np.ones((10, 3)), n_overlays=2).max())
    0.0
"""

from __future__ import annotations

from typing import Any

import numpy as np


def strip_entropy(
    predict_proba: Any, x: np.ndarray, pool: np.ndarray, n_overlays: int = 8, seed: int = 0,
    clip: tuple[float | None, float | None] = (None, None), batch_size: int = 1024,
) -> np.ndarray:
    """Mean prediction entropy of each input superimposed with random ``pool`` samples (STRIP).

    Images are added pixel-wise and clipped to the valid range; tabular rows get the centred
    other row added, so extreme trigger values survive the overlay.
    """
    rng = np.random.default_rng(seed)
    ent = np.zeros(len(x))
    centre = pool.mean(0, keepdims=True) if x.ndim == 2 else 0.0
    for _ in range(n_overlays):
        j = rng.integers(0, len(pool), len(x))
        xo = x + (pool[j] - centre)
        if clip[0] is not None or clip[1] is not None:
            xo = np.clip(xo, clip[0], clip[1])
        xo = xo.astype(np.float32)
        p = np.concatenate([predict_proba(xo[i : i + batch_size]) for i in range(0, len(xo), batch_size)])
        ent += -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(1)
    return ent / n_overlays
