"""Label-only membership (Choquette-Choo et al. 2021), for APIs that answer labels only.

Score = the fraction of ``queries`` Gaussian-perturbed copies of x still classified as y, plus 1 when x
itself is (a misclassified record is very unlikely a member).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bastion.attacks.inference.membership.base import Scored, proba
from bastion.core.model import ModelAdapter


@dataclass(frozen=True)
class LabelOnlyConfig:
    queries: int = 16  # perturbed copies per record
    noise: float = 0.05  # their Gaussian noise (standard deviation, input units)
    seed: int = 0


def label_only_scores(model: ModelAdapter, x: np.ndarray, y: np.ndarray, cfg: LabelOnlyConfig) -> Scored:
    rng = np.random.default_rng(cfg.seed)
    spec = model.input_spec
    correct = np.zeros(len(x))
    for _ in range(cfg.queries):
        xn = x + rng.normal(0.0, cfg.noise, size=x.shape).astype(np.float32)
        if spec.clip_min is not None or spec.clip_max is not None:
            xn = np.clip(xn, spec.clip_min, spec.clip_max)
        correct += proba(model, xn.astype(np.float32)).argmax(axis=1) == y
    base = proba(model, x).argmax(axis=1) == y
    # a misclassified point is very unlikely a member: rank it below every correct one
    return Scored(correct / cfg.queries + base.astype(np.float64), len(x) * (cfg.queries + 1),
                  {"queries_per_sample": cfg.queries, "noise_std": cfg.noise})
