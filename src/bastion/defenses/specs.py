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

from bastion.core.domain import InputRange, resolve_range
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
    """Arrays and facts a training command needs (from a demo data set or a data file).

    ``clip_min``/``clip_max`` is the valid input range, resolved by :mod:`bastion.core.domain` (flags,
    else the demo's range, else inferred from the training data); ``range_source`` says which.
    """

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
    range_source: str = "unknown"

    def input_range(self) -> InputRange:
        return InputRange(self.clip_min, self.clip_max, self.range_source)


def load_training_data(data: str | Path | None, demo: str | None = None, label: str | None = None,
                       clip_min: float | None = None, clip_max: float | None = None) -> TrainingData:
    """Training arrays from ``demo``/``demo:NAME``/``builtin:NAME`` (digits, mnist, breast-cancer, wine) or
    a data file (npz with x_train/y_train or x/y, CSV/Parquet with ``label``); the input range resolved
    flag > demo > inferred from the training data."""
    if demo is not None and data is not None:
        raise ConfigError("give exactly one of --demo NAME or --data FILE")
    if demo is None and data is None:
        raise ConfigError("--data is required: an .npz with x_train/y_train, or demo:NAME (e.g. demo:digits)")
    from bastion.datasets import load
    from bastion.datasets.files import demo_name

    text = str(data) if data is not None else ""
    name = demo if demo is not None else demo_name(text)
    if name is not None:
        from bastion.datasets import load_demo_data

        dd = load_demo_data(name)
        sp = dd.splits
        assert sp.x_train is not None and sp.y_train is not None
        rng = resolve_range(flag=(clip_min, clip_max), model=(dd.clip_min, dd.clip_max))
        return TrainingData(sp.x_train, sp.y_train, sp.x_test, sp.y_test, dd.input_shape, len(dd.class_names),
                            f"demo:{name}", rng.clip_min, rng.clip_max, dd.class_names,
                            rng.source if rng.source != "unknown" else "model")
    f = load(text, label=label)
    s = f.splits
    if s.x_train is None or s.y_train is None:
        if s.x_test is None or s.y_test is None:
            raise InvalidInputError(f"{data}: no labelled samples to train on (x_train/y_train or x/y)")
        s.x_train, s.y_train, s.x_test, s.y_test = s.x_test, s.y_test, None, None
    rng = resolve_range(flag=(clip_min, clip_max), data=s.x_train, image=len(f.sample_shape) >= 2)
    n_classes = max(f.max_label + 1, len(f.class_names), 2)
    return TrainingData(np.asarray(s.x_train, np.float32), np.asarray(s.y_train, np.int64), s.x_test, s.y_test,
                        f.sample_shape, n_classes, text, rng.clip_min, rng.clip_max, f.class_names, rng.source)
