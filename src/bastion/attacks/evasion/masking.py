"""Reliability of a white-box evaluation: does the model mask gradients?

A model can look robust only because its gradients are useless to attacks (shattered by a
non-differentiable step, saturated to zero, randomised, or NaN) — "obfuscated gradients"
(Athalye, Carlini & Wagner 2018, arXiv:1802.00420). The signs checked here follow Carlini et al.
"On Evaluating Adversarial Robustness" (2019, arXiv:1902.06705), §5:

- ``zero_or_nan_gradients``: the input gradient of the loss is exactly zero or not finite;
- ``blackbox_beats_whitebox``: a black-box attack (Square) succeeds where PGD fails;
- ``success_not_rising_with_eps``: PGD success falls when the budget grows;
- ``attack_fails_at_large_eps``: PGD cannot reach ~0% accuracy with an (almost) unbounded budget (the
  whole input range; 100 × ε for unbounded inputs);
- ``randomised_outputs``: two forward passes on the same input differ (attacks then need EOT).

Examples:
    >>> import torch                                                              # doctest: +SKIP
    >>> rep = diagnose_gradient_masking(net, x, y, eps=0.1)                       # doctest: +SKIP
    >>> [f.id for f in rep.flags]                                                 # doctest: +SKIP
    ['zero_or_nan_gradients', 'blackbox_beats_whitebox']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from bastion.attacks.evasion.base import Norm, attack_threads, frozen_eval, input_grad
from bastion.attacks.evasion.pgd import PGD
from bastion.attacks.evasion.square import SquareAttack


@dataclass
class MaskingFlag:
    """One sign of gradient masking, with the numbers that raised it."""

    id: str
    severity: str  # "high" or "medium"
    title: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class MaskingReport:
    flags: list[MaskingFlag]
    metrics: dict[str, Any]
    params: dict[str, Any]

    @property
    def masked(self) -> bool:
        """True when a high-severity sign (white-box results not trustworthy) was found."""
        return any(f.severity == "high" for f in self.flags)


def _success(model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor) -> Tensor:
    with torch.inference_mode():
        return model(x_adv).argmax(1) != y


def diagnose_gradient_masking(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: Norm = "linf",
    clip_min: float | None = 0.0,
    clip_max: float | None = 1.0,
    steps: int = 20,
    square_queries: int = 500,
    large_eps: float | None = None,
    seed: int = 0,
    progress: Callable[[float, float], None] | None = None,
    tolerance: float = 0.05,
) -> MaskingReport:
    """Run the five reliability tests on the correctly classified samples of ``(x, y)``."""
    report = progress or (lambda done, total: None)
    total = 7.0
    flags: list[MaskingFlag] = []
    y = y.long()
    with frozen_eval(model), attack_threads(None):
        with torch.inference_mode():
            p1 = torch.softmax(model(x), 1)
            p2 = torch.softmax(model(x), 1)
        keep = p1.argmax(1) == y
        x, y = x[keep], y[keep]
        n = int(x.shape[0])
        if large_eps is None:
            # unbounded inputs: 100 x eps (10 std per feature at the tabular reference budget) — 10 x was
            # within reach of an honest, merely smooth tabular MLP (a false "attack fails" flag)
            span = (clip_max - clip_min) if clip_min is not None and clip_max is not None else 100.0 * eps
            large_eps = span if norm == "linf" else span * float(x[0].numel()) ** 0.5 if n else span
        metrics: dict[str, Any] = {"samples_attacked": n}
        params = {"eps": eps, "norm": norm, "steps": steps, "square_queries": square_queries,
                  "large_eps": large_eps, "seed": seed, "tolerance": tolerance}
        random_diff = float((p1 - p2).abs().max()) if p1.numel() else 0.0
        metrics["output_randomness"] = random_diff
        if random_diff > 1e-5:
            flags.append(MaskingFlag("randomised_outputs", "medium",
                                     "The model's outputs are randomised: two forward passes on the same input differ",
                                     {"max_probability_difference": random_diff}))
        report(1, total)
        if n == 0:
            return MaskingReport(flags, metrics, params)
        grad, _, _ = input_grad(model, x, y, "ce")
        gnorm = grad.reshape(n, -1).abs().sum(1)
        zero = int((gnorm == 0).sum())
        bad = int((~torch.isfinite(gnorm)).sum())
        metrics["zero_gradient_fraction"] = zero / n
        metrics["nan_gradient_fraction"] = bad / n
        if (zero + bad) / n >= 0.1:
            flags.append(MaskingFlag("zero_or_nan_gradients", "high",
                                     "The loss gradient is zero or not finite for many inputs: gradient attacks are blind",
                                     {"zero_gradient_fraction": zero / n, "nan_gradient_fraction": bad / n}))
        report(2, total)

        def pgd_success(e: float) -> Tensor:
            atk = PGD(e, norm, steps=steps, clip_min=clip_min, clip_max=clip_max, seed=seed, early_stop=True)
            return _success(model, x, y, atk(model, x, y))

        budgets = [eps * f for f in (0.5, 1.0, 2.0, 4.0)]
        rates: list[float] = []
        pgd_at_eps = torch.zeros(n, dtype=torch.bool)
        for i, e in enumerate(budgets):
            s = pgd_success(min(e, large_eps))
            if i == 1:
                pgd_at_eps = s
            rates.append(float(s.float().mean()))
            report(3 + i, total)
        metrics["pgd_success_by_eps"] = [{"eps": round(min(e, large_eps), 6), "success_rate": r}
                                         for e, r in zip(budgets, rates, strict=True)]
        drops = [rates[i] - rates[i + 1] for i in range(len(rates) - 1)]
        if max(drops) > tolerance:
            flags.append(MaskingFlag("success_not_rising_with_eps", "medium",
                                     "PGD succeeds less often with a larger budget, which a working attack never does",
                                     {"success_by_eps": metrics["pgd_success_by_eps"]}))
        sq = SquareAttack(eps, norm, n_queries=square_queries, clip_min=clip_min, clip_max=clip_max, seed=seed)
        sq_success = _success(model, x, y, sq(model, x, y))
        report(6, total)
        wb, bb = float(pgd_at_eps.float().mean()), float(sq_success.float().mean())
        only_bb = int((sq_success & ~pgd_at_eps).sum())
        metrics.update({"whitebox_success_rate": wb, "blackbox_success_rate": bb, "blackbox_only_successes": only_bb})
        if bb > wb + tolerance and only_bb >= 2:
            flags.append(MaskingFlag("blackbox_beats_whitebox", "high",
                                     "A black-box attack (Square) beats the white-box attack (PGD): gradients are masked",
                                     {"whitebox_success_rate": wb, "blackbox_success_rate": bb,
                                      "blackbox_only_successes": only_bb}))
        big = pgd_success(large_eps)
        big_rate = float(big.float().mean())
        metrics["large_eps_success_rate"] = big_rate
        if big_rate < 0.9:
            flags.append(MaskingFlag("attack_fails_at_large_eps", "high",
                                     "PGD cannot fool the model even with an unbounded budget: the attack is not working",
                                     {"large_eps": large_eps, "success_rate": big_rate}))
        report(7, total)
    return MaskingReport(flags, metrics, params)
