"""Attribute inference on tabular data: recover a sensitive column from the model's answers.

The attacker knows every column of a record except the sensitive one, plus its label, and can
query the model. Following Fredrikson et al. (2014) and Yeom et al. (2018), each candidate value
of the sensitive column is filled in and the model's log-probability of the known label is
recorded; a classifier over [known columns, label, those log-probabilities] trained on the
attacker's auxiliary data predicts the sensitive value (binned by quantiles). The score is its
accuracy on the target records against a **baseline without model access** (the same classifier
without the model's answers): the difference is what the model leaks.

Examples:
    >>> from bastion.models.zoo import demo_target
    >>> t = demo_target("breast-cancer")
    >>> r = run_attribute_inference(t.model, t.data.x_train, t.data.y_train, t.data.x_test, t.data.y_test,
    ...                             sensitive=0)
    >>> 0.0 <= r.attack_accuracy <= 1.0
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.model import ModelAdapter


@dataclass
class AttributeResult:
    sensitive: int
    n_bins: int
    attack_accuracy: float
    baseline_accuracy: float
    model_only_accuracy: float
    queries: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def advantage(self) -> float:
        return self.attack_accuracy - self.baseline_accuracy

    def to_dict(self) -> dict[str, Any]:
        return {"attack": "attribute", "sensitive_column": self.sensitive, "n_bins": self.n_bins,
                "attack_accuracy": self.attack_accuracy, "baseline_accuracy": self.baseline_accuracy,
                "model_only_accuracy": self.model_only_accuracy, "advantage": self.advantage,
                "queries": self.queries, "params": dict(self.params)}


def _candidate_logp(model: ModelAdapter, x: np.ndarray, y: np.ndarray, col: int, values: np.ndarray) -> np.ndarray:
    out = np.empty((len(x), len(values)))
    for j, v in enumerate(values):
        xc = x.copy()
        xc[:, col] = v
        p = np.concatenate([model.predict_proba(xc[i : i + 512]) for i in range(0, len(xc), 512)])
        out[:, j] = np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))
    return out


def run_attribute_inference(
    model: ModelAdapter,
    x_target: np.ndarray,
    y_target: np.ndarray,
    x_aux: np.ndarray,
    y_aux: np.ndarray,
    sensitive: int,
    n_bins: int = 2,
    seed: int = 0,
) -> AttributeResult:
    """Infer column ``sensitive`` of ``x_target`` (the model's training records) from model answers."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_target = np.asarray(x_target, dtype=np.float32).reshape(len(x_target), -1)
    x_aux = np.asarray(x_aux, dtype=np.float32).reshape(len(x_aux), -1)
    d = x_target.shape[1]
    if not 0 <= sensitive < d:
        raise ConfigError(f"--sensitive column {sensitive} is out of range: the data has {d} columns")
    if n_bins < 2:
        raise ConfigError(f"--bins must be >= 2, got {n_bins}")
    if len(x_aux) < 2 * n_bins:
        raise InvalidInputError(f"attribute inference needs auxiliary data (>= {2 * n_bins} records)")
    k = model.n_classes
    yt, ya = np.asarray(y_target, dtype=np.int64), np.asarray(y_aux, dtype=np.int64)
    edges = np.quantile(x_aux[:, sensitive], np.linspace(0, 1, n_bins + 1)[1:-1])

    def bins(v: np.ndarray) -> np.ndarray:
        return np.searchsorted(edges, v, side="right")

    ba, bt = bins(x_aux[:, sensitive]), bins(x_target[:, sensitive])
    values = np.array([np.median(x_aux[ba == b, sensitive]) if (ba == b).any() else edges[min(b, len(edges) - 1)]
                       for b in range(n_bins)], dtype=np.float32)
    la = _candidate_logp(model, x_aux, ya, sensitive, values)
    lt = _candidate_logp(model, x_target, yt, sensitive, values)
    keep = [c for c in range(d) if c != sensitive]

    def feats(x: np.ndarray, y: np.ndarray, logp: np.ndarray | None) -> np.ndarray:
        parts = [x[:, keep], np.eye(k)[y]]
        if logp is not None:
            parts.append(logp - logp.max(axis=1, keepdims=True))
        return np.concatenate(parts, axis=1)

    def clf() -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))

    attack = clf().fit(feats(x_aux, ya, la), ba)
    baseline = clf().fit(feats(x_aux, ya, None), ba)
    prior = np.log(np.bincount(ba, minlength=n_bins) + 1.0)
    model_only = np.argmax(lt + prior, axis=1)
    return AttributeResult(
        sensitive=sensitive, n_bins=n_bins,
        attack_accuracy=float((attack.predict(feats(x_target, yt, lt)) == bt).mean()),
        baseline_accuracy=float((baseline.predict(feats(x_target, yt, None)) == bt).mean()),
        model_only_accuracy=float((model_only == bt).mean()),
        queries=n_bins * (len(x_aux) + len(x_target)),
        params={"n_target": len(x_target), "n_aux": len(x_aux), "bin_edges": edges.tolist(),
                "candidate_values": values.tolist(), "seed": seed},
    )
