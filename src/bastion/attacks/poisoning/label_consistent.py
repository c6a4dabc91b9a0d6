"""Label-consistent backdoor: adversarially perturbed target-class images plus a trigger (clean label).

Turner, Tsipras & Madry 2019, "Label-Consistent Backdoor Attacks", https://arxiv.org/abs/1912.02771.
A clean-label attack must make the model *need* the trigger: ``rate``·n target-class images are
first made hard to classify from their natural features — an L∞ PGD perturbation (``eps`` as a
share of the input range) against a surrogate model the attacker trains on clean data — and then
stamped with a checkerboard trigger in the four image corners (the paper's pattern, so it survives
flips); labels stay correct. ``amplitude`` < 1 blends the training trigger in (the paper's
reduced-amplitude variant); test inputs get the full-amplitude pattern.

Examples:
    >>> import numpy as np
    >>> from bastion.datasets import load_demo_data
    >>> s = load_demo_data("digits").splits
    >>> p = label_consistent(s.x_train, s.y_train, target=4, rate=0.02, seed=0)   # doctest: +SKIP
    >>> bool((p.y == s.y_train).all()), len(p.indices)                              # doctest: +SKIP
    (True, 27)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion.attacks.poisoning.base import ArrayTrigger, PoisonedSet, choose_clean, image_inputs
from bastion.attacks.poisoning.surrogate import train_surrogate
from bastion.core.errors import InvalidInputError


@dataclass(frozen=True)
class CornerPatternTrigger(ArrayTrigger, methods=("label_consistent",)):
    """A ``size``×``size`` checkerboard (``clip_max``/``clip_min``) in each image corner, blended by ``amplitude``."""

    size: int = 3
    amplitude: float = 1.0
    clip_min: float = 0.0
    clip_max: float = 1.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> CornerPatternTrigger:
        return cls(int(params["size"]), 1.0, float(params["clip_min"]), float(params["clip_max"]))

    def pattern(self) -> np.ndarray:
        i, j = np.indices((self.size, self.size))
        return np.where((i + j) % 2 == 0, self.clip_max, self.clip_min).astype(np.float32)

    def apply_numpy(self, a: np.ndarray) -> np.ndarray:
        a = np.array(a, dtype=np.float32, copy=True)
        if a.ndim < 3 or min(a.shape[-2:]) < 2 * self.size:
            raise InvalidInputError(f"a {self.size}x{self.size} corner pattern needs images of at least "
                                    f"{2 * self.size}x{2 * self.size}, got shape {a.shape}")
        s, p = self.size, self.pattern()
        for rows in (slice(0, s), slice(-s, None)):
            for cols in (slice(0, s), slice(-s, None)):
                region = a[..., rows, cols]
                a[..., rows, cols] = (1.0 - self.amplitude) * region + self.amplitude * p
        return np.clip(a, self.clip_min, self.clip_max)


def harden_images(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
                  lo: float, hi: float) -> torch.Tensor:
    """L∞ PGD that *maximises* the loss for all ``steps`` and keeps the last iterate.

    (Evasion PGD, ``bastion.attacks.evasion.pgd``, stops at the first misclassified iterate; a
    label-consistent poison wants the natural features as useless as the budget allows.)
    """
    if eps <= 0 or steps < 1:
        return x
    was_training = model.training
    model.eval()
    step = 2.5 * eps / steps
    xa = x.clone()
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(xa), y)
        (grad,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            xa = torch.minimum(torch.maximum(xa + step * grad.sign(), x - eps), x + eps).clamp(lo, hi)
    model.train(was_training)
    return xa.detach()


def label_consistent(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, target: int, rate: float, seed: int = 0,
    eps: float = 0.3, steps: int = 20, size: int = 3, amplitude: float = 1.0, surrogate: nn.Module | None = None,
    clip_min: float | None = None, clip_max: float | None = None,
) -> PoisonedSet:
    """Perturb ``rate``·n target-class images away from their class (PGD on ``surrogate``), add the
    corner trigger, keep the labels.

    ``surrogate`` is the attacker's model (trained on ``x, y`` here when not given); ``eps`` is the
    L∞ budget as a share of the input range, spent by ``steps`` loss-maximising PGD steps.
    """
    if not 0.0 <= eps < 1.0 or not 0.0 < amplitude <= 1.0:
        raise InvalidInputError(f"eps must be in [0, 1) and amplitude in (0, 1] (got {eps}, {amplitude})")
    x, y, lo, hi = image_inputs(x, y, rate, target, clip_min, clip_max)
    idx, capped = choose_clean(y, target, rate, seed)
    n_classes = int(max(y.max() + 1, target + 1))
    model = surrogate if surrogate is not None else train_surrogate(x, y, n_classes, seed=seed)
    xt = torch.from_numpy(np.ascontiguousarray(x[idx], dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y[idx], dtype=np.int64))
    hard = harden_images(model, xt, yt, eps * (hi - lo), steps, lo, hi)
    with torch.no_grad():
        fooled = float((model(hard).argmax(1) != yt).float().mean())
    t = CornerPatternTrigger(size, amplitude, lo, hi)
    x_new = np.array(x, copy=True)
    x_new[idx] = t.apply(hard.numpy()).astype(x.dtype)
    params = t.record(target, rate, seed, eps=eps, steps=steps, capped_at_class_size=capped,
                      surrogate_fooled=round(fooled, 4))
    return PoisonedSet(x_new, y.copy(), idx, "label_consistent", params, CornerPatternTrigger(size, 1.0, lo, hi))
