"""Reference models for LiRA and RMIA: which records they train on, training (or reusing) them, and
how well they imitate the target.

``online`` reference models train on the candidate records themselves (each on ``set_size`` of them,
balanced masks), ``offline`` ones on attacker-held population data only. The models themselves are
planned and trained by :mod:`bastion.attacks.inference.planning`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from torch import nn

from bastion.attacks.inference.membership.base import Ensemble, log_proba
from bastion.attacks.inference.planning import ReferencePlanConfig, build_reference_models
from bastion.attacks.inference.recipe import FitStats
from bastion.attacks.inference.reference import logit_confidence
from bastion.core.errors import ConfigError
from bastion.core.model import ModelAdapter


@dataclass(frozen=True)
class ReferenceConfig:
    attack: str  # the method using them (for messages)
    plan: ReferencePlanConfig
    mode: Literal["offline", "online"] = "online"
    subset_fraction: float = 0.5
    set_size: int | None = None  # records per reference model (overrides the fraction)
    needs_population: bool = False


@dataclass
class References:
    """Reference models ready to score the candidates, with the target's log-probabilities on them."""

    ensemble: Ensemble
    params: dict[str, Any]
    logp_target: np.ndarray  # (n, classes) on the candidates
    online: bool

    @property
    def in_mask(self) -> np.ndarray | None:
        """(models, candidates): which model trained on which candidate (online only)."""
        return self.ensemble.masks if self.online else None


def online_set_size(n_train: int, n_candidates: int) -> int:
    """Records per online reference model: the target's training-set size, at most half the candidates
    (so every candidate keeps OUT models too)."""
    return max(1, min(n_train, n_candidates // 2))


def reference_fit(ens: Ensemble, x: np.ndarray, y: np.ndarray) -> FitStats:
    """How the reference models fit their own pool ``x`` (φ deciles over their IN and OUT records)."""
    lp = ens.log_proba(x)
    yb = np.broadcast_to(np.asarray(y, dtype=np.int64), ens.masks.shape)
    return FitStats.of(lp[ens.masks], yb[ens.masks], lp[~ens.masks], yb[~ens.masks])


def prepare_references(
    model: ModelAdapter, cfg: ReferenceConfig, x_all: np.ndarray, y_all: np.ndarray, nm: int,
    x_pop: np.ndarray | None, y_pop: np.ndarray | None, reference_factory: Callable[[], nn.Module] | None,
    progress: Callable[[float, float], None] | None, reference: Ensemble | None,
) -> References:
    """Train (or reuse ``reference``) the reference models for the candidates ``x_all`` (the first ``nm``
    are members), and record how they were built and how closely they fit like the target."""
    online = cfg.mode == "online"
    if cfg.needs_population and (x_pop is None or y_pop is None or len(x_pop) < 10):
        raise ConfigError(f"{cfg.attack} ({cfg.mode}) needs attacker population data (x_pop/y_pop, "
                          ">= 10 records) to train reference models; add x_pop/y_pop to the .npz, or use "
                          "--reference-mode online (LiRA; needs none)")
    if online:  # reference models train on the candidates themselves
        train_x, train_y = x_all, y_all
    else:
        assert x_pop is not None and y_pop is not None
        train_x, train_y = x_pop, np.asarray(y_pop, dtype=np.int64)
    set_size = min(len(train_x), cfg.set_size if cfg.set_size is not None else
                   max(1, round(cfg.subset_fraction * len(train_x))))
    logp_target = log_proba(model, x_all)
    target_fit = FitStats.of(logp_target[:nm], y_all[:nm], logp_target[nm:], y_all[nm:])
    fit_scale = float(np.std(logit_confidence(logp_target[None], y_all)[0]))
    if reference is None:
        ens, params = build_reference_models(model, train_x, train_y, set_size, target_fit, fit_scale, cfg.plan,
                                             reference_factory, progress)
    else:
        ens, params = reference, {"reference_arch": reference.arch, "reference_reused": True,
                                  "n_reference": reference.n_models}
    if online and ens.masks.shape[1] != len(x_all):
        raise ConfigError(f"online reference models must be trained on the {len(x_all)} candidates; the ensemble "
                          f"given was trained on {ens.masks.shape[1]} records")
    achieved = reference_fit(ens, train_x, train_y)
    params.update(n_population=0 if x_pop is None else len(x_pop), reference_mode=cfg.mode,
                  reference_set_size=int(ens.masks.sum(axis=1)[0]),
                  reference_pool="candidates" if online else "population",
                  fit_match={"target": target_fit.to_dict(), "references": achieved.to_dict(),
                             "distance": round(achieved.distance(target_fit, fit_scale), 4)})
    return References(ens, params, logp_target, online)
