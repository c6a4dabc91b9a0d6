"""The model pools that ownership proofs are built and calibrated with.

A fingerprint is optimised against *surrogates* (copies derived from the source: distilled on its answers
like an extraction attack does, and fine-tuned from it) and *references* (trained independently on the
true labels); its null distribution comes from further independent models it never saw. Each pool mixes
architectures, so the fingerprint does not merely recognise an architecture.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from bastion.attacks.extraction.knockoff import ExtractionConfig, train_surrogate
from bastion.attacks.inference.reference import proxy_mlp
from bastion.core.errors import QueryBudgetExceeded
from bastion.core.model import ModelAdapter
from bastion.models.zoo import ARCHITECTURES, TrainConfig, build_architecture, train_classifier

Factory = Callable[[], nn.Module]


def architecture_pool(input_shape: tuple[int, ...], n_classes: int) -> list[tuple[str, Factory]]:
    """Architectures for surrogates, references and null models: the demo zoo's for the shape, and MLPs."""
    pool: list[tuple[str, Factory]] = []
    shape = tuple(input_shape)
    zoo = "digits-mlp" if shape == (1, 8, 8) else "mnist-cnn" if shape == (1, 28, 28) else None
    if zoo is not None and zoo in ARCHITECTURES:
        pool.append((zoo, lambda: build_architecture(zoo, shape, n_classes)))
    pool.append(("mlp-256", proxy_mlp(shape, n_classes, hidden=256)))
    pool.append(("mlp-128", proxy_mlp(shape, n_classes, hidden=128)))
    return pool


def train_independent(factory: Factory, x: np.ndarray, y: np.ndarray, epochs: int, seed: int,
                      subset: float = 0.8) -> nn.Module:
    """A model trained from scratch on the true labels of a random ``subset`` of the data (seeded)."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))[: max(1, int(subset * len(x)))]
    torch.manual_seed(seed)
    net = factory()
    return train_classifier(net, x[idx], y[idx], TrainConfig(epochs=epochs), seed=seed)


def distill_copy(factory: Factory, x: np.ndarray, source_proba: np.ndarray, epochs: int, seed: int) -> nn.Module:
    """A copy trained on the source's answers (the learning-based extraction of ``attack extraction``)."""
    cfg = ExtractionConfig(epochs=epochs, min_steps=300, seed=seed)
    loss = "logit" if np.all(source_proba > 0) else "soft"
    return train_surrogate(factory, x, source_proba, loss, cfg)


def fine_tuned_copy(source: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int,
                    lr: float = 3e-4) -> nn.Module | None:
    """The source fine-tuned on (a subset of) labelled data; ``None`` when the module cannot be copied."""
    try:
        net = copy.deepcopy(source)
    except Exception:  # some scripted/exported modules refuse deepcopy; the pool goes on without
        return None
    for p in net.parameters():
        p.requires_grad_(True)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))[: max(1, len(x) // 2)]
    return train_classifier(net, x[idx], y[idx], TrainConfig(epochs=epochs, lr=lr), seed=seed)


def prune_copy(source: nn.Module, amount: float) -> nn.Module:
    """The source with the ``amount`` smallest-magnitude weights of every layer set to zero (global per layer)."""
    net = copy.deepcopy(source)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() < 2 or not name.endswith("weight"):
                continue
            k = int(amount * p.numel())
            if k < 1:
                continue
            thresh = p.abs().flatten().kthvalue(k).values
            p.mul_((p.abs() > thresh).to(p.dtype))
    net.eval()
    return net


def query_labels(model: ModelAdapter, x: np.ndarray) -> tuple[np.ndarray, bool]:
    """The model's labels on ``x`` in batches of its ``max_batch``, never asking for more than a budgeted
    model's ``remaining`` queries; stops at its budget (or a ``QueryBudgetExceeded``) and returns the labels
    received so far and whether it stopped early."""
    step = max(1, int(model.input_spec.max_batch))
    got: list[np.ndarray] = []
    stopped = False
    i = 0
    while i < len(x):
        remaining = getattr(model, "remaining", None)
        m = min(step, len(x) - i) if not isinstance(remaining, int) else min(step, len(x) - i, remaining)
        if m < 1:
            stopped = True
            break
        try:
            got.append(np.asarray(model.predict_proba(x[i : i + m])).argmax(1))
        except QueryBudgetExceeded:
            stopped = True
            break
        i += m
    return (np.concatenate(got) if got else np.zeros(0, dtype=np.int64)), stopped
