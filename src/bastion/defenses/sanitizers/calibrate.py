"""Detector calibration and evaluation helpers shared by the sanitisers."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def detection_scores(detector: nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """``detector.detection_score`` over ``x`` in batches, as numpy."""
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(detector.detection_score(torch.from_numpy(np.asarray(x[i : i + batch], dtype=np.float32))))  # type: ignore[operator]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


def calibrate_threshold(detector: nn.Module, x_clean: np.ndarray, fpr: float = 0.05) -> float:
    """Set and return ``detector.threshold`` so that a fraction ``fpr`` of clean inputs is flagged."""
    scores = detection_scores(detector, x_clean)
    thr = float(np.quantile(scores, 1.0 - fpr)) if len(scores) else float("inf")
    detector.threshold = thr  # type: ignore[assignment]
    return thr


def detection_auc(scores_clean: np.ndarray, scores_adv: np.ndarray) -> float:
    """ROC AUC of separating adversarial (positive) from clean scores."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(scores_clean)), np.ones(len(scores_adv))]
    return float(roc_auc_score(y, np.r_[scores_clean, scores_adv]))
