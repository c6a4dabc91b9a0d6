"""One call from data to a saved robust model: what ``bastion harden adversarial-training`` runs.

``load_training_data`` (re-exported from :mod:`bastion.defenses.specs`) reads the data and resolves its range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bastion.core.model import InputSpec
from bastion.defenses.adversarial.config import AdversarialTrainingConfig
from bastion.defenses.adversarial.record import TrainingRecord
from bastion.defenses.adversarial.trainer import EpochCallback, adversarial_train, robust_accuracy_pgd
from bastion.defenses.specs import TrainingData, load_training_data, resolve_model_spec

__all__ = ["harden_adversarial", "load_training_data"]


def harden_adversarial(spec: str, data: TrainingData, cfg: AdversarialTrainingConfig, out: str | Path,
                       on_epoch: EpochCallback | None = None) -> tuple[TrainingRecord, dict[str, Path]]:
    """Train ``spec`` adversarially on ``data`` and save TorchScript + sidecar + training record at ``out``."""
    import torch

    from bastion.defenses.sanitizers.export import defense_block, save_model

    torch.manual_seed(cfg.seed)  # seeded initial weights: the same command gives the same model
    module = resolve_model_spec(spec, data.input_shape, data.n_classes)
    module, record = adversarial_train(module, data.x_train, data.y_train, cfg, on_epoch=on_epoch, architecture=spec)
    if data.x_test is not None and data.y_test is not None and len(data.x_test):
        xt, yt = torch.from_numpy(np.asarray(data.x_test[:500], np.float32)), torch.from_numpy(np.asarray(data.y_test[:500], np.int64))
        with torch.no_grad():
            clean = float((module(xt).argmax(1) == yt).float().mean())
        record.extra["test"] = {"samples": len(xt), "clean_accuracy": clean,
                                "robust_accuracy_pgd20": robust_accuracy_pgd(module, xt, yt, cfg, 20, seed=cfg.seed),
                                "eps": cfg.eps}
    spec_obj = InputSpec(shape=tuple(data.input_shape), clip_min=data.clip_min, clip_max=data.clip_max,
                         range_source=data.range_source)
    params: dict[str, Any] = {"method": cfg.method, "eps": cfg.eps, "norm": "linf", "epochs_run": len(record.epochs),
                              "best_epoch": record.best_epoch}
    written = save_model(module, out, spec_obj, data.n_classes, defense=defense_block("adversarial_training", params),
                         class_names=data.class_names, record={**record.to_dict(), "data": data.source})
    return record, written
