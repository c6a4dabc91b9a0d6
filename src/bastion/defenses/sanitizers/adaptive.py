"""Adaptive evaluation of a wrapped (defended) model — the attacks a defence must survive.

A sanitiser that rounds its input has zero gradients almost everywhere, and a randomised one
gives a different gradient every call: plain PGD then fails for the wrong reason (gradient
masking, Athalye et al. 2018, https://arxiv.org/abs/1802.00420). The wrappers here make the
whole pipeline attackable with the evasion engineer's PGD:

- ``BPDA``: Backward Pass Differentiable Approximation — forward through the real sanitiser,
  backward as the identity (straight-through), then through the differentiable base model.
- ``EOT``: Expectation over Transformation — average the base model's logits over ``k`` noise draws.
- ``DetectorAware``: adds ``c · relu(score − threshold)`` to the true-class logit so the untargeted
  attack must both flip the label and stay under the detector's threshold (a detector-as-loss
  reduction in the spirit of Carlini & Wagner 2017).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, sanitized: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return sanitized

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad, None


def straight_through(x: torch.Tensor, sanitize: Any) -> torch.Tensor:
    """``sanitize(x)`` in the forward pass, identity in the backward pass."""
    with torch.no_grad():
        s = sanitize(x.detach())
    return _StraightThrough.apply(x, s)


class BPDA(nn.Module):
    """``base(sanitize(x))`` with the sanitiser replaced by the identity in the backward pass."""

    def __init__(self, wrapper: nn.Module) -> None:
        super().__init__()
        self.wrapper = wrapper
        self.base: nn.Module = wrapper.base  # type: ignore[assignment]

    def sanitized(self, x: torch.Tensor) -> torch.Tensor:
        return straight_through(x, self.wrapper.sanitize)  # type: ignore[operator]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(self.sanitized(x))  # type: ignore[no-any-return]

    def detection_score(self, x: torch.Tensor) -> torch.Tensor:
        """Feature-squeezing score with straight-through squeezers (differentiable surrogate)."""
        p = torch.softmax(self.base(x), dim=1)
        q = torch.softmax(self.base(self.sanitized(x)), dim=1)
        return (p - q).abs().sum(dim=1)


class EOT(nn.Module):
    """Mean base-model logits over ``k`` Gaussian draws of a randomised-smoothing wrapper."""

    def __init__(self, wrapper: nn.Module, k: int = 16) -> None:
        super().__init__()
        self.wrapper = wrapper
        self.k = int(k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.wrapper.noisy_logits(x) for _ in range(self.k)]).mean(0)  # type: ignore[operator]


class DetectorAware(nn.Module):
    """Logits whose true class is boosted while the detector fires, so evading means also hiding.

    The label must be known per batch: set ``self.y`` before each attack call (``attack_labels``).
    """

    def __init__(self, classifier: nn.Module, scorer: nn.Module, threshold: float, scale: float,
                 weight: float = 10.0) -> None:
        super().__init__()
        self.classifier = classifier
        self.scorer = scorer
        self.threshold = float(threshold)
        self.scale = float(scale) if scale > 0 else 1.0
        self.weight = float(weight)
        self.y: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(x)
        if self.y is None or self.y.shape[0] != x.shape[0]:
            return logits
        score = self.scorer.detection_score(x)  # type: ignore[operator]
        penalty = self.weight * torch.relu((score - self.threshold) / self.scale + 0.1)
        return logits + penalty.unsqueeze(1) * nn.functional.one_hot(self.y, logits.shape[1]).to(logits.dtype)
