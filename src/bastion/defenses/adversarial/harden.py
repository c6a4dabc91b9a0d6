"""One call from data to a saved robust model: what ``bastion harden adversarial-training`` runs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.model import InputSpec
from bastion.defenses.adversarial.config import AdversarialTrainingConfig
from bastion.defenses.adversarial.record import TrainingRecord
from bastion.defenses.adversarial.trainer import EpochCallback, adversarial_train, robust_accuracy_pgd


@dataclass
class TrainingData:
    """Arrays and facts the trainer needs (from ``--demo`` or ``--data``)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    input_shape: tuple[int, ...]
    n_classes: int
    clip_min: float | None
    clip_max: float | None
    class_names: list[str]
    source: str


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
                            d.clip_min if clip_min is None else clip_min,
                            d.clip_max if clip_max is None else clip_max, d.class_names, f"builtin:{demo}")
    from bastion.datasets.files import read_data_file

    f = read_data_file(str(data), label=label)
    s = f.splits
    if s.x_train is None or s.y_train is None:
        if s.x_test is None or s.y_test is None:
            raise InvalidInputError(f"{data}: no labelled samples to train on")
        s.x_train, s.y_train, s.x_test, s.y_test = s.x_test, s.y_test, None, None
    n_classes = max(f.max_label + 1, len(f.class_names), 2)
    return TrainingData(np.asarray(s.x_train, np.float32), np.asarray(s.y_train, np.int64), s.x_test, s.y_test,
                        f.sample_shape, n_classes, clip_min, clip_max, f.class_names, str(data))


def build_model(spec: str, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """A fresh module from a zoo architecture name or ``module:Class`` (imported only when given).

    ``module:Class`` is constructed as ``Class()``, else ``Class(input_shape, n_classes)``.
    """
    from bastion.models.zoo import ARCHITECTURES, build_architecture

    if spec in ARCHITECTURES:
        return build_architecture(spec, input_shape, n_classes)
    if ":" not in spec:
        raise ConfigError(f"--model-spec {spec!r}: use a zoo architecture ({', '.join(ARCHITECTURES)}) or module:Class")
    mod_name, _, cls_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(mod_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--model-spec {spec!r}: cannot import {cls_name} from {mod_name}: {exc}") from exc
    try:
        module = cls()
    except TypeError:
        module = cls(input_shape, n_classes)
    if not isinstance(module, nn.Module):
        raise ConfigError(f"--model-spec {spec!r} built a {type(module).__name__}, not a torch.nn.Module")
    return module


def harden_adversarial(spec: str, data: TrainingData, cfg: AdversarialTrainingConfig, out: str | Path,
                       on_epoch: EpochCallback | None = None) -> tuple[TrainingRecord, dict[str, Path]]:
    """Train ``spec`` adversarially on ``data`` and save TorchScript + sidecar + training record at ``out``."""
    import torch

    from bastion.defenses.sanitizers.export import defense_block, save_model

    torch.manual_seed(cfg.seed)  # seeded initial weights: the same command gives the same model
    module = build_model(spec, data.input_shape, data.n_classes)
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
