"""The attacker's surrogate model, and the default architecture Bastion trains for a data shape.

``default_architecture`` is shared with poisoning detection (``bastion.data.poisoning``), which
trains the same zoo architecture as its reference model.

Examples:
    >>> default_architecture((1, 28, 28)), default_architecture((1, 8, 8)), default_architecture((30,))
    (('mnist-cnn', 8), ('digits-mlp', 40), ('tabular-mlp', 60))
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def default_architecture(input_shape: tuple[int, ...]) -> tuple[str, int]:
    """The zoo architecture and epochs Bastion trains for data of this per-sample shape."""
    if tuple(input_shape) == (1, 28, 28):
        return "mnist-cnn", 8
    if int(np.prod(input_shape)) == 64 and len(input_shape) == 3:
        return "digits-mlp", 40
    return "tabular-mlp", 60


def train_surrogate(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0) -> nn.Module:
    """The default architecture for ``x``'s shape, trained with the zoo recipe (seeded)."""
    from bastion.models.zoo import TrainConfig, build_architecture, train_classifier

    arch, epochs = default_architecture(tuple(x.shape[1:]))
    torch.manual_seed(seed)  # the initial weights too: the same seed gives the same model in every process
    module = build_architecture(arch, tuple(x.shape[1:]), n_classes)
    cfg = TrainConfig(epochs=epochs, weight_decay=1e-4 if arch == "tabular-mlp" else 0.0)
    return train_classifier(module, x, y, cfg, seed=seed)
