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

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from bastion.attacks.poisoning.base import (
    ArrayT,
    PoisonedSet,
    check_poisoning,
    choose_clean,
    image_range,
    like,
    register_trigger,
    to_numpy,
)
from bastion.core.errors import InvalidInputError


@dataclass(frozen=True)
class SignalTrigger:
    """Add ``delta·(clip_max − clip_min)·sin(2π·j·frequency / width)`` along the columns, then clip."""

    delta: float = 40 / 255
    frequency: float = 6.0
    clip_min: float = 0.0
    clip_max: float = 1.0

    def signal(self, width: int) -> np.ndarray:
        j = np.arange(width, dtype=np.float64)
        amp = self.delta * (self.clip_max - self.clip_min)
        return (amp * np.sin(2 * np.pi * j * self.frequency / width)).astype(np.float32)

    def apply(self, x: ArrayT) -> ArrayT:
        a = to_numpy(x)
        if a.ndim < 3:
            raise InvalidInputError(f"the SIG signal needs images, got shape {a.shape}")
        out = a.astype(np.float32) + self.signal(a.shape[-1])  # broadcast over rows and channels
        return like(np.clip(out, self.clip_min, self.clip_max), x)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@register_trigger("sig")
def _trigger(params: dict[str, Any]) -> SignalTrigger:
    return SignalTrigger(float(params.get("test_delta", params["delta"])), float(params["frequency"]),
                         float(params["clip_min"]), float(params["clip_max"]))


def sig(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, target: int, rate: float, seed: int = 0,
    delta: float = 40 / 255, frequency: float = 6.0, test_delta: float | None = None,
    clip_min: float | None = None, clip_max: float | None = None,
) -> PoisonedSet:
    """Add the sinusoid to ``rate``·n target-class images (at most the whole class); labels unchanged."""
    x, y = to_numpy(x), to_numpy(y)
    check_poisoning(x, y, rate, target)
    if not 0.0 < delta <= 1.0:
        raise InvalidInputError(f"SIG amplitude delta {delta} must be in (0, 1] (a share of the input range)")
    lo, hi = image_range(x, clip_min, clip_max)
    t = SignalTrigger(delta, frequency, lo, hi)
    idx, capped = choose_clean(y, target, rate, seed)
    x_new = np.array(x, copy=True)
    x_new[idx] = t.apply(x[idx])
    params = {"target": target, "rate": rate, "seed": seed, "capped_at_class_size": capped, **t.to_dict()}
    if test_delta is not None:
        params["test_delta"] = test_delta
    return PoisonedSet(x_new, y.copy(), idx, "sig", params, SignalTrigger(test_delta or delta, frequency, lo, hi))
