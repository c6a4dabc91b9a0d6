"""Detectors on the reference model's penultimate activations, one class at a time.

- ``spectral_signature_scores`` — squared projection on the top singular vector of the class's
  centred activations (Tran et al. 2018, https://arxiv.org/abs/1811.00636).
- ``activation_clusters`` — 2-means on PCA(10) of the class's activations (Chen et al. 2018,
  https://arxiv.org/abs/1811.03728).
- ``spectre_scores`` — SPECTRE (Hayase et al. 2021, https://arxiv.org/abs/2104.11315): project
  on the class's top singular directions, whiten with a *robust* mean and covariance (here the
  minimum covariance determinant, ``sklearn.covariance.MinCovDet``, so a poisoned minority does
  not shape the whitening), then the quantum-entropy (QUE) score with α = 4, which interpolates
  between the whitened norm (α → 0) and the spectral signature (α → ∞).
- ``class_outlier_test`` — the robust squared Mahalanobis distance of each sample to its class
  core (same MCD fit), and per class a one-sided binomial test: does the class hold more samples
  beyond the pooled 97.5 % distance quantile than the other classes do? No number of clusters is
  assumed; a class whose tail is no heavier than its peers' gets a large p-value.

Examples:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> reps = rng.normal(size=(400, 8)); y = np.repeat([0, 1], 200)
    >>> reps[:20] += 6.0                     # 20 samples of class 0 far from their class
    >>> q = spectre_scores(reps, y, seed=0)
    >>> bool(q[:20].min() > np.median(q[20:200]))
    True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats


def spectral_signature_scores(reps: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per class: squared projection on the top right-singular vector of centred activations."""
    scores = np.zeros(len(y))
    for c in np.unique(y):
        m = y == c
        if m.sum() < 2:
            continue
        r = reps[m] - reps[m].mean(0)
        _, _, vt = np.linalg.svd(r, full_matrices=False)
        s = (r @ vt[0]) ** 2
        scores[m] = s / (s.max() + 1e-12)
    return scores


def activation_clusters(reps: np.ndarray, y: np.ndarray, components: int, seed: int, min_size: int) -> np.ndarray:
    """Per class 2-means on PCA(``components``) of activations; -1 where a class is too small."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    labels = np.full(len(y), -1)
    with threadpool_limits(1):
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            if len(idx) < min_size:
                continue
            r = reps[idx]
            n_comp = int(min(components, r.shape[1], len(idx) - 1))
            proj = PCA(n_comp, random_state=seed).fit_transform(r) if n_comp >= 1 else r
            labels[idx] = KMeans(2, n_init=4, random_state=seed).fit_predict(proj)
    return labels


def robust_fit(reps: np.ndarray, seed: int = 0, dims: int = 16, support_fraction: float = 0.6) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    """``(whitened, distance2, core)`` of one class: top-``dims`` projection, MCD-whitened."""
    from sklearn.covariance import MinCovDet
    from threadpoolctl import threadpool_limits

    n = len(reps)
    centred = reps - np.median(reps, axis=0)
    k = int(max(1, min(dims, reps.shape[1], n // 5)))
    _, sv, vt = np.linalg.svd(centred - centred.mean(0), full_matrices=False)
    keep = sv[:k] > 1e-8 * max(float(sv[0]), 1e-12)
    proj = centred @ vt[:k][keep].T
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        mcd = MinCovDet(support_fraction=support_fraction, random_state=seed).fit(proj)
    cov = mcd.covariance_ + 1e-6 * np.trace(mcd.covariance_) / proj.shape[1] * np.eye(proj.shape[1])
    evals, evecs = np.linalg.eigh(cov)
    inv_sqrt = evecs @ np.diag(1.0 / np.sqrt(np.clip(evals, 1e-12, None))) @ evecs.T
    z = (proj - mcd.location_) @ inv_sqrt
    return z, (z ** 2).sum(1), np.asarray(mcd.support_, dtype=bool)


def que_scores(z: np.ndarray, alpha: float = 4.0) -> np.ndarray:
    """Quantum-entropy outlier scores of whitened points ``z`` (Dong, Hopkins & Li 2019; SPECTRE step 3)."""
    n, d = z.shape
    cov = z.T @ z / max(n, 1)
    top = float(np.linalg.eigvalsh(cov)[-1])
    evals, evecs = np.linalg.eigh(alpha * (cov - np.eye(d)) / max(top - 1.0, 1e-6))
    m = evecs @ np.diag(np.exp(evals - evals.max())) @ evecs.T
    return np.einsum("ij,jk,ik->i", z, m, z) / float(np.trace(m))


def _fit_classes(reps: np.ndarray, y: np.ndarray, seed: int, min_size: int, dims: int) -> dict[int, tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    fits = {}
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) >= min_size:
            fits[int(c)] = (idx, *robust_fit(reps[idx], seed=seed, dims=dims))
    return fits


def spectre_scores(reps: np.ndarray, y: np.ndarray, seed: int = 0, min_size: int = 20, dims: int = 16,
                   alpha: float = 4.0) -> np.ndarray:
    """Per-sample SPECTRE QUE scores, each divided by its class's median score (0 where a class is too small)."""
    out = np.zeros(len(y))
    for idx, z, _, _ in _fit_classes(reps, y, seed, min_size, dims).values():
        q = que_scores(z, alpha)
        out[idx] = q / (np.median(q) + 1e-12)
    return out


@dataclass
class ClassOutlierResult:
    """Per-sample robust distances (divided by the class median) and one binomial p-value per class."""

    distance: np.ndarray
    tail_threshold: float
    classes: list[dict[str, Any]] = field(default_factory=list)

    def p_values(self) -> dict[int, float]:
        return {int(c["class"]): float(c["p_value"]) for c in self.classes}


def class_outlier_test(reps: np.ndarray, y: np.ndarray, seed: int = 0, min_size: int = 20, dims: int = 16,
                       tail: float = 0.975) -> ClassOutlierResult:
    """Robust Mahalanobis distance of every sample to its class core; per class, a one-sided binomial
    test of its share of samples beyond the pooled ``tail`` quantile against the other classes' share."""
    dist = np.zeros(len(y))
    fits = _fit_classes(reps, y, seed, min_size, dims)
    for idx, _, d2, _ in fits.values():
        dist[idx] = d2 / (np.median(d2) + 1e-12)
    members = np.concatenate([f[0] for f in fits.values()]) if fits else np.zeros(0, dtype=np.int64)
    thr = float(np.quantile(dist[members], tail)) if len(members) else np.inf
    res = ClassOutlierResult(dist, thr)
    for c, (idx, *_rest) in fits.items():
        over = int((dist[idx] > thr).sum())
        others = np.setdiff1d(members, idx)
        base = float(np.mean(dist[others] > thr)) if len(others) else 1.0 - tail
        p = float(stats.binomtest(over, len(idx), min(max(base, 1e-6), 1 - 1e-6), alternative="greater").pvalue)
        res.classes.append({"class": c, "n": len(idx), "beyond_tail": over, "expected": round(base * len(idx), 2),
                            "p_value": p})
    return res
