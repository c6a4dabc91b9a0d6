"""LiRA's learned scorer: a gradient-boosted decision function fitted on the reference models themselves.

Each reference model in turn plays the target (leave-one-out), labelled by its own training mask; the
classifier fitted on those model × record examples then scores the real target's features. It uses no
label of the target's, only what the attacker built, and corrects what the Gaussian fits get wrong
(e.g. φ far above the IN mean, which the two-Gaussian ratio penalises). Measured gains: docs/privacy.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bastion.attacks.inference.membership.gaussian import gaussian_fit, log_ratio, online_fits
from bastion.attacks.inference.membership.neighbours import neighbour_mean


@dataclass(frozen=True)
class LearnedConfig:
    variance: str = "shrunk"  # of the Gaussian fits its features come from (gaussian.gaussian_fit)
    variance_prior: float = 4.0
    seed: int = 0


def lira_features(phi: np.ndarray, ref_phi: np.ndarray, in_mask: np.ndarray, cfg: LearnedConfig,
                  neighbours: list[np.ndarray] | None = None) -> np.ndarray:
    """Per-record features of online LiRA: the Gaussian log-likelihood ratio, φ's z-scores under the IN
    and OUT fits, the IN−OUT gap, both log-variances and φ itself: ``(n, 7)``; with ``neighbours``
    (index arrays from :func:`~bastion.attacks.inference.membership.neighbours.candidate_neighbours`) also,
    per set, the mean OUT z-score and the mean likelihood ratio of the record's neighbours under the same
    model: ``(n, 7 + 2·sets)``.

    The neighbour features calibrate for what the fits cannot see: how much of this model's training
    data lies near the record (a record's OUT residual correlates with that share).
    """
    mu_in, var_in, mu_out, var_out = online_fits(ref_phi, in_mask, cfg.variance, cfg.variance_prior)
    llr = log_ratio(phi, mu_in, var_in, mu_out, var_out)
    z_out = (phi - mu_out) / np.sqrt(var_out)
    cols = [llr, (phi - mu_in) / np.sqrt(var_in), z_out, mu_in - mu_out, np.log(var_in), np.log(var_out), phi]
    for idx in neighbours or []:
        cols += [neighbour_mean(z_out, idx), neighbour_mean(llr, idx)]
    return np.stack(cols, axis=1)


def offline_features(phi: np.ndarray, ref_phi: np.ndarray, out_mask: np.ndarray, cfg: LearnedConfig,
                     neighbours: list[np.ndarray] | None = None) -> np.ndarray:
    """Per-record features of offline LiRA: φ, the OUT mean and φ's z-score under the OUT fit: ``(n, 3)``;
    with ``neighbours`` also the mean z-score of each neighbour set under the same model."""
    mu_out, var_out = gaussian_fit(ref_phi, out_mask, cfg.variance, cfg.variance_prior)
    mu_out = np.where(np.isnan(mu_out), np.nanmean(mu_out) if (~np.isnan(mu_out)).any() else 0.0, mu_out)
    z = (phi - mu_out) / np.sqrt(var_out)
    return np.stack([phi, mu_out, z, *(neighbour_mean(z, idx) for idx in neighbours or [])], axis=1)


def boosted_scores(ref_phis: list[np.ndarray], mask: np.ndarray,
                   features: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
                   target_features: np.ndarray, seed: int) -> np.ndarray:
    """Fit a membership classifier on the reference models and score the target's features with it.

    Each reference model ``j`` in turn plays the target: ``features(φ_j, φ of the other models, their
    masks)`` on the records of ``ref_phis`` (concatenated over views), labelled by ``mask[j]``. The
    gradient-boosted classifier fitted on those M × n examples returns log-odds for ``target_features``.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    m = mask.shape[0]
    xs, ys = [], []
    for j in range(m):
        keep = np.arange(m) != j
        xs.append(np.concatenate([features(rp[j], rp[keep], mask[keep]) for rp in ref_phis], axis=1))
        ys.append(mask[j])
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=seed)
    clf.fit(np.nan_to_num(np.concatenate(xs)), np.concatenate(ys).astype(np.int64))
    # log-odds keep the low-FPR tail ordered where probabilities would saturate
    return np.asarray(clf.decision_function(np.nan_to_num(target_features)), dtype=np.float64)


def learned_lira(phis: list[np.ndarray], ref_phis: list[np.ndarray], in_mask: np.ndarray,
                 cfg: LearnedConfig, neighbours: list[np.ndarray] | None = None) -> np.ndarray:
    """Online LiRA with the learned decision function: each reference model's φ on every candidate, with
    features from the other M − 1 models (:func:`lira_features`), labelled by its mask row. With
    ``neighbours`` the features also describe the record's nearest candidates under the same model."""
    def feats(ph: np.ndarray, rp: np.ndarray, msk: np.ndarray) -> np.ndarray:
        return lira_features(ph, rp, msk, cfg, neighbours)

    target = np.concatenate([feats(ph, rp, in_mask) for ph, rp in zip(phis, ref_phis, strict=True)], axis=1)
    return boosted_scores(ref_phis, in_mask, feats, target, cfg.seed)


def learned_lira_offline(phis: list[np.ndarray], ref_phis: list[np.ndarray], pop_phis: list[np.ndarray],
                         pop_mask: np.ndarray, cfg: LearnedConfig,
                         neighbours: tuple[list[np.ndarray], list[np.ndarray]] | None = None) -> np.ndarray:
    """Offline LiRA with a decision function learned on the population.

    Each offline reference model in turn plays the target on the population records: features φ, OUT
    mean and z-score from the other models' OUT fits (the models that did not train on the record),
    labelled by whether it trained on the record. The classifier then scores the target's φ on the
    candidates against the OUT fits of all models (none trained on a candidate). No target labels.
    ``neighbours`` = (candidates' neighbour sets among the candidates, population records' among the
    population) adds the neighbours' mean z-scores.
    """
    cand_nb, pop_nb = neighbours if neighbours is not None else (None, None)
    out_all = np.ones_like(ref_phis[0], dtype=bool)
    feats = np.concatenate([offline_features(ph, rp, out_all, cfg, cand_nb)
                            for ph, rp in zip(phis, ref_phis, strict=True)], axis=1)
    return boosted_scores(pop_phis, pop_mask, lambda ph, rp, msk: offline_features(ph, rp, ~msk, cfg, pop_nb),
                          feats, cfg.seed)
