"""Randomised smoothing (Cohen, Rosenfeld & Kolter 2019, https://arxiv.org/abs/1902.02918).

The smoothed classifier g(x) = argmax_c P[f(x + δ) = c], δ ~ N(0, σ²I), is certifiably robust in
L2: if the top class has probability at least p_A (a Clopper–Pearson lower bound), g's prediction
cannot change within radius R = σ Φ⁻¹(p_A). ``certify`` returns that radius (or abstains);
``predict`` abstains when the top two classes are not significantly different. ``forward`` is the
servable Monte-Carlo vote (log vote frequencies), random on every call — which is why the
assessment attacks it with EOT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

ABSTAIN = -1


class RandomizedSmoothing(nn.Module):
    """``base`` under Gaussian noise of scale ``sigma``; ``n_samples`` noise draws per forward."""


    def __init__(self, base: nn.Module, sigma: float = 0.25, n_samples: int = 32) -> None:
        super().__init__()
        self.base = base
        self.bastion_defense = "randomized_smoothing"
        self.sigma = float(sigma)
        self.n_samples = int(n_samples)

    @torch.jit.export
    def noisy_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the base model on one Gaussian-noised copy of ``x`` (differentiable)."""
        return self.base(x + torch.randn_like(x) * self.sigma)

    @torch.jit.export
    def vote_counts(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """(batch, classes) counts of the base model's labels over ``n`` noise draws."""
        counts = torch.zeros(0)
        for i in range(n):
            logits = self.noisy_logits(x)
            if i == 0:
                counts = torch.zeros_like(logits)
            counts += nn.functional.one_hot(logits.argmax(dim=1), logits.shape[1]).to(counts.dtype)
        return counts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        counts = self.vote_counts(x, self.n_samples)
        return torch.log((counts + 0.5) / (self.n_samples + 0.5 * counts.shape[1]))


@dataclass
class Certificate:
    """Certified prediction per sample: class (−1 = abstain) and L2 radius (0 when abstaining)."""

    prediction: np.ndarray
    radius: np.ndarray
    p_lower: np.ndarray

    def certified_accuracy(self, y: np.ndarray, radius: float) -> float:
        """Fraction of samples predicted correctly with a certified radius ≥ ``radius``."""
        return float(np.mean((self.prediction == y) & (self.radius >= radius)))


def _counts(model: nn.Module, x: torch.Tensor, n: int, batch: int) -> np.ndarray:
    with torch.no_grad():
        total = None
        done = 0
        while done < n:
            k = min(batch, n - done)
            c = model.vote_counts(x, k)  # type: ignore[operator]
            total = c if total is None else total + c
            done += k
    assert total is not None
    return total.numpy().astype(np.int64)


def certify(model: RandomizedSmoothing | torch.jit.ScriptModule, x: np.ndarray, n0: int = 64, n: int = 512,
            alpha: float = 0.001, batch: int = 128, seed: int = 0) -> Certificate:
    """CERTIFY from Cohen et al.: pick the class with ``n0`` draws, bound p_A with ``n`` draws."""
    from scipy.stats import beta, norm

    torch.manual_seed(seed)
    xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
    sigma = float(model.sigma)
    c_hat = _counts(model, xt, n0, batch).argmax(axis=1)
    counts = _counts(model, xt, n, batch)
    n_a = counts[np.arange(len(xt)), c_hat]
    p_lower = np.where(n_a > 0, beta.ppf(alpha, n_a, n - n_a + 1), 0.0)  # one-sided Clopper-Pearson
    certified = p_lower > 0.5
    radius = np.where(certified, sigma * norm.ppf(np.clip(p_lower, 0.5, 1 - 1e-12)), 0.0)
    pred = np.where(certified, c_hat, ABSTAIN)
    return Certificate(pred.astype(np.int64), radius.astype(np.float64), p_lower.astype(np.float64))


def smoothed_predict(model: RandomizedSmoothing | torch.jit.ScriptModule, x: np.ndarray, n: int = 128,
                     alpha: float = 0.001, batch: int = 128, seed: int = 0) -> np.ndarray:
    """PREDICT from Cohen et al.: the top class, or −1 (abstain) when a binomial test between the
    top two counts is not significant at ``alpha``."""
    from scipy.stats import binomtest

    torch.manual_seed(seed)
    counts = _counts(model, torch.from_numpy(np.asarray(x, dtype=np.float32)), n, batch)
    order = np.argsort(-counts, axis=1)
    out = np.full(len(counts), ABSTAIN, dtype=np.int64)
    for i, row in enumerate(counts):
        a, b = int(row[order[i, 0]]), int(row[order[i, 1]])
        if a + b > 0 and binomtest(a, a + b, 0.5).pvalue <= alpha:
            out[i] = order[i, 0]
    return out
