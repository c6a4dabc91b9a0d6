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
from bastion.defenses.sanitizers.lid import LIDDetector
from bastion.defenses.sanitizers.mahalanobis import MahalanobisDetector
from bastion.defenses.sanitizers.smoothing import RandomizedSmoothing
from bastion.defenses.sanitizers.squeeze import FeatureSqueezing

SanitizerKind = Literal["feature-squeezing", "mahalanobis", "lid"]


def build_sanitizer(kind: SanitizerKind, module: nn.Module, spec: InputSpec, x: np.ndarray, y: np.ndarray,
                    n_classes: int, bit_depth: int = 1, median_kernel: int = 2, fpr: float = 0.05,
                    eps: float | None = None, seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """A calibrated detector wrapper (threshold at ``fpr`` false positives on clean ``x``) and its params.

    ``lid`` fits on the first part of ``x`` (reference set + logistic regression against PGD examples
    at ``eps``, default 10% of the input range) and calibrates its threshold on the rest.
    """
    x_cal = x
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
    elif kind == "lid":
        if eps is None:
            lo, hi = (spec.clip_min, spec.clip_max) if spec.clip_min is not None and spec.clip_max is not None \
                else (float(np.min(x)), float(np.max(x)))
            eps = 0.1 * (hi - lo)
        n_fit = min(1000, (len(x) * 2) // 3)
        lid = LIDDetector.fit(module, x[:n_fit], y[:n_fit], eps, spec.clip_min, spec.clip_max, seed=seed)
        wrapper, x_cal = lid, x[n_fit:]
        params = {"layers": len(lid.stages), "k": lid.k, "n_reference": int(lid.references[0].shape[0]),
                  "fit_eps": eps, "fit_clean": lid.n_fit_clean, "fit_adversarial": lid.n_fit_adversarial,
                  "fit_attack": "pgd-10", "reference": "fixed clean set (batch-independent)"}
    else:
        raise InvalidInputError(f"unknown sanitizer {kind!r}; choose feature-squeezing, mahalanobis or lid")
    params["threshold"] = calibrate_threshold(wrapper, x_cal, fpr=fpr)
    params["calibration"] = {"fpr": fpr, "samples": len(x_cal)}
    return wrapper, params


def save_wrapper(wrapper: nn.Module, out: str | Path, spec: InputSpec, n_classes: int,
                 params: dict[str, Any], class_names: list[str] | None = None) -> dict[str, Path]:
    name = str(wrapper.bastion_defense)
    return save_model(wrapper, out, spec, n_classes, defense=defense_block(name, params), class_names=class_names)


def build_smoothing(module: nn.Module, sigma: float, n_samples: int) -> tuple[RandomizedSmoothing, dict[str, Any]]:
    if sigma <= 0 or n_samples < 1:
        raise InvalidInputError(f"need sigma > 0 and samples >= 1 (got {sigma}, {n_samples})")
    return RandomizedSmoothing(module, sigma, n_samples), {"sigma": sigma, "n_samples": n_samples, "norm": "l2"}
