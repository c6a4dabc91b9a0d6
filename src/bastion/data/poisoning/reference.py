"""The reference model the detectors look through, its training-loss trace, its activations.

Without a model from the user, detection trains the zoo architecture for the data's shape
(``default_architecture``) with the zoo recipe (Adam, lr 1e-3, batch 64) and records every
sample's cross-entropy each epoch as it passes through its minibatch — the loss trace that the
anti-backdoor-learning signal reads, at no extra cost. With a user's model, a short *probe*
of the same recipe is trained for the loss trace only.

Examples:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((64, 1, 8, 8)).astype(np.float32); y = np.arange(64) % 4
    >>> ref = fit_reference(x, y, 4, seed=0, epochs=2)
    >>> ref.loss_trace.shape, representations(ref.module, x).shape
    ((2, 64), (64, 64))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion.attacks.poisoning.surrogate import default_architecture
from bastion.core.model import ModelAdapter


@dataclass
class ReferenceModel:
    """A trained module, its architecture name, and ``loss_trace[e, i]``: sample i's loss in epoch e."""

    module: nn.Module
    architecture: str
    loss_trace: np.ndarray


def fit_reference(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0, epochs: int | None = None,
                  batch_size: int = 64, lr: float = 1e-3) -> ReferenceModel:
    """Train the default architecture for ``x``'s shape, recording per-sample losses (seeded)."""
    from bastion.models.zoo import build_architecture

    arch, default_epochs = default_architecture(tuple(x.shape[1:]))
    n_epochs = default_epochs if epochs is None else int(epochs)
    torch.manual_seed(seed)
    module = build_architecture(arch, tuple(x.shape[1:]), n_classes)
    torch.manual_seed(seed)  # as train_classifier: the same seed gives the zoo recipe's model, bit for bit
    g = torch.Generator().manual_seed(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    opt = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=1e-4 if arch == "tabular-mlp" else 0.0)
    trace = np.zeros((n_epochs, len(xt)), dtype=np.float32)
    module.train()
    for e in range(n_epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), batch_size):
            idx = perm[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            losses = nn.functional.cross_entropy(module(xt[idx]), yt[idx], reduction="none")
            losses.mean().backward()
            opt.step()
            trace[e, idx.numpy()] = losses.detach().numpy()
    module.eval()
    return ReferenceModel(module, arch, trace)


def train_reference_model(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0) -> nn.Module:
    """Train the demo architecture for ``x``'s shape on (possibly poisoned) data."""
    return fit_reference(x, y, n_classes, seed).module


def representations(module: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Penultimate activations: the input of the module's last ``nn.Linear`` (logits if none)."""
    last = [m for m in module.modules() if isinstance(m, nn.Linear)]
    captured: list[torch.Tensor] = []
    handle = None
    if last and not isinstance(module, torch.jit.ScriptModule):
        handle = last[-1].register_forward_hook(lambda _m, inp, _o: captured.append(inp[0].detach()))
    outs = []
    try:
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                out = module(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], dtype=np.float32)))
                outs.append(out)
    finally:
        if handle is not None:
            handle.remove()
    feats = captured if captured else outs
    return torch.cat(feats).reshape(len(x), -1).float().numpy()


def proba_fn(model: nn.Module | ModelAdapter) -> Any:
    """``batch -> class probabilities`` for a torch module or any ``ModelAdapter``."""
    if isinstance(model, nn.Module):
        def f(xb: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return torch.softmax(model(torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32))), 1).numpy()
        return f
    return model.predict_proba
