"""Mahalanobis detector on hidden features (Lee et al. 2018, https://arxiv.org/abs/1807.03888).

Class-conditional Gaussians with a shared covariance are fitted to the penultimate-layer
features of clean training data; an input's score is its smallest Mahalanobis distance to a
class mean. Adversarial inputs that cross a decision boundary tend to land far from every
class cluster. ``forward`` returns the base model's logits unchanged (the detector is a side
channel the gateway can check with ``is_adversarial``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bastion.core.errors import InvalidInputError


def _leaves(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _leaves(child)]
    children = list(module.children())
    if not children:
        return [module]
    return [leaf for child in children for leaf in _leaves(child)]


def _is_linear(m: nn.Module) -> bool:
    return isinstance(m, nn.Linear) or getattr(m, "original_name", "") == "Linear"  # TorchScript too


def split_penultimate(module: nn.Module, probe: torch.Tensor) -> tuple[nn.Module, nn.Module]:
    """Split ``module`` into (features, head) at its last ``Linear`` layer.

    Works for modules whose forward applies their children in registration order (the zoo
    architectures, ``nn.Sequential`` stacks); verified on ``probe`` — anything else raises
    ``InvalidInputError`` rather than silently detecting on the wrong features.
    """
    leaves = _leaves(module)
    last = max((i for i, m in enumerate(leaves) if _is_linear(m)), default=-1)
    if last <= 0:
        raise InvalidInputError(f"{type(module).__name__}: no hidden layer before a final Linear layer")
    features, head = nn.Sequential(*leaves[:last]), nn.Sequential(*leaves[last:])
    with torch.no_grad():
        if not torch.allclose(head(features(probe)), module(probe), atol=1e-5):
            raise InvalidInputError(
                f"cannot find the penultimate layer of {type(module).__name__}: its forward is not a plain "
                "stack of its children; pass features/head modules explicitly"
            )
    return features, head


class MahalanobisDetector(nn.Module):
    """``base`` (= head ∘ features) with a Mahalanobis score on ``features(x)``."""


    def __init__(self, features: nn.Module, head: nn.Module, means: torch.Tensor, precision: torch.Tensor,
                 threshold: float = float("inf")) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.bastion_defense = "mahalanobis_detector"
        self.register_buffer("means", means)
        self.register_buffer("precision", precision)
        self.threshold = float(threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.jit.export
    def detection_score(self, x: torch.Tensor) -> torch.Tensor:
        """Smallest Mahalanobis distance of ``features(x)`` to any class mean (higher = more suspicious)."""
        h = self.features(x).flatten(1)
        d = h.unsqueeze(1) - self.means.unsqueeze(0)  # type: ignore[operator]
        m = torch.einsum("nkf,fg,nkg->nk", d, self.precision, d)
        return m.min(dim=1).values

    @torch.jit.export
    def is_adversarial(self, x: torch.Tensor) -> torch.Tensor:
        return self.detection_score(x) > self.threshold

    @classmethod
    def fit(cls, module: nn.Module, x: np.ndarray, y: np.ndarray, n_classes: int,
            shrinkage: float = 1e-3) -> MahalanobisDetector:
        """Fit class means and the shared (shrunk) covariance on clean data ``x, y``."""
        xt = torch.from_numpy(np.asarray(x[:512], dtype=np.float32))
        features, head = split_penultimate(module, xt[:8])
        with torch.no_grad():
            h = torch.cat([features(torch.from_numpy(np.asarray(x[i : i + 512], dtype=np.float32))).flatten(1)
                           for i in range(0, len(x), 512)]).double()
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
        means = torch.zeros(n_classes, h.shape[1], dtype=torch.float64)
        centred = torch.empty_like(h)
        for c in range(n_classes):
            mask = yt == c
            if mask.any():
                means[c] = h[mask].mean(0)
                centred[mask] = h[mask] - means[c]
        cov = centred.T @ centred / max(1, len(h))
        cov += shrinkage * torch.eye(cov.shape[0], dtype=cov.dtype) * cov.diagonal().mean().clamp_min(1e-12)
        precision = torch.linalg.pinv(cov)
        return cls(features, head, means.float(), precision.float())
