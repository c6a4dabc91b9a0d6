"""Reference ("shadow") models trained in one vectorised batch with ``torch.func``.

Reference-model membership attacks (LiRA, RMIA) need many models trained like the target on
data the attacker holds. Training them one by one dominates the attack's cost; here all ``M``
models share one ``vmap``-ed forward/backward per step (``functional_call`` over stacked
weights). :class:`StackedOptimizer` is SGD with momentum, Adam or AdamW, element-wise with a
learning rate, weight decay and optimiser *per model*, so one batch can also train candidate
recipes side by side (``bastion.attacks.inference.recipe``). The shared structure is an
:class:`Architecture`: a proxy MLP, a zoo architecture, or a re-initialised clone of the target
(``bastion.attacks.inference.clone``).

Examples:
    >>> import numpy as np
    >>> x, y = np.random.default_rng(0).normal(size=(40, 4)).astype("float32"), np.arange(40) % 2
    >>> ens = train_reference_models(proxy_mlp((4,), 2, hidden=8), x, y, ReferenceTrainConfig(n_models=3, epochs=2))
    >>> ens.log_proba(x[:5]).shape
    (3, 5, 2)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import nn

OptimizerName = Literal["adam", "adamw", "sgd"]
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
SGD_MOMENTUM = 0.9
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass(frozen=True)
class Recipe:
    """How one reference model is trained (cross-entropy, shuffled mini-batches)."""

    optimizer: OptimizerName = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0  # L2 for sgd/adam, decoupled for adamw
    epochs: int = 30
    batch_size: int = 64

    def __post_init__(self) -> None:
        from bastion.core.errors import ConfigError

        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimiser {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"invalid reference recipe {self}: lr > 0, weight_decay >= 0, epochs >= 1, "
                              "batch_size >= 1 are needed")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReferenceTrainConfig:
    """How many reference models, on how many records each, with which recipe."""

    n_models: int = 16
    subset_fraction: float = 0.5
    set_size: int | None = None  # records per model; overrides subset_fraction
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: OptimizerName = "adam"

    @property
    def recipe(self) -> Recipe:
        return Recipe(self.optimizer, self.lr, self.weight_decay, self.epochs, self.batch_size)

    def records_per_model(self, n: int) -> int:
        return min(n, max(1, self.set_size if self.set_size is not None else round(self.subset_fraction * n)))


@dataclass
class Architecture:
    """What reference models share: a module run through ``functional_call`` and fresh weights for each.

    ``init_state()`` returns a new set of weights (every name ``functional_call`` needs: trainable
    tensors and buffers) drawn from torch's global RNG; ``trainable`` names the ones training updates.
    """

    module: nn.Module
    trainable: tuple[str, ...]
    init_state: Callable[[], dict[str, torch.Tensor]]
    name: str
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_factory(cls, factory: Callable[[], nn.Module], name: str = "factory") -> Architecture:
        """Every model a new ``factory()`` (its own initialisation)."""
        base = factory()

        def init() -> dict[str, torch.Tensor]:
            m = factory()
            return {k: v.detach().clone() for k, v in (*m.named_parameters(), *m.named_buffers())}

        return cls(base, tuple(n for n, _ in base.named_parameters()), init, name)


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


def logit_confidence(logp: np.ndarray, y: np.ndarray) -> np.ndarray:
    """LiRA's statistic φ = log p_y − log(1 − p_y), stably from log-probabilities of shape ``(..., n, k)``."""
    n = logp.shape[-2]
    idx = y.reshape((1,) * (logp.ndim - 2) + (n, 1))
    ly = np.take_along_axis(logp, idx, axis=-1)[..., 0]
    masked = logp.copy()
    np.put_along_axis(masked, idx, -np.inf, axis=-1)
    mx = masked.max(axis=-1, keepdims=True)
    lrest = mx[..., 0] + np.log(np.exp(masked - mx).sum(axis=-1))
    return np.asarray(ly - lrest)


def _set_mode(module: nn.Module, train: bool) -> None:
    try:
        module.train(train)
    except (NotImplementedError, RuntimeError):  # exported graphs keep the mode they were exported in
        pass


class StackedOptimizer:
    """SGD (momentum 0.9), Adam or AdamW over stacked weights ``(M, ...)``, one recipe per model.

    Each model trains exactly as it would alone with ``torch.optim.SGD(momentum=0.9)``, ``Adam`` or ``AdamW``
    at its own learning rate and weight decay: the step is torch's own fused implementation
    (``torch.optim.sgd.sgd`` / ``torch.optim.adam.adam`` with ``fused=True``), once over all models when
    they share a recipe, else once per model on its slice (views into the stacked tensors).
    """

    def __init__(self, params: dict[str, torch.Tensor], recipes: Sequence[Recipe]) -> None:
        self.params = params
        self.recipes = list(recipes)
        self.state = {k: (torch.zeros_like(p), torch.zeros_like(p)) for k, p in params.items()}
        self.t = 0

    def keep(self, idx: torch.Tensor) -> None:
        """Drop every model not in ``idx`` (after the caller sliced ``params`` the same way)."""
        self.recipes = [self.recipes[i] for i in idx.tolist()]
        self.state = {k: (m[idx], v[idx]) for k, (m, v) in self.state.items()}

    @torch.no_grad()
    def step(self) -> None:
        from torch.optim.adam import adam
        from torch.optim.sgd import sgd

        self.t += 1
        names = [k for k, p in self.params.items() if p.grad is not None]
        groups: dict[tuple[str, float, float], list[int]] = {}
        for i, r in enumerate(self.recipes):
            groups.setdefault((r.optimizer, r.lr, r.weight_decay), []).append(i)
        for (opt, lr, wd), idx in groups.items():
            for sel in [slice(None)] if len(idx) == len(self.recipes) else idx:
                ps = [self.params[k][sel] for k in names]
                gs = [g[sel] for k in names if (g := self.params[k].grad) is not None]
                ms = [self.state[k][0][sel] for k in names]
                if opt == "sgd":
                    sgd(ps, gs, list(ms), fused=True, weight_decay=wd, momentum=SGD_MOMENTUM, lr=lr, dampening=0.0,
                        nesterov=False, maximize=False)
                    continue
                vs = [self.state[k][1][sel] for k in names]
                steps = [torch.tensor(float(self.t - 1)) for _ in names]  # the step increments them
                adam(ps, gs, ms, vs, [], steps, fused=True, decoupled_weight_decay=opt == "adamw", amsgrad=False,
                     beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], lr=lr, weight_decay=wd, eps=ADAM_EPS, maximize=False)


class ReferenceEnsemble:
    """``M`` independently trained models of one architecture, evaluated in one batched call."""

    def __init__(self, base: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                 masks: np.ndarray, arch: str = "factory", recipe: Recipe | None = None) -> None:
        self.base = base
        self.params = params
        self.buffers = buffers
        self.masks = masks  # (M, n_pool) bool: which pool records each model trained on
        self.arch = arch
        self.recipe = recipe

    @property
    def n_models(self) -> int:
        return int(self.masks.shape[0])

    def _forward(self, x: torch.Tensor, per_model: bool) -> torch.Tensor:
        return stacked_forward(self.base, self.params, self.buffers, x, per_model)

    def log_proba(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Log-probabilities of every model on ``x``: shape ``(M, n, k)``."""
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        _set_mode(self.base, False)
        outs = []
        with torch.no_grad():
            for i in range(0, len(xt), batch_size):
                outs.append(torch.log_softmax(self._forward(xt[i : i + batch_size], per_model=False), dim=-1))
        return torch.cat(outs, dim=1).numpy()


def stacked_forward(base: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                    x: torch.Tensor, per_model: bool) -> torch.Tensor:
    """Logits of every stacked model: ``x`` is ``(M, B, ...)`` with ``per_model`` else ``(B, ...)``."""
    from torch.func import functional_call, vmap

    def f(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (xb,))

    return vmap(f, in_dims=(0, 0, 0 if per_model else None), randomness="different")(params, buffers, x)


def init_stacked(arch: Architecture, m: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``m`` fresh weight sets stacked on a leading axis: (trainable, buffers)."""
    states = [arch.init_state() for _ in range(m)]
    trainable = set(arch.trainable)
    params = {k: torch.stack([s[k] for s in states]).requires_grad_(True) for k in states[0] if k in trainable}
    buffers = {k: torch.stack([s[k] for s in states]) for k in states[0] if k not in trainable}
    return params, buffers


EpochHook = Callable[[int, dict[str, torch.Tensor], dict[str, torch.Tensor]], "np.ndarray | None"]


def train_stacked(arch: Architecture, x: np.ndarray, y: np.ndarray, subsets: np.ndarray, recipes: Sequence[Recipe],
                  epochs: int, seed: int = 0, progress: Callable[[float, float], None] | None = None,
                  on_epoch: EpochHook | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], np.ndarray]:
    """Train ``len(recipes)`` models, model ``i`` on the records ``subsets[i]`` with ``recipes[i]``.

    All recipes share one batch size. ``on_epoch(epoch, params, buffers)`` may return a boolean keep-mask over
    the models still training: the others stop (an all-False mask ends training). Returns the trained
    (params, buffers) of the models kept and their original indices.
    """
    batch = recipes[0].batch_size
    if any(r.batch_size != batch for r in recipes):
        raise ValueError("stacked recipes must share one batch size")
    torch.manual_seed(seed)
    m = len(recipes)
    params, buffers = init_stacked(arch, m)
    opt = StackedOptimizer(params, recipes)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    sub_t = torch.from_numpy(np.asarray(subsets, dtype=np.int64))
    alive = torch.arange(m)
    g = torch.Generator().manual_seed(seed)
    size = sub_t.shape[1]
    steps = max(1, -(-size // batch))
    total, done = epochs * steps, 0
    _set_mode(arch.module, True)
    for epoch in range(1, epochs + 1):
        order = torch.argsort(torch.rand((len(alive), size), generator=g), dim=1)
        perm = torch.gather(sub_t, 1, order)
        for s in range(steps):
            idx = perm[:, s * batch : (s + 1) * batch]  # (M, B)
            logits = stacked_forward(arch.module, params, buffers, xt[idx], per_model=True)  # (M, B, k)
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), yt[idx].reshape(-1),
                                               reduction="sum") / idx.shape[1]
            for p in params.values():
                p.grad = None
            loss.backward()
            opt.step()
            done += 1
            if progress is not None:
                progress(done, total)
        if on_epoch is not None:
            keep = on_epoch(epoch, params, buffers)
            if keep is not None and not bool(np.all(keep)):
                if not np.any(keep):
                    break
                k = torch.from_numpy(np.flatnonzero(keep))
                params = {n: p.detach()[k].requires_grad_(True) for n, p in params.items()}
                buffers = {n: b[k] for n, b in buffers.items()}
                opt.params = params
                opt.keep(k)
                sub_t, alive = sub_t[k], alive[k]
    _set_mode(arch.module, False)
    return ({n: p.detach() for n, p in params.items()}, buffers, alive.numpy())


def train_reference_models(
    factory: Callable[[], nn.Module] | Architecture,
    x_pop: np.ndarray,
    y_pop: np.ndarray,
    cfg: ReferenceTrainConfig,
    seed: int = 0,
    progress: Callable[[float, float], None] | None = None,
) -> ReferenceEnsemble:
    """Train ``cfg.n_models`` models, each on ``cfg.set_size`` (else ``subset_fraction``) of the records.

    The training sets come from :func:`balanced_masks`; ``ReferenceEnsemble.masks`` records them.
    """
    arch = factory if isinstance(factory, Architecture) else Architecture.from_factory(factory)
    rng = np.random.default_rng(seed)
    n = len(x_pop)
    masks = balanced_masks(n, cfg.n_models, cfg.records_per_model(n), rng)
    subsets = np.stack([np.flatnonzero(row) for row in masks])
    recipe = cfg.recipe
    params, buffers, _ = train_stacked(arch, x_pop, y_pop, subsets, [recipe] * cfg.n_models, recipe.epochs, seed,
                                       progress)
    return ReferenceEnsemble(copy.deepcopy(arch.module), params, buffers, masks, arch.name, recipe)
