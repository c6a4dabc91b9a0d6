"""FGSM — the Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy 2015, arXiv:1412.6572).

One step of size ``eps`` along the loss gradient's sign (L∞) or its normalised direction (L2).

Examples:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1])
    >>> x_adv = FGSM(eps=0.1)(net, x, y)
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from bastion.attacks.evasion.base import LogitsFn, LossName, Norm, WhiteBoxAttack, input_grad


class FGSM(WhiteBoxAttack):
    """Single-step gradient attack (untargeted)."""

    name = "fgsm"

    def __init__(
        self,
        eps: float,
        norm: Norm = "linf",
        clip_min: float | None = 0.0,
        clip_max: float | None = 1.0,
        loss: LossName = "ce",
        seed: int = 0,
        batch_size: int | None = None,
        threads: int | None = None,
        fast_layout: bool = True,
    ) -> None:
        super().__init__(eps, norm, clip_min, clip_max, seed, batch_size, threads, fast_layout)
        self.loss: LossName = loss

    def _perturb(self, model: LogitsFn, x: Tensor, y: Tensor, gen: torch.Generator) -> Tensor:
        grad, _, _ = input_grad(model, x, y, self.loss)
        return self._ascend(x, x, grad, self.eps)
