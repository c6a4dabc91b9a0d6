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

import numpy as np
import torch

from bastion.attacks.poisoning.base import PoisonedSet, poisoning_inputs
from bastion.core.errors import InvalidInputError

__all__ = ["PoisonedSet", "random_flip", "targeted_flip"]


def random_flip(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, rate: float, seed: int = 0,
                n_classes: int | None = None) -> PoisonedSet:
    """Flip the labels of ``rate``·n random samples to a different random class."""
    x, y = poisoning_inputs(x, y, rate)
    rng = np.random.default_rng(seed)
    k = int(n_classes or (int(y.max()) + 1))
    n_poison = max(1, round(rate * len(y)))
    idx = np.sort(rng.choice(len(y), size=n_poison, replace=False))
    y_new = y.copy()
    y_new[idx] = (y[idx] + rng.integers(1, k, size=n_poison)) % k
    return PoisonedSet(x.copy(), y_new, idx, "label_flip_random", {"rate": rate, "seed": seed, "n_classes": k})


def targeted_flip(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, source: int, target: int, rate: float, seed: int = 0
) -> PoisonedSet:
    """Relabel ``rate`` of the samples of class ``source`` as class ``target``."""
    x, y = poisoning_inputs(x, y, rate, target)
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
