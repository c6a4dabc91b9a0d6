"""LID detector on hidden features (Ma et al. 2018, "Characterizing Adversarial Subspaces Using
Local Intrinsic Dimensionality", https://arxiv.org/abs/1801.02613).

Adversarial regions have a higher local intrinsic dimensionality than the clean data manifold. For
an input and each of several hidden layers, the maximum-likelihood LID estimate from its ``k``
nearest neighbours among a fixed set of clean reference activations is

    LID(x) = -( (1/k) Σ_i log(r_i(x) / r_k(x)) )^-1.

A logistic regression over the per-layer LIDs (trained, as in the paper, on clean and noisy inputs
against PGD examples of the base model) gives the detection score; the threshold is calibrated to a
clean false-positive rate like the other detectors. Ma et al. estimate LID within a minibatch; the
wrapper uses a fixed clean reference set instead, so an input's score does not depend on the batch
it arrives in (servable). ``forward`` returns the base model's logits unchanged; the score is
differentiable, so the detector-aware adaptive attack (``adaptive.DetectorAware``) applies.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from bastion.core.errors import InvalidInputError
from bastion.defenses.sanitizers.mahalanobis import _leaves

_TAP_KINDS = ("ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Tanh", "Sigmoid", "MaxPool2d", "AvgPool2d",
              "AdaptiveAvgPool2d")


def _kind(m: nn.Module) -> str:
    return str(getattr(m, "original_name", type(m).__name__))  # TorchScript modules keep their class name here


def split_stages(module: nn.Module, probe: torch.Tensor) -> nn.ModuleList:
    """Split ``module`` into consecutive stages ending at each activation/pooling output (last: logits).

    An activation directly followed by pooling taps after the pooling (smaller, same information).
    Works for modules whose forward applies their children in order (zoo architectures,
    ``nn.Sequential``); verified on ``probe``, else ``InvalidInputError``.
    """
    leaves = _leaves(module)
    cuts = [i + 1 for i, m in enumerate(leaves[:-1])
            if _kind(m) in _TAP_KINDS and _kind(leaves[i + 1]) not in _TAP_KINDS]
    bounds = [0, *cuts, len(leaves)]
    stages = nn.ModuleList([nn.Sequential(*leaves[a:b]) for a, b in itertools.pairwise(bounds) if b > a])
    if len(stages) < 2:
        raise InvalidInputError(f"{type(module).__name__}: no hidden activation layers to estimate LID on")
    with torch.no_grad():
        h = probe
        for stage in stages:
            h = stage(h)
        if h.shape != module(probe).shape or not torch.allclose(h, module(probe), atol=1e-5):
            raise InvalidInputError(
                f"cannot split {type(module).__name__} into layers: its forward is not a plain stack of its children")
    return stages


def lid_mle(dist: torch.Tensor, k: int) -> torch.Tensor:
    """Maximum-likelihood LID from each row's ``k`` smallest distances (Levina & Bickel; Ma et al. eq. 3)."""
    r = torch.topk(dist, k, dim=1, largest=False).values.clamp_min(1e-12)  # ascending
    r_k = r[:, -1:]
    mean_log = torch.log(r / r_k).mean(dim=1)
    return -1.0 / torch.clamp(mean_log, max=-1e-12)


class LIDDetector(nn.Module):
    """``base`` (= its stages in order) with a LID-based adversarial-input score on the hidden layers."""

    def __init__(self, stages: nn.ModuleList, references: list[torch.Tensor], k: int, mean: torch.Tensor,
                 std: torch.Tensor, weight: torch.Tensor, bias: float, threshold: float = float("inf")) -> None:
        super().__init__()
        if len(references) != len(stages):
            raise InvalidInputError("need one reference activation matrix per stage")
        self.stages = stages
        self.references = nn.ParameterList([nn.Parameter(r, requires_grad=False) for r in references])
        self.k = int(k)
        self.bastion_defense = "lid_detector"
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.register_buffer("weight", weight)
        self.bias = float(bias)
        self.threshold = float(threshold)
        self.n_fit_clean = 0
        self.n_fit_adversarial = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for stage in self.stages:
            h = stage(h)
        return h

    @torch.jit.export
    def lid_features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-layer LID estimates, shape (N, layers)."""
        feats: list[torch.Tensor] = []
        h = x
        for i, stage in enumerate(self.stages):
            h = stage(h)
            for j, ref in enumerate(self.references):
                if j == i:
                    feats.append(lid_mle(torch.cdist(h.flatten(1), ref), self.k))
        return torch.stack(feats, dim=1)

    @torch.jit.export
    def detection_score(self, x: torch.Tensor) -> torch.Tensor:
        """Logistic-regression logit over the standardised per-layer LIDs (higher = more suspicious)."""
        z = (self.lid_features(x) - self.mean) / self.std  # type: ignore[operator]
        return z @ self.weight + self.bias  # type: ignore[operator]

    @torch.jit.export
    def is_adversarial(self, x: torch.Tensor) -> torch.Tensor:
        return self.detection_score(x) > self.threshold

    @classmethod
    def fit(cls, module: nn.Module, x: np.ndarray, y: np.ndarray, eps: float, clip_min: float | None = 0.0,
            clip_max: float | None = 1.0, k: int = 20, n_reference: int = 500, n_fit: int = 500,
            pgd_steps: int = 10, seed: int = 0) -> LIDDetector:
        """Reference activations from ``n_reference`` clean inputs; the logistic regression from ``n_fit``
        other clean inputs, their noisy copies (uniform at ``eps``) and PGD-``pgd_steps`` examples at ``eps``."""
        from sklearn.linear_model import LogisticRegression

        from bastion.attacks.evasion import PGD

        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        if len(x) < k + 10:
            raise InvalidInputError(f"LID needs more than {k + 10} clean samples to fit, got {len(x)}")
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(x))
        n_ref = min(n_reference, len(x) // 2)
        ref_idx, fit_idx = perm[:n_ref], perm[n_ref : n_ref + n_fit]
        if n_ref <= k or len(fit_idx) < 10:
            raise InvalidInputError(f"LID needs more than {k} reference and 10 fitting samples; got {len(x)} in all")
        probe = torch.from_numpy(x[ref_idx[:8]])
        for p in module.parameters():
            p.requires_grad_(False)
        stages = split_stages(module, probe)
        with torch.no_grad():
            refs: list[torch.Tensor] = []
            h = torch.from_numpy(x[ref_idx])
            for stage in stages:
                h = stage(h)
                refs.append(h.flatten(1).clone())
        det = cls(stages, refs, min(k, n_ref - 1), torch.zeros(len(stages)), torch.ones(len(stages)),
                  torch.zeros(len(stages)), 0.0)
        xf, yf = torch.from_numpy(x[fit_idx]), torch.from_numpy(y[fit_idx])
        gen = torch.Generator().manual_seed(seed)
        noisy = xf + (torch.rand(xf.shape, generator=gen) * 2 - 1) * eps
        if clip_min is not None or clip_max is not None:
            noisy = noisy.clamp(clip_min, clip_max)
        x_adv = PGD(eps=eps, steps=pgd_steps, clip_min=clip_min, clip_max=clip_max, seed=seed)(module, xf, yf)
        with torch.no_grad():
            fooled = module(x_adv).argmax(1) != yf
            clean_ok = module(xf).argmax(1) == yf
            if int((fooled & clean_ok).sum()) < 5:
                raise InvalidInputError(f"PGD at eps={eps} fooled too few fitting samples ({int(fooled.sum())}) "
                                        "to train the LID detector; raise eps")
            f_neg = torch.cat([det.lid_features(xf[clean_ok]), det.lid_features(noisy[clean_ok])])
            f_pos = det.lid_features(x_adv[fooled & clean_ok])
        feats = torch.cat([f_neg, f_pos]).double()
        mean, std = feats.mean(0), feats.std(0).clamp_min(1e-6)
        z = ((feats - mean) / std).numpy()
        labels = np.r_[np.zeros(len(f_neg)), np.ones(len(f_pos))]
        lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(z, labels)
        det.mean, det.std = mean.float(), std.float()
        det.weight = torch.from_numpy(lr.coef_[0].astype(np.float32))
        det.bias = float(lr.intercept_[0])
        det.n_fit_clean, det.n_fit_adversarial = int(clean_ok.sum()), len(f_pos)
        return det
