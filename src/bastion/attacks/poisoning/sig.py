"""SIG: a clean-label backdoor with a horizontal sinusoidal signal.

Barni, Kallas & Tondi 2019, "A New Backdoor Attack in CNNs by Training Set Corruption Without
Label Poisoning", https://arxiv.org/abs/1902.11237 — the signal ``v(i, j) = Δ·sin(2π·j·f / m)``
(``m`` columns) is added to ``rate``·n images *of the target class only*; labels are not changed,
so the poisoned samples are correctly labelled. ``Δ`` is given as a share of the input range
(``delta=40/255``, ``f=6``: BackdoorBench's defaults); the result is clipped to the range. At test
time the same signal (or a stronger one, ``test_delta``) is added to inputs of other classes.

Examples:
    >>> import numpy as np
    >>> x = np.full((100, 1, 8, 8), 0.5, dtype=np.float32); y = np.arange(100) % 10
    >>> p = sig(x, y, target=2, rate=0.05, seed=0)
    >>> bool((p.y == y).all()), bool((y[p.indices] == 2).all()), round(float(np.ptp(p.x[p.indices[0]])), 3) > 0
    (True, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bastion.attacks.poisoning.base import ArrayTrigger, PoisonedSet, choose_clean, image_inputs
from bastion.core.errors import InvalidInputError


@dataclass(frozen=True)
class SignalTrigger(ArrayTrigger, methods=("sig",)):
    """Add ``delta·(clip_max − clip_min)·sin(2π·j·frequency / width)`` along the columns, then clip."""

    delta: float = 40 / 255
    frequency: float = 6.0
    clip_min: float = 0.0
    clip_max: float = 1.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SignalTrigger:
        return cls(float(params.get("test_delta", params["delta"])), float(params["frequency"]),
                   float(params["clip_min"]), float(params["clip_max"]))

    def signal(self, width: int) -> np.ndarray:
        j = np.arange(width, dtype=np.float64)
        amp = self.delta * (self.clip_max - self.clip_min)
        return (amp * np.sin(2 * np.pi * j * self.frequency / width)).astype(np.float32)

    def apply_numpy(self, a: np.ndarray) -> np.ndarray:
        if a.ndim < 3:
            raise InvalidInputError(f"the SIG signal needs images, got shape {a.shape}")
        out = a.astype(np.float32) + self.signal(a.shape[-1])  # broadcast over rows and channels
        return np.clip(out, self.clip_min, self.clip_max)


def sig(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, target: int, rate: float, seed: int = 0,
    delta: float = 40 / 255, frequency: float = 6.0, test_delta: float | None = None,
    clip_min: float | None = None, clip_max: float | None = None,
) -> PoisonedSet:
    """Add the sinusoid to ``rate``·n target-class images (at most the whole class); labels unchanged."""
    if not 0.0 < delta <= 1.0:
        raise InvalidInputError(f"SIG amplitude delta {delta} must be in (0, 1] (a share of the input range)")
    x, y, lo, hi = image_inputs(x, y, rate, target, clip_min, clip_max)
    t = SignalTrigger(delta, frequency, lo, hi)
    idx, capped = choose_clean(y, target, rate, seed)
    x_new = np.array(x, copy=True)
    x_new[idx] = t.apply(x[idx])
    params = t.record(target, rate, seed, capped_at_class_size=capped)
    if test_delta is not None:
        params["test_delta"] = test_delta
    return PoisonedSet(x_new, y.copy(), idx, "sig", params, SignalTrigger(test_delta or delta, frequency, lo, hi))
