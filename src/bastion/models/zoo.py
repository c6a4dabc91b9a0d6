"""The demo model zoo: small architectures trained on first use, cached under ``$BASTION_HOME``.

``demo_target(name)`` returns a ready ``Target`` (model + data + metadata + fingerprints).
Training is seeded and deterministic on CPU; the TorchScript file is cached in
``$BASTION_HOME/zoo/`` so later runs load in milliseconds.

Architectures are also available by name for ``--model-spec`` (``build_architecture``):
``digits-mlp``, ``mnist-cnn``, ``mnist-cnn-wide`` / ``mnist-cnn-deep`` (more capacity, for adversarial
training), ``tabular-mlp``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bastion.core.errors import InvalidInputError
from bastion.core.model import InputSpec
from bastion.core.paths import atomic_write_bytes, atomic_write_text, bastion_home, sha256_file
from bastion.core.target import Target, TargetMetadata
from bastion.datasets.builtin import DemoData, demo_data_digest, load_demo_data
from bastion.models.adapters import SklearnAdapter, TorchAdapter

ZOO_VERSION = "2"  # 2: initial weights seeded too (v1 demo models differed from process to process)
DEMO_TARGETS = ("digits", "mnist", "breast-cancer", "breast-cancer-sklearn")


class DigitsMLP(nn.Module):
    """64 → 128 → 64 → 10 MLP on 8×8 digits."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MnistCNN(nn.Module):
    """Two conv blocks and a small head for 28×28 MNIST (16/32 channels, 128-unit head by default)."""

    def __init__(self, n_classes: int = 10, channels: tuple[int, int] = (16, 32), hidden: int = 128) -> None:
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c2 * 7 * 7, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MnistCNNWide(MnistCNN):
    """Wider CNN for robust (adversarial) training on 28×28 images: 32/64 channels, 256-unit head."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__(n_classes, channels=(32, 64), hidden=256)


class MnistCNNDeep(nn.Module):
    """Four 3×3 conv layers (32, 32, 64, 64) and a 200-unit head, for robust training on 28×28 images."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 200), nn.ReLU(), nn.Linear(200, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class TabularMLP(nn.Module):
    """d → 64 → 32 → k MLP for standardised tabular features."""

    def __init__(self, n_features: int = 30, n_classes: int = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


ARCHITECTURES = {"digits-mlp": DigitsMLP, "mnist-cnn": MnistCNN, "mnist-cnn-wide": MnistCNNWide,
                 "mnist-cnn-deep": MnistCNNDeep, "tabular-mlp": TabularMLP}


def build_architecture(name: str, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """A fresh, untrained module by zoo name (see ``ARCHITECTURES``)."""
    if name == "tabular-mlp":
        return TabularMLP(int(np.prod(input_shape)), n_classes)
    if name in ("digits-mlp", "mnist-cnn", "mnist-cnn-wide", "mnist-cnn-deep"):
        return ARCHITECTURES[name](n_classes)
    raise InvalidInputError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0


DEMO_RECIPES: dict[str, tuple[str, str, TrainConfig]] = {
    "digits": ("digits", "digits-mlp", TrainConfig(epochs=40)),
    "mnist": ("mnist", "mnist-cnn", TrainConfig(epochs=8)),
    "breast-cancer": ("breast-cancer", "tabular-mlp", TrainConfig(epochs=60, weight_decay=1e-4)),
}


def train_classifier(
    module: nn.Module, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, seed: int = 0
) -> nn.Module:
    """Plain cross-entropy training with Adam, seeded."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(np.asarray(x, dtype=np.float32)), torch.from_numpy(np.asarray(y, dtype=np.int64))
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    module.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(module(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    module.eval()
    return module


def zoo_dir() -> Path:
    d = bastion_home() / "zoo"
    d.mkdir(parents=True, exist_ok=True)
    return d


def demo_model_path(name: str, seed: int = 0) -> Path:
    """Path of the cached TorchScript (or skops) file of a demo model; trains it on first use."""
    if name == "breast-cancer-sklearn":
        return _demo_sklearn_path(seed)
    if name not in DEMO_RECIPES:
        raise InvalidInputError(f"unknown demo {name!r}; choose one of {', '.join(DEMO_TARGETS)}")
    path = zoo_dir() / f"{name}-v{ZOO_VERSION}-s{seed}.pt"
    if path.exists():
        _write_sidecar(name, path)
        return path
    data_name, arch, cfg = DEMO_RECIPES[name]
    data = load_demo_data(data_name, seed=0)
    assert data.splits.x_train is not None and data.splits.y_train is not None
    torch.manual_seed(seed)  # the initial weights too: the same seed gives the same demo model in every process
    module = build_architecture(arch, data.input_shape, len(data.class_names))
    train_classifier(module, data.splits.x_train, data.splits.y_train, cfg, seed=seed)
    scripted = torch.jit.script(module)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.pt")
    torch.jit.save(scripted, str(tmp))
    tmp.replace(path)
    _write_sidecar(name, path)
    return path


def _write_sidecar(name: str, path: Path) -> None:
    """``MODEL.bastion.json`` beside a demo model, so the cached file can be pushed or assessed as it is."""
    side = path.with_name(path.name + ".bastion.json")
    if side.exists():
        return
    data = load_demo_data(DEMO_RECIPES[name][0], seed=0)
    body = {"input_shape": list(data.input_shape), "dtype": "float32", "clip_min": data.clip_min,
            "clip_max": data.clip_max, "n_classes": len(data.class_names), "class_names": data.class_names}
    atomic_write_text(side, json.dumps(body, indent=2) + "\n")


def _demo_sklearn_path(seed: int) -> Path:
    path = zoo_dir() / f"breast-cancer-sklearn-v{ZOO_VERSION}-s{seed}.skops"
    if path.exists():
        return path
    import skops.io as sio
    from sklearn.ensemble import GradientBoostingClassifier

    data = load_demo_data("breast-cancer", seed=0)
    est = GradientBoostingClassifier(random_state=seed).fit(data.splits.x_train, data.splits.y_train)
    atomic_write_bytes(path, sio.dumps(est), mode=0o644)
    return path


def demo_target(name: str, seed: int = 0) -> Target:
    """A ready-to-assess demo ``Target`` (trains and caches the model on first use)."""
    data_name = "breast-cancer" if name == "breast-cancer-sklearn" else DEMO_RECIPES.get(name, (name,))[0]
    if name not in DEMO_TARGETS:
        raise InvalidInputError(f"unknown demo {name!r}; choose one of {', '.join(DEMO_TARGETS)}")
    data: DemoData = load_demo_data(data_name, seed=0)
    spec = InputSpec(shape=data.input_shape, clip_min=data.clip_min, clip_max=data.clip_max, range_source="model")
    path = demo_model_path(name, seed)
    model: TorchAdapter | SklearnAdapter
    if path.suffix == ".skops":
        import skops.io as sio

        est = sio.loads(path.read_bytes(), trusted=sio.get_untrusted_types(data=path.read_bytes()))
        model = SklearnAdapter(est, spec)
        fmt = "skops"
    else:
        module = torch.jit.load(str(path))
        model = TorchAdapter(module, spec, n_classes=len(data.class_names))
        fmt = "torchscript"
    meta = TargetMetadata(
        data_kind=data.data_kind,
        class_names=data.class_names,
        feature_names=data.feature_names,
        description=f"Bastion demo model '{name}' trained on the built-in {data_name} data",
    )
    fingerprints = {"model": sha256_file(path), "data": demo_data_digest(data)}
    return Target(
        name=f"demo:{name}", model=model, data=data.splits, metadata=meta,
        fingerprints=fingerprints, model_format=fmt, model_path=str(path), data_path=f"demo:{data_name}",
    )


