"""Input-gradient and integrated-gradients saliency maps for torch classifiers.

Used by explanations in reports, by poisoning triage (a backdoor trigger patch lights up in
the attribution map of a flagged sample) and by the evasion comparison of clean vs
adversarial attributions.

References:
    Simonyan et al. 2014, "Deep Inside Convolutional Networks" (input gradients).
    Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks" (integrated gradients),
    https://arxiv.org/abs/1703.01365
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from bastion.core.errors import InvalidInputError

SaliencyMethod = Literal["integrated_gradients", "gradient", "gradient_x_input"]


def _as_module(model: Any) -> nn.Module:
    if isinstance(model, nn.Module):
        return model
    module = getattr(model, "module", None)
    if isinstance(module, nn.Module):
        return module
    raise InvalidInputError(
        f"saliency maps need a differentiable torch model; got {type(model).__name__} (a black-box adapter?)"
    )


def _target_logit_grad(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    logits = module(x)
    sel = logits.gather(1, y.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(sel, x)
    return grad


def saliency_maps(
    module: Any,
    x: np.ndarray,
    y: np.ndarray | None = None,
    method: SaliencyMethod = "integrated_gradients",
    steps: int = 32,
    baseline: np.ndarray | float = 0.0,
    absolute: bool = True,
    batch_size: int = 64,
) -> np.ndarray:
    """Attribution of each input value to the logit of class ``y``, same shape as ``x``.

    ``module`` is an ``nn.Module`` returning logits (or a ``TorchAdapter``); ``y`` the class to
    explain per sample (``None`` = the predicted class). ``method``:

    - ``integrated_gradients`` (default): path integral of gradients from ``baseline`` to ``x``
      (``steps`` Riemann midpoints); signed values sum to ``logit(x) - logit(baseline)``.
    - ``gradient``: the plain input gradient (Simonyan et al.).
    - ``gradient_x_input``: gradient times input.

    With ``absolute=True`` (default) the magnitudes are returned, which is what a heat map shows.

    Examples:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> saliency_maps(net, np.ones((3, 4), dtype=np.float32)).shape
        (3, 4)
    """
    net = _as_module(module)
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim < 2 or len(arr) == 0:
        raise InvalidInputError(f"saliency_maps expects a non-empty batch (n, ...); got shape {arr.shape}")
    if steps < 1:
        raise InvalidInputError(f"steps must be >= 1, got {steps}")
    was_training = net.training
    net.eval()
    out = np.empty_like(arr)
    try:
        for i in range(0, len(arr), batch_size):
            xb = torch.from_numpy(arr[i : i + batch_size])
            if y is None:
                with torch.no_grad():
                    yb = net(xb).argmax(1)
            else:
                yb = torch.as_tensor(np.asarray(y[i : i + batch_size]), dtype=torch.long)
                if yb.shape[0] != xb.shape[0]:
                    raise InvalidInputError(f"y has {len(y)} labels for {len(arr)} inputs")
            out[i : i + batch_size] = _attribute(net, xb, yb, method, steps, baseline).numpy()
    finally:
        net.train(was_training)
    return np.abs(out) if absolute else out


def _attribute(
    net: nn.Module, xb: torch.Tensor, yb: torch.Tensor, method: str, steps: int, baseline: np.ndarray | float
) -> torch.Tensor:
    if method == "gradient":
        return _target_logit_grad(net, xb, yb)
    if method == "gradient_x_input":
        return _target_logit_grad(net, xb, yb) * xb
    if method != "integrated_gradients":
        raise InvalidInputError(f"unknown saliency method {method!r}; use integrated_gradients|gradient|gradient_x_input")
    base = torch.as_tensor(np.broadcast_to(np.asarray(baseline, dtype=np.float32), xb.shape).copy())
    total = torch.zeros_like(xb)
    for k in range(steps):
        alpha = (k + 0.5) / steps
        total += _target_logit_grad(net, base + alpha * (xb - base), yb)
    return (xb - base) * total / steps
