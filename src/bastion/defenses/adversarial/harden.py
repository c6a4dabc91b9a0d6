"""One call from data to a saved robust model: what ``bastion harden adversarial-training`` runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.model import InputSpec
from bastion.defenses.adversarial.config import AdversarialTrainingConfig
from bastion.defenses.adversarial.record import TrainingRecord
from bastion.defenses.adversarial.trainer import EpochCallback, adversarial_train, robust_accuracy_pgd
from bastion.defenses.specs import TrainingData, resolve_model_spec


def load_training_data(demo: str | None, data: str | Path | None, label: str | None = None,
                       clip_min: float | None = None, clip_max: float | None = None) -> TrainingData:
    """Training arrays from a built-in demo data set or a data file (npz / CSV / Parquet)."""
    if (demo is None) == (data is None):
        raise ConfigError("give exactly one of --demo NAME or --data FILE")
    if demo is not None:
        from bastion.datasets import load_demo_data

        d = load_demo_data(demo)
        s = d.splits
        assert s.x_train is not None and s.y_train is not None
        return TrainingData(s.x_train, s.y_train, s.x_test, s.y_test, d.input_shape, len(d.class_names),
                            f"builtin:{demo}", d.clip_min if clip_min is None else clip_min,
                            d.clip_max if clip_max is None else clip_max, d.class_names)
    from bastion.datasets.files import read_data_file

    f = read_data_file(str(data), label=label)
    s = f.splits
    if s.x_train is None or s.y_train is None:
        if s.x_test is None or s.y_test is None:
            raise InvalidInputError(f"{data}: no labelled samples to train on")
        s.x_train, s.y_train, s.x_test, s.y_test = s.x_test, s.y_test, None, None
    n_classes = max(f.max_label + 1, len(f.class_names), 2)
    return TrainingData(np.asarray(s.x_train, np.float32), np.asarray(s.y_train, np.int64), s.x_test, s.y_test,
                        f.sample_shape, n_classes, str(data), clip_min, clip_max, f.class_names)


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
    spec_obj = InputSpec(shape=tuple(data.input_shape), clip_min=data.clip_min, clip_max=data.clip_max)
    params: dict[str, Any] = {"method": cfg.method, "eps": cfg.eps, "norm": "linf", "epochs_run": len(record.epochs),
                              "best_epoch": record.best_epoch}
    written = save_model(module, out, spec_obj, data.n_classes, defense=defense_block("adversarial_training", params),
                         class_names=data.class_names, record={**record.to_dict(), "data": data.source})
    return record, written
