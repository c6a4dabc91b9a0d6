"""LOSS (Yeom et al. 2018) and confidence (Salem et al. 2019) thresholds: one query per record.

``loss``: score = log p_y(x) (members have lower loss); ``confidence``: score = max_c p_c(x).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from bastion.attacks.inference.membership.base import Scored, proba
from bastion.core.model import ModelAdapter


@dataclass(frozen=True)
class ThresholdConfig:
    statistic: Literal["loss", "confidence"] = "loss"


def threshold_scores(model: ModelAdapter, x: np.ndarray, y: np.ndarray, cfg: ThresholdConfig) -> Scored:
    p = proba(model, x)
    if cfg.statistic == "loss":
        scores = np.log(np.clip(p[np.arange(len(y)), y], 1e-300, 1.0))
    else:
        scores = p.max(axis=1)
    return Scored(scores, len(x))
