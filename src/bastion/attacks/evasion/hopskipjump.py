"""HopSkipJump — decision-based (label-only) attack (Chen, Jordan & Wainwright 2020, arXiv:1904.02144).

Starts from a misclassified point (random noise, blended back to the decision boundary by binary
search) and walks along the boundary towards the clean input: a Monte-Carlo estimate of the
boundary's normal, a geometric step-size search, and a binary search back to the boundary. It
needs only predicted labels. Here it is eps-constrained: a sample stops as soon as its distance
is within ``eps``; a sample that never gets there is returned projected onto the eps-ball (and
usually classified correctly again), so outputs always satisfy ‖δ‖ ≤ eps.

Examples:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(3, 4), torch.tensor([0, 1, 2])
    >>> x_adv = HopSkipJump(eps=0.5, max_iter=5, max_eval=50)(net, x, y)
    >>> bool((x_adv - x).abs().max() <= 0.5 + 1e-6)
    True
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from bastion.attacks.evasion.base import Norm, check_xy, flat_norm
from bastion.attacks.evasion.blackbox import BlackBoxAttack, QueryCounter
from bastion.core.errors import InvalidInputError, QueryBudgetExceeded


class HopSkipJump(BlackBoxAttack):
    """Untargeted, eps-constrained HopSkipJump (L2 or L∞)."""

    name = "hsj"

    def __init__(
        self,
        eps: float,
        norm: Norm = "l2",
        max_iter: int = 20,
        max_eval: int = 500,
        init_eval: int = 50,
        init_size: int = 100,
        gamma: float = 1.0,
        clip_min: float | None = 0.0,
        clip_max: float | None = 1.0,
        seed: int = 0,
        batch_size: int = 512,
        threads: int | None = None,
    ) -> None:
        super().__init__(eps, norm, clip_min, clip_max, seed, batch_size, threads)
        if max_iter < 1 or max_eval < 1 or init_eval < 1 or init_size < 1:
            raise InvalidInputError("max_iter, max_eval, init_eval and init_size must all be >= 1")
        self.max_iter, self.max_eval, self.init_eval, self.init_size = max_iter, max_eval, init_eval, init_size
        self.gamma = float(gamma)

    def params(self) -> dict[str, object]:
        return self._params(max_iter=self.max_iter, max_eval=self.max_eval, init_eval=self.init_eval,
                            gamma=self.gamma)

    def __call__(self, model: Any, x: Tensor, y: Tensor) -> Tensor:
        check_xy(x, y)
        gen = torch.Generator().manual_seed(self.seed)
        out = x.detach().clone()
        with self._querying(model) as counter:
            for i in range(x.shape[0]):
                try:
                    out[i] = self._attack_one(counter, x[i].detach(), int(y[i]), gen)
                except QueryBudgetExceeded:
                    self.budget_exhausted = True
                    break
        return out

    # -- one sample ---------------------------------------------------------------------------
    def _dist(self, a: Tensor, b: Tensor) -> float:
        return float(flat_norm((a - b)[None], self.norm)[0])

    def _blend(self, x0: Tensor, x: Tensor, alpha: Tensor) -> Tensor:
        """Points between ``x0`` (alpha=0) and ``x`` (alpha=1): a line for L2, a box for L∞."""
        a = alpha.reshape((-1,) + (1,) * x0.dim())
        if self.norm == "l2":
            return (1 - a) * x0 + a * x
        return torch.minimum(torch.maximum(x[None], x0 - a * (x - x0).abs().amax()), x0 + a * (x - x0).abs().amax())

    def _binary_search(self, adv: Any, x0: Tensor, x: Tensor, theta: float) -> Tensor:
        lo, hi = 0.0, 1.0
        while hi - lo > theta:
            mid = (lo + hi) / 2
            if bool(adv(self._blend(x0, x, torch.tensor([mid], dtype=x0.dtype)))[0]):
                hi = mid
            else:
                lo = mid
        return self._blend(x0, x, torch.tensor([hi], dtype=x0.dtype))[0]

    def _initial(self, adv: Any, x0: Tensor, gen: torch.Generator) -> Tensor | None:
        lo, hi = self.clip_min, self.clip_max
        for k in range(self.init_size):
            if lo is not None and hi is not None:
                cand = torch.rand(x0.shape, generator=gen, dtype=x0.dtype) * (hi - lo) + lo
            else:  # unbounded features: Gaussian noise of growing scale
                cand = self._clip(x0 + torch.randn(x0.shape, generator=gen, dtype=x0.dtype) * (1 + k))
            if bool(adv(cand[None])[0]):
                return cand
        return None

    def _attack_one(self, predict: QueryCounter, x0: Tensor, label: int, gen: torch.Generator) -> Tensor:
        def adv(batch: Tensor) -> Tensor:
            return predict.labels(batch) != label

        if bool(adv(x0[None])[0]):
            return x0
        start = self._initial(adv, x0, gen)
        if start is None:
            return x0
        d = x0.numel()
        theta = self.gamma / (d * math.sqrt(d)) if self.norm == "l2" else self.gamma / (d * d)
        xt = self._binary_search(adv, x0, start, theta)
        dist = self._dist(xt, x0)
        for t in range(1, self.max_iter + 1):
            if dist <= self.eps:
                break
            delta = (math.sqrt(d) if self.norm == "l2" else d) * theta * dist
            n_eval = int(min(self.init_eval * math.sqrt(t), self.max_eval))
            if self.norm == "l2":
                u = torch.randn((n_eval, *x0.shape), generator=gen, dtype=x0.dtype)
            else:
                u = torch.rand((n_eval, *x0.shape), generator=gen, dtype=x0.dtype) * 2 - 1
            u = u / flat_norm(u, "l2").reshape((-1,) + (1,) * x0.dim())
            probes = self._clip(xt[None] + delta * u)
            u = (probes - xt[None]) / delta
            phi = adv(probes).to(x0.dtype) * 2 - 1
            if bool((phi == phi[0]).all()):
                grad = phi[0] * u.mean(0)
            else:
                grad = ((phi - phi.mean())[:, None] * u.reshape(n_eval, -1)).mean(0).reshape(x0.shape)
            update = grad / (grad.norm() + 1e-12) if self.norm == "l2" else grad.sign()
            step = dist / math.sqrt(t)
            cand = self._clip(xt + step * update)
            while not bool(adv(cand[None])[0]) and step > 1e-8:
                step /= 2
                cand = self._clip(xt + step * update)
            xt = self._binary_search(adv, x0, cand, theta)
            dist = self._dist(xt, x0)
        if dist <= self.eps:
            return xt
        return self._project(xt[None], x0[None])[0]
