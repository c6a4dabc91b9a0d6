"""WaNet: an imperceptible warping-based backdoor (dirty label).

Nguyen & Tran 2021, "WaNet — Imperceptible Warping-based Backdoor Attack", ICLR 2021,
https://arxiv.org/abs/2102.10369. The trigger is a fixed, smooth warping field: a ``k``×``k``
grid of random offsets (normalised to mean magnitude 1), upsampled bicubically to the image
size, scaled by ``s / h`` and added to the identity sampling grid; images are resampled with
``torch.nn.functional.grid_sample``. ``rate``·n non-target images are warped and relabelled to
the target class. With ``cross_ratio`` > 0 (the paper's "noise mode"), ``cross_ratio``·n_poison
other images are warped with the field plus per-sample random noise and keep their labels, so
the network learns this exact warp rather than warping in general (recorded as
``params["cross_indices"]``; they are not poisoned and not in ``indices``). Defaults ``k=4``,
``s=0.5`` are the paper's; a pixel moves by about ``s/2`` pixels times the field's offset.

Examples:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((100, 1, 8, 8)).astype(np.float32); y = np.arange(100) % 10
    >>> p = wanet(x, y, target=1, rate=0.1, seed=0, strength=1.0)
    >>> t = WarpTrigger(8, 8, k=4, strength=1.0, grid_seed=0)
    >>> bool(np.allclose(t.apply(x[p.indices]), p.x[p.indices], atol=1e-6)), bool((p.y[p.indices] == 1).all())
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bastion.attacks.poisoning.base import ArrayTrigger, PoisonedSet, dirty_label, image_inputs
from bastion.core.errors import InvalidInputError


@dataclass(frozen=True)
class WarpTrigger(ArrayTrigger, methods=("wanet",)):
    """The warping field of ``grid_seed`` on ``height``×``width`` images, ``k`` control points, strength ``s``."""

    height: int
    width: int
    k: int = 4
    strength: float = 0.5
    grid_seed: int = 0
    clip_min: float = 0.0
    clip_max: float = 1.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> WarpTrigger:
        return cls(int(params["height"]), int(params["width"]), int(params["k"]), float(params["strength"]),
                   int(params["grid_seed"]), float(params["clip_min"]), float(params["clip_max"]))

    def grid(self) -> torch.Tensor:
        """The sampling grid ``(1, h, w, 2)`` in grid_sample's [-1, 1] coordinates (x first)."""
        g = torch.Generator().manual_seed(self.grid_seed)
        ins = torch.rand(1, 2, self.k, self.k, generator=g) * 2 - 1
        ins = ins / ins.abs().mean()
        noise = F.interpolate(ins, size=(self.height, self.width), mode="bicubic", align_corners=True)
        noise = noise.permute(0, 2, 3, 1)
        ys = torch.linspace(-1, 1, self.height)
        xs = torch.linspace(-1, 1, self.width)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        identity = torch.stack((gx, gy), dim=2)[None]
        return torch.clamp(identity + self.strength * noise / self.height, -1, 1)

    def warp(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        four = x.reshape(len(x), -1, self.height, self.width)
        out = F.grid_sample(four, grid.expand(len(x), -1, -1, -1) if len(grid) == 1 else grid, align_corners=True)
        return out.clamp(self.clip_min, self.clip_max).reshape(x.shape)

    def apply_numpy(self, a: np.ndarray) -> np.ndarray:
        if a.ndim < 3 or tuple(a.shape[-2:]) != (self.height, self.width):
            raise InvalidInputError(f"the warp field is {self.height}x{self.width}, inputs have shape {a.shape}")
        with torch.no_grad():
            out = self.warp(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)), self.grid())
        return out.numpy()


def wanet(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, target: int, rate: float, seed: int = 0,
    k: int = 4, strength: float = 0.5, cross_ratio: float = 0.0, grid_seed: int | None = None,
    clip_min: float | None = None, clip_max: float | None = None,
) -> PoisonedSet:
    """Warp ``rate``·n non-target images with the fixed field and relabel them ``target`` (see module docstring)."""
    if k < 2 or strength <= 0 or cross_ratio < 0:
        raise InvalidInputError(f"WaNet needs k >= 2, strength > 0 and cross_ratio >= 0 (got {k}, {strength}, "
                                f"{cross_ratio})")
    x, y, lo, hi = image_inputs(x, y, rate, target, clip_min, clip_max)
    t = WarpTrigger(x.shape[-2], x.shape[-1], k, strength, seed if grid_seed is None else grid_seed, lo, hi)
    p = dirty_label(x, y, target, rate, seed, "wanet", t, cross_ratio=cross_ratio)
    n_cross = round(cross_ratio * len(p.indices))
    if n_cross:
        rng = np.random.default_rng(seed + 1)
        rest = np.setdiff1d(np.arange(len(y)), p.indices)
        cross = np.sort(rng.choice(rest, size=min(n_cross, len(rest)), replace=False))
        g = torch.Generator().manual_seed(seed + 1)
        base = t.grid()
        jitter = (torch.rand(len(cross), t.height, t.width, 2, generator=g) * 2 - 1) / t.height
        with torch.no_grad():
            warped = t.warp(torch.from_numpy(np.ascontiguousarray(x[cross], dtype=np.float32)),
                            torch.clamp(base + jitter, -1, 1))
        p.x[cross] = warped.numpy().astype(x.dtype)
        p.params["cross_indices"] = cross.tolist()
    return p
