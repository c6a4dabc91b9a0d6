"""Blended backdoor: a fixed pattern blended over the whole image (dirty label).

Chen et al. 2017, "Targeted Backdoor Attacks on Deep Learning Systems Using Data Poisoning",
https://arxiv.org/abs/1712.05526 — the "blended injection" strategy with a random-noise key
pattern: ``x' = (1 − α)·x + α·pattern``, poisoned samples relabelled to the target class. The
pattern is uniform noise over the input range drawn from ``pattern_seed`` (BackdoorBench's
random-noise variant; α = 0.2 as in its default), so it stays inside ``[clip_min, clip_max]``.

Examples:
    >>> import numpy as np
    >>> x = np.zeros((100, 1, 8, 8), dtype=np.float32); y = np.arange(100) % 10
    >>> p = blended(x, y, target=3, rate=0.05, seed=0, alpha=0.2)
    >>> len(p.indices), bool((p.y[p.indices] == 3).all()), float(p.x.max()) <= 0.2
    (5, True, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from bastion.attacks.poisoning.base import (
    ArrayT,
    PoisonedSet,
    check_poisoning,
    choose_dirty,
    image_range,
    like,
    register_trigger,
    to_numpy,
)
from bastion.core.errors import InvalidInputError


@dataclass(frozen=True)
class BlendTrigger:
    """``(1 − alpha)·x + alpha·pattern``, the pattern uniform in ``[clip_min, clip_max]`` from ``pattern_seed``."""

    shape: tuple[int, ...]
    alpha: float = 0.2
    pattern_seed: int = 0
    clip_min: float = 0.0
    clip_max: float = 1.0

    def pattern(self) -> np.ndarray:
        rng = np.random.default_rng(self.pattern_seed)
        return rng.uniform(self.clip_min, self.clip_max, size=self.shape).astype(np.float32)

    def apply(self, x: ArrayT) -> ArrayT:
        a = to_numpy(x)
        if tuple(a.shape[1:]) != tuple(self.shape):
            raise InvalidInputError(f"blend pattern has shape {self.shape}, inputs have {tuple(a.shape[1:])}")
        out = (1.0 - self.alpha) * a.astype(np.float32) + self.alpha * self.pattern()
        return like(np.clip(out, self.clip_min, self.clip_max), x)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}


@register_trigger("blended")
def _trigger(params: dict[str, Any]) -> BlendTrigger:
    return BlendTrigger(tuple(params["shape"]), float(params["alpha"]), int(params["pattern_seed"]),
                        float(params["clip_min"]), float(params["clip_max"]))


def blended(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, target: int, rate: float, seed: int = 0,
    alpha: float = 0.2, pattern_seed: int | None = None, clip_min: float | None = None, clip_max: float | None = None,
) -> PoisonedSet:
    """Blend the noise pattern into ``rate``·n non-target images and relabel them ``target``.

    ``pattern_seed`` defaults to ``seed``; the range defaults to the one inferred from ``x``.
    """
    x, y = to_numpy(x), to_numpy(y)
    check_poisoning(x, y, rate, target)
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError(f"blend weight alpha {alpha} must be in (0, 1)")
    lo, hi = image_range(x, clip_min, clip_max)
    t = BlendTrigger(tuple(x.shape[1:]), alpha, seed if pattern_seed is None else pattern_seed, lo, hi)
    idx = choose_dirty(y, target, rate, seed)
    x_new, y_new = np.array(x, copy=True), y.copy()
    x_new[idx] = t.apply(x[idx])
    y_new[idx] = target
    return PoisonedSet(x_new, y_new, idx, "blended", {"target": target, "rate": rate, "seed": seed, **t.to_dict()}, t)
