"""Build, calibrate and save a sanitiser/detector wrapper around a loaded torch model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import nn

from bastion.core.errors import InvalidInputError
from bastion.core.model import InputSpec
from bastion.defenses.sanitizers.calibrate import calibrate_threshold
from bastion.defenses.sanitizers.export import defense_block, save_model
from bastion.defenses.sanitizers.mahalanobis import MahalanobisDetector
from bastion.defenses.sanitizers.smoothing import RandomizedSmoothing
from bastion.defenses.sanitizers.squeeze import FeatureSqueezing

SanitizerKind = Literal["feature-squeezing", "mahalanobis"]


def build_sanitizer(kind: SanitizerKind, module: nn.Module, spec: InputSpec, x: np.ndarray, y: np.ndarray,
                    n_classes: int, bit_depth: int = 1, median_kernel: int = 2, fpr: float = 0.05) -> tuple[nn.Module, dict[str, Any]]:
    """A calibrated detector wrapper (threshold at ``fpr`` false positives on clean ``x``) and its params."""
    if kind == "feature-squeezing":
        lo = 0.0 if spec.clip_min is None else spec.clip_min
        hi = 1.0 if spec.clip_max is None else spec.clip_max
        if spec.clip_min is None or spec.clip_max is None:
            raise InvalidInputError("feature squeezing needs a bounded input range: pass --clip-min/--clip-max")
        if len(spec.shape) < 2:
            median_kernel = 0
        wrapper: nn.Module = FeatureSqueezing(module, bit_depth, median_kernel, lo, hi)
        params: dict[str, Any] = {"bit_depth": bit_depth, "median_kernel": median_kernel}
    elif kind == "mahalanobis":
        wrapper = MahalanobisDetector.fit(module, x, y, n_classes)
        params = {"layer": "penultimate", "shared_covariance": True}
    else:
        raise InvalidInputError(f"unknown sanitizer {kind!r}; choose feature-squeezing or mahalanobis")
    params["threshold"] = calibrate_threshold(wrapper, x, fpr=fpr)
    params["calibration"] = {"fpr": fpr, "samples": len(x)}
    return wrapper, params


def save_wrapper(wrapper: nn.Module, out: str | Path, spec: InputSpec, n_classes: int,
                 params: dict[str, Any], class_names: list[str] | None = None) -> dict[str, Path]:
    name = str(wrapper.bastion_defense)
    return save_model(wrapper, out, spec, n_classes, defense=defense_block(name, params), class_names=class_names)


def build_smoothing(module: nn.Module, sigma: float, n_samples: int) -> tuple[RandomizedSmoothing, dict[str, Any]]:
    if sigma <= 0 or n_samples < 1:
        raise InvalidInputError(f"need sigma > 0 and samples >= 1 (got {sigma}, {n_samples})")
    return RandomizedSmoothing(module, sigma, n_samples), {"sigma": sigma, "n_samples": n_samples, "norm": "l2"}
