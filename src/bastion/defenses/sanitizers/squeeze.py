"""Feature squeezing (Xu et al. 2018, https://arxiv.org/abs/1704.01155) as a servable wrapper.

``FeatureSqueezing(base)`` classifies the *squeezed* input (bit-depth reduction, then median
smoothing) and scores how far the prediction moves under each squeezer: an adversarial input
tends to move a lot (L1 distance between softmax outputs), a clean one does not. The
squeezers are non-differentiable (rounding has zero gradient almost everywhere), which is why
the assessment attacks this wrapper with BPDA rather than plain PGD.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def reduce_bit_depth(x: torch.Tensor, bits: int, lo: float, hi: float) -> torch.Tensor:
    """Quantise values in ``[lo, hi]`` to ``2**bits`` levels."""
    levels = float(2**bits - 1)
    z = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
    return torch.round(z * levels) / levels * (hi - lo) + lo


def median_smooth(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Per-channel median filter of size ``kernel``×``kernel`` over the last two dims (edge-padded).

    Matches ``scipy.ndimage.median_filter(size=kernel)`` (ART's ``SpatialSmoothing``) for kernel ≤ 3.
    """
    if kernel <= 1 or x.dim() < 3:
        return x
    shape = x.shape
    img = x.reshape(-1, 1, shape[-2], shape[-1])
    left, right = kernel // 2, (kernel - 1) // 2  # scipy.ndimage.median_filter's window alignment
    img = F.pad(img, [left, right, left, right], mode="replicate")
    if kernel == 2:  # upper median of 4 values with a min/max network: no unfold, no sort
        a, b = img[:, :, :-1, :-1], img[:, :, :-1, 1:]
        c, d = img[:, :, 1:, :-1], img[:, :, 1:, 1:]
        hi1, lo1, hi2, lo2 = torch.maximum(a, b), torch.minimum(a, b), torch.maximum(c, d), torch.minimum(c, d)
        return torch.maximum(torch.minimum(hi1, hi2), torch.maximum(lo1, lo2)).reshape(shape)
    patches = F.unfold(img, kernel_size=kernel)  # (N, k*k, H*W)
    med = patches.kthvalue((kernel * kernel) // 2 + 1, dim=1).values  # scipy's rank for even windows
    return med.reshape(shape)


class FeatureSqueezing(nn.Module):
    """``base`` behind bit-depth reduction + median smoothing, with a detection score.

    ``forward(x)`` → logits of ``base(squeeze(x))``; ``detection_score(x)`` → per-sample max L1
    distance between ``softmax(base(x))`` and ``softmax(base(s(x)))`` over the squeezers ``s``;
    ``is_adversarial(x)`` compares it with ``threshold`` (calibrated on clean data with
    :func:`bastion.defenses.sanitizers.calibrate_threshold`).

    Examples:
        >>> base = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        >>> fs = FeatureSqueezing(base, bit_depth=4, median_kernel=2)
        >>> fs(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """


    def __init__(self, base: nn.Module, bit_depth: int = 1, median_kernel: int = 2, clip_min: float = 0.0,
                 clip_max: float = 1.0, threshold: float = 1.0) -> None:
        super().__init__()
        self.base = base
        self.bastion_defense = "feature_squeezing"
        self.bit_depth = int(bit_depth)
        self.median_kernel = int(median_kernel)
        self.clip_min = float(clip_min)
        self.clip_max = float(clip_max)
        self.threshold = float(threshold)

    @torch.jit.export
    def sanitize(self, x: torch.Tensor) -> torch.Tensor:
        """The squeezed input the classifier sees (bit depth, then median)."""
        z = x
        if self.bit_depth > 0:
            z = reduce_bit_depth(z, self.bit_depth, self.clip_min, self.clip_max)
        return median_smooth(z, self.median_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(self.sanitize(x))

    @torch.jit.export
    def detection_score(self, x: torch.Tensor) -> torch.Tensor:
        """Max L1 distance between predictions on ``x`` and on each squeezed version of ``x``."""
        p = torch.softmax(self.base(x), dim=1)
        score = torch.zeros(x.shape[0], dtype=p.dtype, device=p.device)
        if self.bit_depth > 0:
            pb = torch.softmax(self.base(reduce_bit_depth(x, self.bit_depth, self.clip_min, self.clip_max)), dim=1)
            score = torch.maximum(score, (p - pb).abs().sum(dim=1))
        if self.median_kernel > 1 and x.dim() >= 3:
            pm = torch.softmax(self.base(median_smooth(x, self.median_kernel)), dim=1)
            score = torch.maximum(score, (p - pm).abs().sum(dim=1))
        return score

    @torch.jit.export
    def is_adversarial(self, x: torch.Tensor) -> torch.Tensor:
        return self.detection_score(x) > self.threshold
