"""Inner maximisation of adversarial training: the perturbations a robust model trains on.

These run inside the training loop (train mode, parameters trainable), so they are small,
batched and allocation-light. Evaluation of the trained model uses the evasion engineer's
attacks (``bastion.attacks.evasion``), never these.

- ``pgd_perturb``: Madry et al. 2018, L∞ PGD with random start (cross-entropy), or the TRADES
  inner step (KL divergence to the clean prediction; Zhang et al. 2019).
- ``fgsm_rs_perturb``: Wong et al. 2020 "Fast is better than free": uniform random start in the
  ε-ball, one signed-gradient step of size α = 1.25 ε, projected.

``bf16=True`` runs the model's forward/backward under bfloat16 autocast (the perturbation itself and
the projection stay fp32): on CPUs with AMX/AVX-512-bf16 this makes the inner attack about 2× faster.
Random starts are drawn on the CPU generator and moved to the input's device (reproducible anywhere).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

InnerLoss = Literal["ce", "kl"]


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, lo: float | None, hi: float | None) -> torch.Tensor:
    x_adv = torch.max(torch.min(x_adv, x + eps), x - eps)
    if lo is not None or hi is not None:
        x_adv = x_adv.clamp(min=lo, max=hi)
    return x_adv


def autocast(x: torch.Tensor, bf16: bool) -> AbstractContextManager[object]:
    """bfloat16 autocast on ``x``'s device when ``bf16`` (a no-op context otherwise)."""
    return torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16)


def uniform_noise(x: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    """U(-eps, eps) noise shaped like ``x``, drawn on the CPU generator, on ``x``'s device."""
    return ((torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1) * eps).to(x.device)


def _loss(module: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, kind: InnerLoss, p_clean: torch.Tensor | None,
          bf16: bool = False) -> torch.Tensor:
    with autocast(x_adv, bf16):
        logits = module(x_adv)
    logits = logits.float()
    if kind == "kl":
        assert p_clean is not None
        return F.kl_div(F.log_softmax(logits, dim=1), p_clean, reduction="sum")
    return F.cross_entropy(logits, y, reduction="sum")


def pgd_perturb(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    step_size: float | None = None,
    clip_min: float | None = 0.0,
    clip_max: float | None = 1.0,
    loss: InnerLoss = "ce",
    random_start: bool = True,
    generator: torch.Generator | None = None,
    bf16: bool = False,
) -> torch.Tensor:
    """L∞ PGD examples for training (detached). ``loss="kl"`` is the TRADES inner problem."""
    if eps <= 0 or steps <= 0:
        return x.detach()
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    p_clean = None
    if loss == "kl":
        with torch.no_grad(), autocast(x, bf16):
            p_clean = F.softmax(module(x).float(), dim=1)
    x = x.detach()
    if random_start:
        if loss == "kl":  # TRADES starts from a small Gaussian around x
            noise = (0.001 * torch.randn(x.shape, generator=generator, dtype=x.dtype)).to(x.device)
        else:
            noise = uniform_noise(x, eps, generator)
        x_adv = _project(x + noise, x, eps, clip_min, clip_max)
    else:
        x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(_loss(module, x_adv, y, loss, p_clean, bf16), x_adv)
        x_adv = _project(x_adv.detach() + alpha * grad.sign(), x, eps, clip_min, clip_max)
    return x_adv.detach()


def fgsm_rs_perturb(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float | None = None,
    clip_min: float | None = 0.0,
    clip_max: float | None = 1.0,
    generator: torch.Generator | None = None,
    bf16: bool = False,
) -> torch.Tensor:
    """FGSM with uniform random initialisation (Wong et al. 2020), α = 1.25 ε by default."""
    if eps <= 0:
        return x.detach()
    a = 1.25 * eps if alpha is None else alpha
    x = x.detach()
    x_adv = _project(x + uniform_noise(x, eps, generator), x, eps, clip_min, clip_max).requires_grad_(True)
    (grad,) = torch.autograd.grad(_loss(module, x_adv, y, "ce", None, bf16), x_adv)
    return _project(x_adv.detach() + a * grad.sign(), x, eps, clip_min, clip_max).detach()
