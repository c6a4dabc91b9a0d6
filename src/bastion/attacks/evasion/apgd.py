"""APGD — Auto-PGD with the CE or DLR loss (Croce & Hein 2020, arXiv:2003.01690), L∞ and L2.

A step-size-free PGD: momentum (α = 0.75), a step size that starts at 2·eps and halves at
checkpoints where the loss oscillates or stalls, restarting from the best point found. With
``loss="dlr"`` it is APGD-DLR, the scale-invariant half of AutoAttack's white-box pair.
Returns the first misclassified iterate per sample, else the highest-loss point.

Examples:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1])
    >>> x_adv = APGD(eps=0.1, steps=10, loss="dlr")(net, x, y)
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
    _bcast,
    check_iterations,
    input_grad,
)


def checkpoints(steps: int) -> list[int]:
    """APGD's checkpoint iterations: p₀=0, p₁=0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)."""
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({round(q * steps) for q in p[1:] if q < 1.0 and round(q * steps) > 0})


class APGD(WhiteBoxAttack):
    """Auto-PGD (untargeted), ``loss`` = ``ce`` (APGD-CE) or ``dlr`` (APGD-DLR)."""

    name = "apgd"

    def __init__(
        self,
        eps: float,
        norm: Norm = "linf",
        steps: int = 100,
        restarts: int = 1,
        loss: LossName = "ce",
        clip_min: float | None = 0.0,
        clip_max: float | None = 1.0,
        rho: float = 0.75,
        seed: int = 0,
        batch_size: int | None = None,
        threads: int | None = None,
        fast_layout: bool = True,
    ) -> None:
        super().__init__(eps, norm, clip_min, clip_max, seed, batch_size, threads, fast_layout)
        check_iterations(steps, restarts)
        self.steps = int(steps)
        self.restarts = int(restarts)
        self.loss: LossName = loss
        self.rho = float(rho)
        self.name = f"apgd-{loss}"

    def params(self) -> dict[str, object]:
        return {**super().params(), "steps": self.steps, "restarts": self.restarts, "loss": self.loss,
                "rho": self.rho}

    def _perturb(self, model: LogitsFn, x: Tensor, y: Tensor, gen: torch.Generator) -> Tensor:
        best = x.clone()
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(self.restarts):
            idx = (~found).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            x_best_adv, fooled, x_best = self._one_run(model, x[idx], y[idx], gen)
            best[idx] = torch.where(_bcast(fooled, x_best), x_best_adv, x_best)
            found[idx[fooled]] = True
        return best

    def _one_run(self, model: LogitsFn, x: Tensor, y: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        n = x.shape[0]
        marks = set(checkpoints(self.steps))
        xa = self._random_start(x, gen)
        grad, loss, logits = input_grad(model, xa, y, self.loss)
        fooled = logits.argmax(1) != y
        x_best_adv = xa.clone()
        x_best, grad_best, loss_best = xa.clone(), grad.clone(), loss.clone()
        step = torch.full((n,), 2.0 * self.eps, dtype=x.dtype, device=x.device)
        x_old = xa.clone()
        increases = torch.zeros(n, device=x.device)
        loss_prev = loss.clone()
        since_check = 0
        loss_best_last = loss_best.clone()
        reduced_last = torch.zeros(n, dtype=torch.bool, device=x.device)
        for i in range(self.steps):
            with torch.no_grad():
                a = 0.75 if i > 0 else 1.0
                z = self._ascend(xa, x, grad, _bcast(step, xa))
                x_new = self._project(xa + a * (z - xa) + (1 - a) * (xa - x_old), x)
                x_old, xa = xa, x_new
            grad, loss, logits = input_grad(model, xa, y, self.loss)
            with torch.no_grad():
                now = logits.argmax(1) != y
                newly = now & ~fooled
                x_best_adv[newly] = xa[newly]
                fooled |= now
                increases += (loss > loss_prev).float()
                loss_prev = loss
                better = loss > loss_best
                x_best[better], grad_best[better], loss_best[better] = xa[better], grad[better], loss[better]
                since_check += 1
                if i + 1 in marks:
                    oscillating = increases <= since_check * self.rho
                    stalled = ~reduced_last & (loss_best_last >= loss_best)
                    reduce = oscillating | stalled
                    reduced_last = reduce
                    loss_best_last = loss_best.clone()
                    if bool(reduce.any()):
                        step[reduce] /= 2.0
                        xa[reduce] = x_best[reduce]
                        grad[reduce] = grad_best[reduce]
                    increases.zero_()
                    since_check = 0
        return x_best_adv, fooled, x_best
