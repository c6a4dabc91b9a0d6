"""LiRA (Carlini et al. 2022, https://arxiv.org/abs/2112.03570): Gaussian fits of the logit-scaled
confidence φ(x) = log p_y − log(1 − p_y) under reference models.

Online reference models give every candidate IN and OUT fits (score = the log-likelihood ratio),
offline ones OUT fits only (score = z-score against the OUT fit). ``scorer="learned"`` replaces the
Gaussian score by a decision function learned from the reference models (:mod:`.learned`), from
:data:`LEARNED_MIN_EXAMPLES` model × record pairs on (else the Gaussian score), calibrated against each
record's ``neighbours`` (:mod:`.neighbours`). With ``augment`` image inputs are also measured on 1-pixel
shifts and the per-view scores summed (for shift-invariant CNNs only, so it is off by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from bastion.attacks.inference.membership.base import Scored, log_proba
from bastion.attacks.inference.membership.gaussian import lira_score
from bastion.attacks.inference.membership.learned import LearnedConfig, learned_lira, learned_lira_offline
from bastion.attacks.inference.membership.neighbours import candidate_neighbours
from bastion.attacks.inference.membership.references import References
from bastion.attacks.inference.reference import logit_confidence
from bastion.core.model import ModelAdapter

LiraVariance = Literal["global", "per_example", "shrunk"]
LiraScorer = Literal["gaussian", "learned"]
# below this many (reference model, candidate) pairs the learned scorer falls back to the Gaussian ratio
# (it overfits fewer); scikit-learn's gradient boosting also holds out a validation split for early
# stopping from 10,000 examples on
LEARNED_MIN_EXAMPLES = 10_000


@dataclass(frozen=True)
class LiraConfig:
    variance: LiraVariance = "shrunk"  # see gaussian.gaussian_fit
    variance_prior: float = 4.0  # pseudo-records of the global variance in the shrunk one
    scorer: LiraScorer = "learned"
    neighbours: int = 10  # learned scorer: neighbour-calibration features (k, 3k same label, k any); 0 = off
    augment: bool = False  # image inputs: also score 1-pixel shifts
    seed: int = 0

    @property
    def learned(self) -> LearnedConfig:
        return LearnedConfig(self.variance, self.variance_prior, self.seed)


def image_views(x: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    """The input and its 1-pixel shifts (wrap-around) for image inputs ``(C, H, W)``; else just the input."""
    if len(shape) != 3 or min(shape[1:]) < 8:
        return [x]
    xs = x.reshape(len(x), *shape)
    return [xs, *(np.roll(xs, s, axis=a) for a in (2, 3) for s in (1, -1))]


def lira_scores(model: ModelAdapter, refs: References, x_all: np.ndarray, y_all: np.ndarray,
                x_pop: np.ndarray | None, y_pop: np.ndarray | None, cfg: LiraConfig) -> Scored:
    ens, online, params = refs.ensemble, refs.online, refs.params
    shape = model.input_spec.shape
    views = image_views(x_all, shape) if cfg.augment else [x_all]
    phis, ref_phis = [], []
    for i, xv in enumerate(views):
        lp = refs.logp_target if i == 0 else log_proba(model, xv)
        phis.append(logit_confidence(lp[None], y_all)[0])
        ref_phis.append(logit_confidence(ens.log_proba(xv), y_all))  # (M, n)
    # the learned scorer needs enough (model, record) examples not to overfit them; offline ones
    # come from the population the reference models were trained on (their masks)
    n_pairs = ens.n_models * ens.masks.shape[1]
    offline_pop = not online and x_pop is not None and y_pop is not None and ens.masks.shape[1] == len(x_pop)
    learned = (cfg.scorer == "learned" and ens.n_models >= 4 and n_pairs >= LEARNED_MIN_EXAMPLES
               and (online or offline_pop))
    tab = len(shape) == 1
    in_mask = refs.in_mask
    if learned and online:
        assert in_mask is not None
        nbrs = candidate_neighbours(x_all, y_all, cfg.neighbours, standardise=tab) if cfg.neighbours > 0 else None
        scores = learned_lira(phis, ref_phis, in_mask, cfg.learned, nbrs)
        params.update(neighbours=cfg.neighbours)
    elif learned:
        assert x_pop is not None and y_pop is not None
        yp = np.asarray(y_pop, dtype=np.int64)
        pop_views = image_views(x_pop, shape) if cfg.augment else [x_pop]
        pop_phis = [logit_confidence(ens.log_proba(xv), yp) for xv in pop_views]
        nb_pair = ((candidate_neighbours(x_all, y_all, cfg.neighbours, standardise=tab),
                    candidate_neighbours(x_pop, yp, cfg.neighbours, standardise=tab))
                   if cfg.neighbours > 0 else None)
        scores = learned_lira_offline(phis, ref_phis, pop_phis, ens.masks, cfg.learned, nb_pair)
        params.update(neighbours=cfg.neighbours)
    else:
        scores = np.sum([lira_score(ph, rp, in_mask, cfg.variance, cfg.variance_prior)
                         for ph, rp in zip(phis, ref_phis, strict=True)], axis=0)
    params.update(views=len(views), variance=cfg.variance, variance_prior=cfg.variance_prior,
                  lira_scorer="learned" if learned else "gaussian")
    if online:
        per_record = ens.masks.sum(axis=0)
        params.update(in_models_per_record=[int(per_record.min()), int(per_record.max())])
    return Scored(scores, len(x_all) * len(views), params, ens)
