"""Shared step of the detector benches (``feature_squeezing.py``, ``hidden_feature_detectors.py``): one
``evaluate_defense`` run at one eps, timed (wall, CPU, load) and printed."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from bastion.defenses.sanitizers import defense_block
from bastion.defenses.sanitizers.evaluate import AttackBudget, evaluate_defense


def timed_evaluation(detector: Any, name: str, x: np.ndarray, y: np.ndarray, eps: float) -> dict[str, Any]:
    """PGD-20 / Square-300 evaluation of ``detector`` (registered as ``name``) on ``x, y`` at ``eps``,
    seed 0, inputs in [0, 1]; adds ``wall_s``, ``cpu_s`` and ``load`` and prints the row."""
    w0, c0 = time.perf_counter(), time.process_time()
    m = evaluate_defense(detector, defense_block(name, {}), x, y, eps, 0.0, 1.0,
                         AttackBudget(steps=20, square_queries=300), seed=0)
    m["wall_s"], m["cpu_s"], m["load"] = time.perf_counter() - w0, time.process_time() - c0, os.getloadavg()[0]
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in m.items() if k != "params"}, flush=True)
    return m
