"""Label-flipping poisoning: random flips and targeted source → target flips.

Reference: Biggio et al. 2012, "Poisoning Attacks against Support Vector Machines"
(label flipping as the simplest availability attack), https://arxiv.org/abs/1206.6389

Examples:
    >>> import numpy as np
    >>> y = np.repeat(np.arange(10), 20)
    >>> p = random_flip(np.zeros((200, 4)), y, rate=0.05, seed=0)
    >>> len(p.indices), bool((p.y[p.indices] != y[p.indices]).all())
    (10, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.core.errors import InvalidInputError


@dataclass
class PoisonedSet:
    """A poisoned training set and the ground truth of which samples were poisoned."""

    x: np.ndarray
    y: np.ndarray
    indices: np.ndarray
    method: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_poisoned(self) -> np.ndarray:
        mask = np.zeros(len(self.y), dtype=bool)
        mask[self.indices] = True
        return mask


def _check(x: np.ndarray, y: np.ndarray, rate: float) -> None:
    if len(x) != len(y):
        raise InvalidInputError(f"x has {len(x)} samples but y has {len(y)}")
    if not 0.0 < rate < 1.0:
        raise InvalidInputError(f"poisoning rate {rate} must be in (0, 1)")


def random_flip(x: np.ndarray, y: np.ndarray, rate: float, seed: int = 0, n_classes: int | None = None) -> PoisonedSet:
    """Flip the labels of ``rate``·n random samples to a different random class."""
    _check(x, y, rate)
    rng = np.random.default_rng(seed)
    k = int(n_classes or (int(y.max()) + 1))
    n_poison = max(1, round(rate * len(y)))
    idx = np.sort(rng.choice(len(y), size=n_poison, replace=False))
    y_new = y.copy()
    y_new[idx] = (y[idx] + rng.integers(1, k, size=n_poison)) % k
    return PoisonedSet(x.copy(), y_new, idx, "label_flip_random", {"rate": rate, "seed": seed, "n_classes": k})


def targeted_flip(
    x: np.ndarray, y: np.ndarray, source: int, target: int, rate: float, seed: int = 0
) -> PoisonedSet:
    """Relabel ``rate`` of the samples of class ``source`` as class ``target``."""
    _check(x, y, rate)
    if source == target:
        raise InvalidInputError("source and target class must differ")
    pool = np.flatnonzero(y == source)
    if len(pool) == 0:
        raise InvalidInputError(f"no samples of source class {source}")
    rng = np.random.default_rng(seed)
    n_poison = max(1, round(rate * len(pool)))
    idx = np.sort(rng.choice(pool, size=n_poison, replace=False))
    y_new = y.copy()
    y_new[idx] = target
    return PoisonedSet(
        x.copy(), y_new, idx, "label_flip_targeted", {"rate": rate, "seed": seed, "source": source, "target": target}
    )
