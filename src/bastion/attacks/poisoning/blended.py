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

from bastion.attacks.poisoning.base import ArrayTrigger, PoisonedSet, dirty_label, image_inputs
from bastion.core.errors import InvalidInputError


@dataclass(frozen=True)
class BlendTrigger(ArrayTrigger, methods=("blended",)):
    """``(1 − alpha)·x + alpha·pattern``, the pattern uniform in ``[clip_min, clip_max]`` from ``pattern_seed``."""

    shape: tuple[int, ...]
    alpha: float = 0.2
    pattern_seed: int = 0
    clip_min: float = 0.0
    clip_max: float = 1.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> BlendTrigger:
        return cls(tuple(params["shape"]), float(params["alpha"]), int(params["pattern_seed"]),
                   float(params["clip_min"]), float(params["clip_max"]))

    def pattern(self) -> np.ndarray:
        rng = np.random.default_rng(self.pattern_seed)
        return rng.uniform(self.clip_min, self.clip_max, size=self.shape).astype(np.float32)

    def apply_numpy(self, a: np.ndarray) -> np.ndarray:
        if tuple(a.shape[1:]) != tuple(self.shape):
            raise InvalidInputError(f"blend pattern has shape {self.shape}, inputs have {tuple(a.shape[1:])}")
        out = (1.0 - self.alpha) * a.astype(np.float32) + self.alpha * self.pattern()
        return np.clip(out, self.clip_min, self.clip_max)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}


def blended(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, target: int, rate: float, seed: int = 0,
    alpha: float = 0.2, pattern_seed: int | None = None, clip_min: float | None = None, clip_max: float | None = None,
) -> PoisonedSet:
    """Blend the noise pattern into ``rate``·n non-target images and relabel them ``target``.

    ``pattern_seed`` defaults to ``seed``; the range defaults to the one inferred from ``x``.
    """
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError(f"blend weight alpha {alpha} must be in (0, 1)")
    x, y, lo, hi = image_inputs(x, y, rate, target, clip_min, clip_max)
    t = BlendTrigger(tuple(x.shape[1:]), alpha, seed if pattern_seed is None else pattern_seed, lo, hi)
    return dirty_label(x, y, target, rate, seed, "blended", t)
