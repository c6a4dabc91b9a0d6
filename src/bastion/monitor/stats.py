"""Two-sample statistics used by the drift detectors (vectorised over features).

- Kolmogorov–Smirnov for continuous features (asymptotic p-value, Smirnov's distribution),
- chi-square on category counts for discrete features,
- population stability index (PSI) and 1-Wasserstein distance as effect sizes,
- squared maximum mean discrepancy (MMD²) with an RBF kernel for the multivariate view
  (Gretton et al. 2012, https://jmlr.org/papers/v13/gretton12a.html).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats


class KSReference:
    """A reference sample prepared for fast, column-vectorised two-sample KS statistics.

    Each column is shifted into its own disjoint value range, so one ``searchsorted`` over the
    flattened arrays evaluates every column's ECDFs at once; the reference's own ECDF is
    computed once. Window values are clipped just outside the reference range, which leaves the
    KS statistic unchanged.
    """

    def __init__(self, ref: np.ndarray) -> None:
        ref_sorted = np.sort(np.asarray(ref, dtype=np.float64), axis=0)
        self.n, self.d = ref_sorted.shape
        self.lo = ref_sorted.min(axis=0) - 1.0
        self.hi = ref_sorted.max(axis=0) + 1.0
        self.span = float((self.hi - self.lo).max()) + 1.0
        self.offs = np.arange(self.d) * self.span
        self.flat = (ref_sorted - self.lo + self.offs).T.ravel()
        base = np.repeat(np.arange(self.d) * self.n, self.n)
        self.ecdf_at_ref = (np.searchsorted(self.flat, self.flat, side="right") - base) / self.n

    def statistic(self, window: np.ndarray) -> np.ndarray:
        w = np.sort(np.clip(np.asarray(window, dtype=np.float64), self.lo, self.hi), axis=0)
        n_w = w.shape[0]
        w_flat = (w - self.lo + self.offs).T.ravel()
        base_w = np.repeat(np.arange(self.d) * n_w, n_w)
        f_ref_at_w = (np.searchsorted(self.flat, w_flat, side="right") - np.repeat(np.arange(self.d) * self.n, n_w)) / self.n
        f_w_at_w = (np.searchsorted(w_flat, w_flat, side="right") - base_w) / n_w
        f_w_at_ref = (np.searchsorted(w_flat, self.flat, side="right") - np.repeat(np.arange(self.d) * n_w, self.n)) / n_w
        d1 = np.abs(f_ref_at_w - f_w_at_w).reshape(self.d, n_w).max(axis=1)
        d2 = np.abs(f_w_at_ref - self.ecdf_at_ref).reshape(self.d, self.n).max(axis=1)
        return np.maximum(d1, d2)


def ks_pvalue(d: np.ndarray, n: int, m: int) -> np.ndarray:
    """Asymptotic two-sample KS p-value (Smirnov)."""
    en = np.sqrt(n * m / (n + m))
    return np.clip(special.kolmogorov((en + 0.12 + 0.11 / en) * d), 0.0, 1.0)


def chi2_pvalue(ref_counts: np.ndarray, win_counts: np.ndarray) -> float:
    """Chi-square test of homogeneity for one discrete feature (categories aligned)."""
    table = np.vstack([ref_counts, win_counts]).astype(float) + 0.5  # continuity for empty cells
    _chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    return float(p)


def psi(ref: np.ndarray, cur: np.ndarray, bins: int = 10) -> float:
    """Population stability index on reference-quantile bins."""
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    if len(edges) < 3:
        return 0.0
    r = np.histogram(np.clip(ref, edges[0], edges[-1]), edges)[0] / len(ref) + 1e-6
    c = np.histogram(np.clip(cur, edges[0], edges[-1]), edges)[0] / len(cur) + 1e-6
    return float(np.sum((c - r) * np.log(c / r)))


def wasserstein(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(stats.wasserstein_distance(ref, cur))


def median_bandwidth(x: np.ndarray, seed: int = 0, max_n: int = 500) -> float:
    rng = np.random.default_rng(seed)
    sub = x[rng.choice(len(x), size=min(max_n, len(x)), replace=False)]
    d2 = np.sum((sub[:, None, :] - sub[None, :, :]) ** 2, axis=-1)
    med = float(np.median(d2[d2 > 0])) if np.any(d2 > 0) else 1.0
    return med


def mmd2(x: np.ndarray, y: np.ndarray, gamma2: float) -> float:
    """Biased MMD² estimate with the RBF kernel k(a,b) = exp(−‖a−b‖²/γ²)."""

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2 * a @ b.T
        return np.exp(-np.maximum(d2, 0) / gamma2)

    return float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())


class MMDReference:
    """``mmd2(x, ·, gamma2)`` against a fixed ``x``: its kernel mean and squared norms are computed once
    (the drift calibration evaluates thousands of windows against the same reference)."""

    def __init__(self, x: np.ndarray, gamma2: float) -> None:
        self.x, self.gamma2 = np.asarray(x, dtype=np.float64), gamma2
        self.x_sq = np.sum(self.x * self.x, 1)
        self.kxx = float(self._k(self.x, self.x_sq, self.x).mean())

    def _k(self, a: np.ndarray, a_sq: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = a_sq[:, None] + np.sum(b * b, 1)[None, :] - 2 * a @ b.T
        return np.exp(-np.maximum(d2, 0) / self.gamma2)

    def mmd2(self, y: np.ndarray) -> float:
        y = np.asarray(y, dtype=np.float64)
        kyy = self._k(y, np.sum(y * y, 1), y).mean()
        return float(self.kxx + kyy - 2 * self._k(self.x, self.x_sq, y).mean())
