"""Equation-solving extraction of softmax (multinomial logistic) regression.

Tramèr et al., "Stealing Machine Learning Models via Prediction APIs" (USENIX Security 2016,
https://arxiv.org/abs/1609.02943). For ``p = softmax(W x + b)`` the centred log-probabilities
``log p_i − mean_j log p_j`` are linear in ``[x, 1]``: each query gives ``k`` equations, so
``d + 1`` random queries determine ``W`` and ``b`` (up to the softmax's shift invariance) by
least squares. The residual says whether the victim really is softmax-linear.

Examples:
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from bastion.core.model import InputSpec
    >>> from bastion.models.adapters import SklearnAdapter
    >>> rng = np.random.default_rng(0); x = rng.normal(size=(200, 5)); y = (x[:, 0] > 0) + (x[:, 1] > 0)
    >>> victim = SklearnAdapter(LogisticRegression().fit(x, y), InputSpec((5,)))
    >>> r = extract_softmax_regression(victim, eval_x=x)
    >>> r.agreement, r.queries
    (1.0, 12)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.core.errors import InvalidInputError
from bastion.core.model import ModelAdapter


@dataclass
class EquationSolvingResult:
    weights: np.ndarray  # (d, k)
    bias: np.ndarray  # (k,)
    queries: int
    residual: float
    agreement: float | None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        """True when the equations were consistent (the victim is softmax-linear)."""
        return self.residual < 1e-3

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = x.reshape(len(x), -1) @ self.weights + self.bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    def to_dict(self) -> dict[str, Any]:
        return {"attack": "extraction", "method": "equation_solving", "queries": self.queries,
                "residual": self.residual, "exact": self.exact, "fidelity": self.agreement,
                "n_parameters": int(self.weights.size + self.bias.size), "params": dict(self.params)}


def extract_softmax_regression(
    victim: ModelAdapter,
    n_queries: int | None = None,
    eval_x: np.ndarray | None = None,
    seed: int = 0,
) -> EquationSolvingResult:
    """Recover ``W, b`` of a softmax-regression victim from ``n_queries`` (default ``d + 1 + 1``) queries."""
    spec = victim.input_spec
    d = spec.n_features
    n = n_queries if n_queries is not None else d + 2
    if n < d + 1:
        raise InvalidInputError(f"equation solving needs at least d + 1 = {d + 1} queries, got {n}")
    rng = np.random.default_rng(seed)
    lo = 0.0 if spec.clip_min is None else spec.clip_min
    hi = 1.0 if spec.clip_max is None else spec.clip_max
    xq = rng.uniform(lo, hi, size=(n, d)).astype(np.float32)
    p = np.asarray(victim.predict_proba(xq.reshape((n, *spec.shape))), dtype=np.float64)
    if (p <= 0).any():
        raise InvalidInputError("the victim returned zero probabilities (rounded or label-only output); "
                                "equation solving needs exact probabilities")
    logp = np.log(p)
    target = logp - logp.mean(axis=1, keepdims=True)
    a = np.c_[xq.astype(np.float64), np.ones(n)]
    sol, *_ = np.linalg.lstsq(a, target, rcond=None)
    resid = float(np.sqrt(np.mean((a @ sol - target) ** 2)))
    res = EquationSolvingResult(sol[:-1], sol[-1], n, resid, None, {"seed": seed, "query_range": [lo, hi]})
    if eval_x is not None:
        vic = np.concatenate([victim.predict_proba(eval_x[i : i + 512]) for i in range(0, len(eval_x), 512)])
        res.agreement = float((res.predict_proba(eval_x).argmax(1) == vic.argmax(1)).mean())
    return res
