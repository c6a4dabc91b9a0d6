"""``run_membership``: score members and non-members with one method and compute the attack's metrics;
``default_method``: the strongest attack a model's answers allow."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from bastion.attacks.inference.membership.base import Ensemble, MembershipResult, Scored, check_labelled
from bastion.attacks.inference.membership.config import MembershipConfig, MembershipMethod
from bastion.attacks.inference.membership.label_only import label_only_scores
from bastion.attacks.inference.membership.lira import lira_scores
from bastion.attacks.inference.membership.references import prepare_references
from bastion.attacks.inference.membership.rmia import rmia_scores
from bastion.attacks.inference.membership.threshold import threshold_scores
from bastion.attacks.inference.metrics import membership_metrics
from bastion.core.model import ModelAdapter


@dataclass
class _Candidates:
    """The candidate records (members first) and what a reference-model attack may use besides."""

    x: np.ndarray
    y: np.ndarray
    n_members: int
    x_pop: np.ndarray | None
    y_pop: np.ndarray | None
    reference_factory: Callable[[], nn.Module] | None
    progress: Callable[[float, float], None] | None
    reference: Ensemble | None


def _threshold(model: ModelAdapter, cfg: MembershipConfig, c: _Candidates) -> Scored:
    return threshold_scores(model, c.x, c.y, cfg.threshold())


def _label_only(model: ModelAdapter, cfg: MembershipConfig, c: _Candidates) -> Scored:
    return label_only_scores(model, c.x, c.y, cfg.label_only())


def _lira(model: ModelAdapter, cfg: MembershipConfig, c: _Candidates) -> Scored:
    refs = prepare_references(model, cfg.references(), c.x, c.y, c.n_members, c.x_pop, c.y_pop,
                              c.reference_factory, c.progress, c.reference)
    return lira_scores(model, refs, c.x, c.y, c.x_pop, c.y_pop, cfg.lira())


def _rmia(model: ModelAdapter, cfg: MembershipConfig, c: _Candidates) -> Scored:
    refs = prepare_references(model, cfg.references(), c.x, c.y, c.n_members, c.x_pop, c.y_pop,
                              c.reference_factory, c.progress, c.reference)
    return rmia_scores(model, refs, c.x, c.y, c.x_pop, c.y_pop, cfg.rmia())


_METHODS: dict[str, Callable[[ModelAdapter, MembershipConfig, _Candidates], Scored]] = {
    "loss": _threshold, "confidence": _threshold, "label_only": _label_only, "lira": _lira, "rmia": _rmia,
}


def run_membership(
    model: ModelAdapter,
    x_members: np.ndarray,
    y_members: np.ndarray,
    x_nonmembers: np.ndarray,
    y_nonmembers: np.ndarray,
    config: MembershipConfig | None = None,
    x_pop: np.ndarray | None = None,
    y_pop: np.ndarray | None = None,
    reference_factory: Callable[[], nn.Module] | None = None,
    progress: Callable[[float, float], None] | None = None,
    reference: Ensemble | None = None,
) -> MembershipResult:
    """Score members and non-members with one attack and compute its metrics.

    ``reference`` reuses an already trained ensemble (e.g. to run LiRA and RMIA on the same models).
    """
    cfg = config or MembershipConfig()
    t0 = time.perf_counter()
    k = model.n_classes
    ym, yn = np.asarray(y_members, dtype=np.int64), np.asarray(y_nonmembers, dtype=np.int64)
    check_labelled(x_members, ym, "members", k)
    check_labelled(x_nonmembers, yn, "non-members", k)
    nm = len(x_members)
    cands = _Candidates(np.concatenate([x_members, x_nonmembers]), np.concatenate([ym, yn]), nm, x_pop, y_pop,
                        reference_factory, progress, reference)
    params: dict[str, Any] = {"method": cfg.method, "delta": cfg.delta, "seed": cfg.seed}
    scored = _METHODS[cfg.method](model, cfg, cands)
    params.update(scored.params)
    scores = scored.scores
    metrics = membership_metrics(scores[:nm], scores[nm:], cfg.delta)
    params.update(n_members=nm, n_nonmembers=len(x_nonmembers))
    return MembershipResult(cfg.method, metrics, scores[:nm], scores[nm:], params, scored.queries,
                            time.perf_counter() - t0, scored.reference)


def default_method(model: ModelAdapter, x: np.ndarray) -> tuple[MembershipMethod, str]:
    """The strongest attack the model's answers allow, and why: online LiRA when it returns scores,
    ``label_only`` when it answers labels only (an output policy, or one-hot answers on ``x[:64]``)."""
    policy = getattr(model, "policy", None)
    if policy is not None and not getattr(policy, "reveals_probabilities", True):
        return "label_only", f"the model answers labels only (output policy {getattr(policy, 'type', '?')})"
    p = np.asarray(model.predict_proba(x[:64]))
    if p.size and np.isin(p, (0.0, 1.0)).all():
        return "label_only", "the model's answers are one-hot: labels only"
    return "lira", "the model returns scores: online LiRA with reference models (the strongest attack measured)"
