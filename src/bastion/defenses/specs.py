"""Resolve ``--model-spec`` and ``--data`` for training commands.

A model spec is a zoo architecture name (``digits-mlp``, ``mnist-cnn``, ``tabular-mlp``),
``softmax-regression`` (one linear layer, DP-friendly), or ``module:Class`` — a user module that
is imported **only** because the user named it explicitly; the class is built with
``Class(n_classes=k)`` when it accepts that argument, else ``Class()``, else
``Class(input_shape, n_classes)``. Used by ``harden dp`` and ``harden adversarial-training``.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from bastion.core.errors import ConfigError, InvalidInputError


def resolve_model_spec(spec: str, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """A fresh, untrained module for ``spec``."""
    from bastion.models.zoo import ARCHITECTURES, build_architecture

    if spec == "softmax-regression":
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), n_classes))
    if spec in ARCHITECTURES:
        return build_architecture(spec, input_shape, n_classes)
    if ":" not in spec:
        raise ConfigError(f"unknown --model-spec {spec!r}; use softmax-regression, {', '.join(ARCHITECTURES)} "
                          "or module:Class")
    mod_name, _, cls_name = spec.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ConfigError(f"--model-spec {spec!r}: cannot import module {mod_name!r}: {exc}") from exc
    cls = getattr(mod, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"--model-spec {spec!r}: {cls_name!r} is not a torch.nn.Module class in {mod_name}")
    if "n_classes" in inspect.signature(cls).parameters:
        return cls(n_classes=n_classes)
    try:
        return cls()
    except TypeError:
        return cls(input_shape, n_classes)


@dataclass
class TrainingData:
    """Arrays and facts a training command needs (from ``--demo`` or ``--data``)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    input_shape: tuple[int, ...]
    n_classes: int
    source: str
    clip_min: float | None = None
    clip_max: float | None = None
    class_names: list[str] = field(default_factory=list)


def load_training_data(data: str | None) -> TrainingData:
    """``builtin:NAME`` (digits, mnist, breast-cancer, wine) or an ``.npz``/table via ``load_data``."""
    if data is None:
        raise ConfigError("--data is required: an .npz with x_train/y_train, or builtin:digits")
    if data.startswith("builtin:"):
        from bastion.datasets import load_demo_data

        dd = load_demo_data(data.split(":", 1)[1])
        s = dd.splits
        assert s.x_train is not None and s.y_train is not None
        return TrainingData(s.x_train, s.y_train, s.x_test, s.y_test, dd.input_shape, len(dd.class_names), data,
                            dd.clip_min, dd.clip_max, dd.class_names)
    from bastion.datasets.files import load_data

    path = Path(data)
    s = load_data(path)
    if s.x_train is None or s.y_train is None:
        raise InvalidInputError(f"{path}: DP training needs x_train/y_train (or x/y) in the data")
    k = int(max(s.y_train.max(), -1 if s.y_test is None else s.y_test.max())) + 1
    return TrainingData(s.x_train, s.y_train, s.x_test, s.y_test, tuple(s.x_train.shape[1:]), max(k, 2), str(path))
