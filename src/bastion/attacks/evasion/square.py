"""Square Attack — score-based black-box random search (Andriushchenko et al. 2020, arXiv:1912.00049).

Each iteration changes the perturbation inside one random square window (image inputs) or one
random feature subset (other inputs) to a vertex of the L∞ ball, and keeps the change if the
margin loss falls; the window shrinks on the paper's schedule. The L2 variant here is a
simplified Square-style search (Gaussian window updates projected onto the L2 ball), not the
paper's meta-pattern construction. It needs only scores, so scikit-learn trees and remote
endpoints are attackable; a ``QueryBudgetExceeded`` stops the search with the best so far.

Examples:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x, y = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1])
    >>> x_adv = SquareAttack(eps=0.1, n_queries=50)(net, x, y)
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
    True
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from bastion.attacks.evasion.base import Norm, check_xy, project
from bastion.attacks.evasion.blackbox import BlackBoxAttack, QueryCounter, margin
from bastion.core.errors import InvalidInputError, QueryBudgetExceeded

_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128), (8000, 256))


def p_selection(p_init: float, it: int, n_iters: int) -> float:
    """The paper's schedule for the fraction of pixels changed per iteration."""
    t = int(it / max(1, n_iters) * 10000)
    div = 512
    for bound, d in _SCHEDULE:
        if t <= bound:
            div = d
            break
    return p_init / div


class SquareAttack(BlackBoxAttack):
    """Untargeted Square attack with a per-sample query limit ``n_queries``."""

    name = "square"

    def __init__(
        self,
        eps: float,
        norm: Norm = "linf",
        n_queries: int = 1000,
        p_init: float = 0.8,
        clip_min: float | None = 0.0,
        clip_max: float | None = 1.0,
        seed: int = 0,
        batch_size: int = 512,
        threads: int | None = None,
    ) -> None:
        super().__init__(eps, norm, clip_min, clip_max, seed, batch_size, threads)
        if n_queries < 1 or not 0 < p_init <= 1:
            raise InvalidInputError(f"need n_queries >= 1 and 0 < p_init <= 1 (got {n_queries}, {p_init})")
        self.n_queries = int(n_queries)
        self.p_init = float(p_init)
        self.last_pred: Tensor | None = None  # labels the model gave the returned points

    def params(self) -> dict[str, object]:
        return self._params(n_queries=self.n_queries, p_init=self.p_init)

    def __call__(self, model: Any, x: Tensor, y: Tensor) -> Tensor:
        check_xy(x, y)
        with self._querying(model) as counter:
            return self._search(counter, x.detach(), y.long())

    def _vertex(self, shape: tuple[int, ...], gen: torch.Generator, dtype: torch.dtype) -> Tensor:
        return (torch.randint(0, 2, shape, generator=gen) * 2 - 1).to(dtype) * self.eps

    def _search(self, predict: QueryCounter, x: Tensor, y: Tensor) -> Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        n = x.shape[0]
        image = x.dim() == 4 and x.shape[2] > 1 and x.shape[3] > 1
        if self.norm == "linf":
            if image:  # vertical stripes
                init = self._vertex((n, x.shape[1], 1, x.shape[3]), gen, x.dtype).expand_as(x)
            else:
                init = self._vertex(tuple(x.shape), gen, x.dtype)
        else:
            init = project(torch.randn(x.shape, generator=gen, dtype=x.dtype) * self.eps, "l2", self.eps)
        x_best = self._clip(x + init)
        self.last_pred = None
        try:
            scores = predict(x_best)
        except QueryBudgetExceeded:
            self.budget_exhausted = True
            return x.clone()
        m_best = margin(scores, y)
        pred_best = scores.argmax(1)
        self.last_pred = pred_best
        n_feat = x[0].numel()
        for it in range(1, self.n_queries):
            active = (m_best > 0).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            xa, xb = x[active], x_best[active]
            delta = xb - xa
            p = p_selection(self.p_init, it, self.n_queries)
            if image:
                c, h, w = x.shape[1], x.shape[2], x.shape[3]
                s = min(max(round(math.sqrt(p * n_feat / c)), 1), h - 1)
                r = int(torch.randint(0, h - s + 1, (1,), generator=gen))
                q = int(torch.randint(0, w - s + 1, (1,), generator=gen))
                mask = torch.zeros((1, *x.shape[1:]), dtype=torch.bool)
                mask[:, :, r : r + s, q : q + s] = True
                if self.norm == "linf":
                    upd = self._vertex((active.numel(), c, 1, 1), gen, x.dtype).expand_as(xa)
                else:
                    upd = torch.randn(xa.shape, generator=gen, dtype=x.dtype) * self.eps * s / math.sqrt(n_feat)
            else:
                k = max(1, round(p * n_feat))
                chosen = torch.randperm(n_feat, generator=gen)[:k]
                mask = torch.zeros(n_feat, dtype=torch.bool)
                mask[chosen] = True
                mask = mask.reshape((1, *x.shape[1:]))
                if self.norm == "linf":
                    upd = self._vertex(tuple(xa.shape), gen, x.dtype)
                else:
                    upd = torch.randn(xa.shape, generator=gen, dtype=x.dtype) * self.eps * math.sqrt(k / n_feat)
            if self.norm == "linf":
                new_delta = torch.where(mask, upd, delta)
            else:
                new_delta = project(torch.where(mask, delta + upd, delta), "l2", self.eps)
            x_new = self._clip(xa + new_delta)
            if self.norm == "linf" and image:
                # as in the paper: a window left unchanged wastes a query, so take the other vertex
                moved = ((x_new - xb).abs() > 1e-7) & mask
                stuck = ~moved.flatten(2).any(2)
                if bool(stuck.any()):
                    upd = torch.where(stuck[:, :, None, None], -upd, upd)
                    x_new = self._clip(xa + torch.where(mask, upd, delta))
            try:
                scores = predict(x_new)
            except QueryBudgetExceeded:
                self.budget_exhausted = True
                break
            m_new = margin(scores, y[active])
            better = m_new < m_best[active]
            x_best[active[better]] = x_new[better]
            m_best[active[better]] = m_new[better]
            pred_best[active[better]] = scores.argmax(1)[better]
        return x_best
