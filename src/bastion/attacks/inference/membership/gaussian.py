"""LiRA's Gaussian fits of φ over reference models, and the scores they give (Carlini et al. 2022)."""

from __future__ import annotations

import numpy as np


def gaussian_fit(ref: np.ndarray, mask: np.ndarray, variance: str, prior: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-record mean and variance of ``ref`` (M, n) over the models where ``mask`` is set.

    ``variance``: ``global`` (one variance), ``per_example``, or ``shrunk``: (prior·s²_global + Σ residual²) /
    (prior + n − 1), the posterior mean of the variance under a scaled-inverse-χ² prior centred on the
    global variance with ``prior`` pseudo-records. Records with no model in ``mask`` get NaN means (the
    caller fills them).
    """
    n = mask.sum(axis=0)
    mu = np.where(mask, ref, 0.0).sum(axis=0) / np.maximum(n, 1)
    mu = np.where(n > 0, mu, np.nan)
    ss = np.where(mask, (ref - np.nan_to_num(mu)) ** 2, 0.0).sum(axis=0)
    dof = np.maximum(n - 1, 0)
    glob = float(ss.sum() / max(int(dof.sum()), 1)) + 1e-12
    if variance == "global":
        var = np.full(ref.shape[1], glob)
    elif variance == "per_example":
        var = np.where(dof > 0, ss / np.maximum(dof, 1), glob)
    else:
        var = (prior * glob + ss) / np.maximum(prior + dof, 1e-12)
    return mu, np.maximum(var, 1e-12)


def online_fits(ref_phi: np.ndarray, in_mask: np.ndarray, variance: str,
                prior: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IN and OUT Gaussian fits per record: ``(mu_in, var_in, mu_out, var_out)``. A record no model
    trained on (or every model did) gets the missing mean from the other one and the mean IN−OUT gap."""
    mu_in, var_in = gaussian_fit(ref_phi, in_mask, variance, prior)
    mu_out, var_out = gaussian_fit(ref_phi, ~in_mask, variance, prior)
    both = ~np.isnan(mu_in) & ~np.isnan(mu_out)
    gap = float(np.mean((mu_in - mu_out)[both])) if both.any() else 0.0
    mu_in = np.where(np.isnan(mu_in), mu_out + gap, mu_in)
    mu_out = np.where(np.isnan(mu_out), mu_in - gap, mu_out)
    return mu_in, var_in, mu_out, var_out


def lira_score(phi: np.ndarray, ref_phi: np.ndarray, in_mask: np.ndarray | None, variance: str = "shrunk",
               prior: float = 4.0) -> np.ndarray:
    """Offline (``in_mask`` None): z-score against the OUT fit. Online: log N(φ; IN) − log N(φ; OUT)."""
    if in_mask is None:
        mu_out, var_out = gaussian_fit(ref_phi, np.ones_like(ref_phi, dtype=bool), variance, prior)
        return np.asarray((phi - mu_out) / np.sqrt(var_out))
    return log_ratio(phi, *online_fits(ref_phi, in_mask, variance, prior))


def log_ratio(phi: np.ndarray, mu_in: np.ndarray, var_in: np.ndarray, mu_out: np.ndarray,
              var_out: np.ndarray) -> np.ndarray:
    """log N(φ; mu_in, var_in) − log N(φ; mu_out, var_out)."""
    ll_in = -0.5 * (phi - mu_in) ** 2 / var_in - 0.5 * np.log(var_in)
    ll_out = -0.5 * (phi - mu_out) ** 2 / var_out - 0.5 * np.log(var_out)
    return np.asarray(ll_in - ll_out)
