"""RMIA (Zarifzadeh et al. 2024, https://arxiv.org/abs/2312.03262): the likelihood ratio of x against
population points z, with Pr(x) from the OUT reference models (offline approximation with ``offline_a``).
Score = the fraction of ``population`` sampled z whose ratio x beats by more than ``gamma``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bastion.attacks.inference.membership.base import Scored, log_proba
from bastion.attacks.inference.membership.references import References
from bastion.core.model import ModelAdapter


@dataclass(frozen=True)
class RmiaConfig:
    gamma: float = 2.0
    offline_a: float = 0.3
    population: int = 1000  # population points z sampled
    seed: int = 0


def _p_label(logp: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p_y from log-probabilities ``(n, classes)`` or per model ``(M, n, classes)``."""
    return np.exp(np.take_along_axis(logp, labels[..., None] if logp.ndim == 2 else
                                     np.broadcast_to(labels[None, :, None], (*logp.shape[:2], 1)), axis=-1)[..., 0])


def rmia_scores(model: ModelAdapter, refs: References, x_all: np.ndarray, y_all: np.ndarray,
                x_pop: np.ndarray | None, y_pop: np.ndarray | None, cfg: RmiaConfig) -> Scored:
    assert x_pop is not None and y_pop is not None
    ens, in_mask, a = refs.ensemble, refs.in_mask, cfg.offline_a
    rng = np.random.default_rng(cfg.seed + 1)
    zi = rng.permutation(len(x_pop))[: cfg.population]
    xz, yz = x_pop[zi], np.asarray(y_pop, np.int64)[zi]

    px_theta = _p_label(refs.logp_target, y_all)
    ref_px = _p_label(ens.log_proba(x_all), y_all)  # (M, n)
    out = np.ones_like(ref_px, dtype=bool) if in_mask is None else ~in_mask
    px_out = np.where(out, ref_px, 0.0).sum(axis=0) / np.maximum(out.sum(axis=0), 1)
    px = ((1 + a) * px_out + (1 - a)) / 2
    pz_theta = np.exp(log_proba(model, xz)[np.arange(len(yz)), yz])
    ref_pz = _p_label(ens.log_proba(xz), yz)
    # z's OUT models: offline reference models trained on half of the population, z included
    out_z = ~ens.masks[:, zi] if in_mask is None and ens.masks.shape[1] == len(x_pop) else np.ones_like(ref_pz, bool)
    pz_out = np.where(out_z, ref_pz, 0.0).sum(axis=0) / np.maximum(out_z.sum(axis=0), 1)
    pz = ((1 + a) * pz_out + (1 - a)) / 2
    ratio_x = px_theta / px
    ratio_z = pz_theta / pz
    zs = np.sort(ratio_z)
    # fraction of z with ratio_x / ratio_z > gamma  ⇔  ratio_z < ratio_x / gamma
    scores = np.asarray(np.searchsorted(zs, ratio_x / cfg.gamma, side="left") / len(zs), dtype=np.float64)
    refs.params.update(rmia_gamma=cfg.gamma, rmia_offline_a=cfg.offline_a,
                       rmia_population=min(cfg.population, len(x_pop)))
    return Scored(scores, len(x_all) + min(cfg.population, len(x_pop)), refs.params, ens)
