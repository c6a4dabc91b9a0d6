"""One ranked list from many detectors: per-method evidence, a combined p-value per sample, class suspicion.

Every detector's raw score becomes a one-sided *robust z* — distance above the median in units
of 1.4826 × MAD, within the sample's class for class-local methods (activations) and over the
whole set for the others (STRIP, loss dynamics). Per sample, the weighted Stouffer combination
``Z = Σ wₘ zₘ / √Σ wₘ²`` gives a p-value ``P(N(0,1) > Z)``: on clean data, where every robust z is
roughly standard normal, it is roughly uniform, so a Benjamini–Hochberg cut at level ``fdr``
bounds the expected share of clean samples among the flagged ones (measured, not assumed, in
``bench/poison_suite.py``). The score shown is ``1 - p``.

Per class, each method's share of samples beyond ``z > tail_z`` is tested against the other
classes' share (one-sided binomial); the class's p-value is the Bonferroni minimum over methods.

Examples:
    >>> import numpy as np
    >>> y = np.repeat([0, 1], 100); s = np.random.default_rng(0).normal(size=200); s[:10] += 8
    >>> z = robust_z(s, y)
    >>> bool(z[:10].min() > 4 and np.median(z[10:]) < 1)
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats


def robust_z(score: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """``(s - median) / (1.4826 MAD)`` within each group (the whole array when ``groups`` is None)."""
    s = np.asarray(score, dtype=np.float64)
    z = np.zeros(len(s))
    keys = [None] if groups is None else list(np.unique(groups))
    for g in keys:
        m = np.ones(len(s), dtype=bool) if g is None else groups == g
        v = s[m]
        med = float(np.median(v))
        mad = 1.4826 * float(np.median(np.abs(v - med)))
        scale = mad if mad > 1e-12 else float(np.std(v)) + 1e-12
        z[m] = (v - med) / scale
    return z


def stouffer_p(z: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Per-sample one-sided p-value of the weighted Stouffer sum of the (clipped) method z-scores."""
    used = [m for m in z if weights.get(m, 0.0) > 0]
    if not used:
        return np.ones(len(next(iter(z.values())))) if z else np.ones(0)
    w = np.array([weights[m] for m in used])
    zs = np.stack([np.clip(z[m], -3.0, 8.0) for m in used])
    total = (w[:, None] * zs).sum(0) / np.sqrt((w ** 2).sum())
    return np.asarray(stats.norm.sf(total))


def benjamini_hochberg(p: np.ndarray, fdr: float, among: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the p-values the BH step-up procedure rejects at level ``fdr`` (within ``among``)."""
    mask = np.zeros(len(p), dtype=bool)
    idx = np.flatnonzero(among) if among is not None else np.arange(len(p))
    if len(idx) == 0:
        return mask
    order = idx[np.argsort(p[idx])]
    ranks = np.arange(1, len(order) + 1)
    ok = p[order] <= fdr * ranks / len(order)
    if ok.any():
        mask[order[: int(np.flatnonzero(ok).max()) + 1]] = True
    return mask


def class_suspicion(z: dict[str, np.ndarray], y: np.ndarray, tail_z: float = 3.0,
                    min_size: int = 20) -> list[dict[str, Any]]:
    """Per class and method: samples beyond ``tail_z`` against the other classes' share (binomial test)."""
    out = []
    for c in np.unique(y):
        m = y == c
        if m.sum() < min_size:
            continue
        per: dict[str, float] = {}
        counts: dict[str, int] = {}
        for name, zs in z.items():
            over = int((zs[m] > tail_z).sum())
            base = float(np.mean(zs[~m] > tail_z)) if (~m).any() else 0.0
            base = min(max(base, 1e-3), 1 - 1e-6)
            per[name] = float(stats.binomtest(over, int(m.sum()), base, alternative="greater").pvalue)
            counts[name] = over
        p = min(1.0, min(per.values()) * len(per)) if per else 1.0
        out.append({"class": int(c), "n": int(m.sum()), "p_value": p, "method_p_values": per,
                    "beyond_tail": counts})
    return out
