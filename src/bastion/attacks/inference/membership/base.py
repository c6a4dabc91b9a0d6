"""What every membership method shares: the result, input checks and the target's (log-)probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.attacks.inference.clone import SklearnReferenceEnsemble
from bastion.attacks.inference.metrics import MembershipMetrics
from bastion.attacks.inference.reference import ReferenceEnsemble
from bastion.core.errors import InvalidInputError
from bastion.core.model import ModelAdapter

Ensemble = ReferenceEnsemble | SklearnReferenceEnsemble


@dataclass
class MembershipResult:
    method: str
    metrics: MembershipMetrics
    member_scores: np.ndarray
    nonmember_scores: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    queries: int = 0
    duration_s: float = 0.0
    reference: Ensemble | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"attack": "membership", "method": self.method, **self.metrics.to_dict(),
                "queries": self.queries, "duration_s": round(self.duration_s, 3), "params": dict(self.params)}


@dataclass
class Scored:
    """What a method returns: per-candidate scores (higher = more likely a member), the queries it sent
    to the target, the parameters it records, and the reference models it used (if any)."""

    scores: np.ndarray
    queries: int
    params: dict[str, Any] = field(default_factory=dict)
    reference: Ensemble | None = None


def proba(model: ModelAdapter, x: np.ndarray, batch: int = 512) -> np.ndarray:
    return np.concatenate([np.asarray(model.predict_proba(x[i : i + batch]), dtype=np.float64)
                           for i in range(0, len(x), batch)])


def log_proba(model: ModelAdapter, x: np.ndarray) -> np.ndarray:
    """Log-probabilities, from the logits in float64 when the model exposes them (no underflow of
    tiny probabilities of a very confident model), else from its probabilities."""
    logits_fn = getattr(model, "predict_logits", None)
    if callable(logits_fn):
        z = np.asarray(logits_fn(x), dtype=np.float64)
        mx = z.max(axis=1, keepdims=True)
        return np.asarray(z - mx - np.log(np.exp(z - mx).sum(axis=1, keepdims=True)))
    return np.log(np.clip(proba(model, x), 1e-300, 1.0))


def check_labelled(x: np.ndarray, y: np.ndarray, name: str, n_classes: int) -> None:
    if len(x) != len(y):
        raise InvalidInputError(f"{name}: {len(x)} inputs but {len(y)} labels")
    if len(x) == 0:
        raise InvalidInputError(f"{name} is empty")
    if y.min() < 0 or y.max() >= n_classes:
        raise InvalidInputError(f"{name} labels must lie in [0, {n_classes - 1}], got [{y.min()}, {y.max()}]")
