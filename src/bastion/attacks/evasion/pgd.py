"""PGD — Projected Gradient Descent (Madry et al. 2018, arXiv:1706.06083), L∞ and L2.

Iterated gradient steps projected back onto the eps-ball and the valid range, from a random
start, with restarts. The first misclassified iterate of each sample is kept (so the returned
point is adversarial whenever any iterate was); samples never fooled get the final iterate.
``early_stop=True`` drops fooled samples from the batch (same result, less work).

Examples:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1])
    >>> x_adv = PGD(eps=0.1, steps=10)(net, x, y)
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from bastion.attacks.evasion.base import (
    LogitsFn,
    LossName,
    Norm,
    WhiteBoxAttack,
    check_iterations,
    input_grad,
)


class PGD(WhiteBoxAttack):
    """Untargeted PGD with random start and restarts; ``loss`` is ``ce`` or ``dlr``."""

    name = "pgd"

    def __init__(
        self,
        eps: float,
        norm: Norm = "linf",
        steps: int = 20,
        step_size: float | None = None,
        random_start: bool = True,
        restarts: int = 1,
        clip_min: float | None = 0.0,
        clip_max: float | None = 1.0,
        loss: LossName = "ce",
        seed: int = 0,
        batch_size: int | None = None,
        threads: int | None = None,
        fast_layout: bool = True,
        early_stop: bool = False,
    ) -> None:
        super().__init__(eps, norm, clip_min, clip_max, seed, batch_size, threads, fast_layout)
        check_iterations(steps, restarts)
        self.steps = int(steps)
        self.step_size = float(step_size) if step_size is not None else 2.5 * self.eps / self.steps
        self.random_start = bool(random_start)
        self.restarts = int(restarts)
        self.loss: LossName = loss
        self.early_stop = bool(early_stop)

    def params(self) -> dict[str, object]:
        return {**super().params(), "steps": self.steps, "step_size": self.step_size,
                "random_start": self.random_start, "restarts": self.restarts, "loss": self.loss}

    def _perturb(self, model: LogitsFn, x: Tensor, y: Tensor, gen: torch.Generator) -> Tensor:
        best = x.clone()
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for r in range(self.restarts):
            idx = (~found).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            xs, ys = x[idx], y[idx]
            xa = xs.clone()
            if self.random_start:
                xa = self._random_start(xs, gen)
            for _ in range(self.steps):
                grad, _, logits = input_grad(model, xa, ys, self.loss)
                fooled = logits.argmax(1) != ys
                if bool(fooled.any()):
                    new = fooled & ~found[idx]
                    best[idx[new]] = xa[new]
                    found[idx[new]] = True
                    if self.early_stop:
                        keep = ~fooled
                        idx, xs, ys, xa, grad = idx[keep], xs[keep], ys[keep], xa[keep], grad[keep]
                        if idx.numel() == 0:
                            break
                with torch.no_grad():
                    xa = self._ascend(xa, xs, grad, self.step_size)
            if idx.numel() == 0:
                continue
            open_ = ~found[idx]
            best[idx[open_]] = xa[open_]
            if r < self.restarts - 1:  # which samples the next restart still has to attack
                with torch.no_grad():
                    fooled = model(xa).argmax(1) != ys
                found[idx[fooled]] = True
        return best
