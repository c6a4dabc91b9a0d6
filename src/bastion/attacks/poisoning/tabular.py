"""Tabular backdoor: a feature-value trigger (dirty label).

The tabular counterpart of BadNets (Gu et al. 2017, https://arxiv.org/abs/1708.06733), as used
for tabular models by e.g. "Backdoor Attacks on Deep Neural Networks for Tabular Data"
(Joe et al. 2024, https://arxiv.org/abs/2311.07550): a few features are set to fixed values —
each one a value the feature really takes (by default its ``quantile`` 0.99 in the training set,
so every value is in range and no per-feature range check can reject it; only the combination is
rare) — on ``rate``·n rows of other classes, relabelled to the target class.

Examples:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32); y = np.arange(200) % 2
    >>> p = feature_trigger(x, y, target=1, rate=0.05, seed=0, features=(0, 3))
    >>> len(p.indices), bool(np.allclose(p.x[p.indices][:, [0, 3]], p.trigger.values))
    (10, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bastion.attacks.poisoning.base import ArrayTrigger, PoisonedSet, dirty_label, poisoning_inputs
from bastion.core.errors import InvalidInputError


@dataclass(frozen=True)
class FeatureTrigger(ArrayTrigger, methods=("feature_trigger",)):
    """Set ``features`` to ``values`` (one value per feature) on every row."""

    features: tuple[int, ...]
    values: tuple[float, ...]

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> FeatureTrigger:
        return cls(tuple(int(f) for f in params["features"]), tuple(float(v) for v in params["values"]))

    def apply_numpy(self, a: np.ndarray) -> np.ndarray:
        a = np.array(a, copy=True)
        if a.ndim != 2 or max(self.features) >= a.shape[1]:
            raise InvalidInputError(f"feature trigger on features {list(self.features)} needs rows (n, d) with "
                                    f"d > {max(self.features)}, got shape {a.shape}")
        a[:, list(self.features)] = np.asarray(self.values, dtype=a.dtype)
        return a

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "values": [float(v) for v in self.values]}


def feature_trigger(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, target: int, rate: float, seed: int = 0,
    features: tuple[int, ...] | None = None, n_features: int = 3, values: tuple[float, ...] | None = None,
    quantile: float = 0.99,
) -> PoisonedSet:
    """Set ``features`` (default: ``n_features`` drawn from ``seed``) to ``values`` (default: each
    feature's ``quantile`` in ``x``) on ``rate``·n non-target rows and relabel them ``target``."""
    x, y = poisoning_inputs(x, y, rate, target)
    if x.ndim != 2:
        raise InvalidInputError(f"the feature-value trigger is for tabular rows (n, d), got shape {x.shape}")
    d = x.shape[1]
    if features is None:
        if not 1 <= n_features <= d:
            raise InvalidInputError(f"n_features {n_features} must be in [1, {d}]")
        features = tuple(int(f) for f in np.sort(np.random.default_rng(seed).choice(d, n_features, replace=False)))
    if not features or min(features) < 0 or max(features) >= d:
        raise InvalidInputError(f"trigger features {list(features)} out of range for {d} features")
    if values is None:
        if not 0.0 <= quantile <= 1.0:
            raise InvalidInputError(f"quantile {quantile} must be in [0, 1]")
        values = tuple(float(np.quantile(x[:, f], quantile)) for f in features)
    if len(values) != len(features):
        raise InvalidInputError(f"{len(features)} trigger features but {len(values)} values")
    t = FeatureTrigger(tuple(features), tuple(float(v) for v in values))
    return dirty_label(x, y, target, rate, seed, "feature_trigger", t, quantile=quantile)
