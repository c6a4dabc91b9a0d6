"""Reference ("shadow") models trained in one vectorised batch with ``torch.func``.

Reference-model membership attacks (LiRA, RMIA) need many models trained like the target on
data the attacker holds. Training them one by one dominates the attack's cost; here all ``M``
models share one ``vmap``-ed forward/backward per step (``torch.func.stack_module_state`` +
``functional_call``). Adam is element-wise, so one optimiser over the stacked parameters
trains every model independently. Any module without batch norm or dropout works.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class ReferenceTrainConfig:
    """How reference models are trained (should mirror the target's recipe where known)."""

    n_models: int = 16
    subset_fraction: float = 0.5
    set_size: int | None = None  # records per model; overrides subset_fraction
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0


def proxy_mlp(input_shape: tuple[int, ...], n_classes: int, hidden: int = 256) -> Callable[[], nn.Module]:
    """Factory of the default proxy architecture: flatten → ``hidden`` → ReLU → classes."""
    d = int(np.prod(input_shape))

    def make() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    return make


def balanced_masks(n: int, m: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``(m, n)`` membership masks: every model gets exactly ``size`` of the ``n`` records, every record
    is in ⌊m·size/n⌋ or ⌈m·size/n⌉ models (Carlini et al.'s balanced "keep" masks, with equal set sizes).

    Balanced masks give each record as many IN (and OUT) models as the budget allows; independent
    random subsets leave some records with very few IN models, which online LiRA then fits badly.
    """
    size = min(max(size, 1), n)
    total = m * size
    per_record = np.full(n, total // n)
    per_record[rng.permutation(n)[: total % n]] += 1
    keep = rng.random((m, n)).argsort(axis=0) < per_record[None, :]  # exact per-record counts
    sizes = keep.sum(axis=1)
    while True:  # move records from the largest set to the smallest one until all sets are equal
        a, b = int(sizes.argmax()), int(sizes.argmin())
        if sizes[a] == sizes[b]:
            return keep
        j = rng.choice(np.flatnonzero(keep[a] & ~keep[b]))
        keep[a, j], keep[b, j] = False, True
        sizes[a] -= 1
        sizes[b] += 1


class ReferenceEnsemble:
    """``M`` independently trained models of one architecture, evaluated in one batched call."""

    def __init__(self, base: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                 masks: np.ndarray) -> None:
        self.base = base
        self.params = params
        self.buffers = buffers
        self.masks = masks  # (M, n_pop) bool: which population points each model trained on

    @property
    def n_models(self) -> int:
        return int(self.masks.shape[0])

    def _forward(self, x: torch.Tensor, per_model: bool) -> torch.Tensor:
        from torch.func import functional_call, vmap

        def f(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (p, b), (xb,))

        return vmap(f, in_dims=(0, 0, 0 if per_model else None))(self.params, self.buffers, x)

    def log_proba(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Log-probabilities of every model on ``x``: shape ``(M, n, k)``."""
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        outs = []
        with torch.no_grad():
            for i in range(0, len(xt), batch_size):
                outs.append(torch.log_softmax(self._forward(xt[i : i + batch_size], per_model=False), dim=-1))
        return torch.cat(outs, dim=1).numpy()


def train_reference_models(
    factory: Callable[[], nn.Module],
    x_pop: np.ndarray,
    y_pop: np.ndarray,
    cfg: ReferenceTrainConfig,
    seed: int = 0,
    progress: Callable[[float, float], None] | None = None,
) -> ReferenceEnsemble:
    """Train ``cfg.n_models`` models, each on ``cfg.set_size`` (else ``subset_fraction``) of the records.

    The training sets come from :func:`balanced_masks`; ``ReferenceEnsemble.masks`` records them.
    """
    from torch.func import stack_module_state

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(x_pop)
    m = cfg.n_models
    size = min(n, max(1, cfg.set_size if cfg.set_size is not None else round(cfg.subset_fraction * n)))
    masks = balanced_masks(n, m, size, rng)
    subsets = np.stack([np.flatnonzero(row) for row in masks])
    models = [factory() for _ in range(m)]
    for mod in models:
        mod.train()
    params, buffers = stack_module_state(models)  # type: ignore[arg-type]
    base = copy.deepcopy(models[0]).to("meta")
    ens = ReferenceEnsemble(base, params, buffers, masks)
    opt = torch.optim.Adam(list(params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xt = torch.from_numpy(np.ascontiguousarray(x_pop, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y_pop, dtype=np.int64))
    sub_t = torch.from_numpy(subsets)
    g = torch.Generator().manual_seed(seed)
    steps = max(1, -(-size // cfg.batch_size))
    total = cfg.epochs * steps
    done = 0
    for _ in range(cfg.epochs):
        order = torch.argsort(torch.rand((m, size), generator=g), dim=1)
        perm = torch.gather(sub_t, 1, order)
        for s in range(steps):
            idx = perm[:, s * cfg.batch_size : (s + 1) * cfg.batch_size]  # (M, B)
            logits = ens._forward(xt[idx], per_model=True)  # (M, B, k)
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), yt[idx].reshape(-1),
                                               reduction="sum") / idx.shape[1]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if progress is not None:
                progress(done, total)
    for p in params.values():
        p.requires_grad_(False)
    return ens
