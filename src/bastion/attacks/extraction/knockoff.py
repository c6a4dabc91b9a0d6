"""Learning-based model extraction (Knockoff Nets / Copycat CNN) with a query budget.

Orekondy et al., "Knockoff Nets" (CVPR 2019, https://arxiv.org/abs/1812.02766) and Correia-Silva
et al., "Copycat CNN" (2018): query the victim on data the attacker holds — or on synthetic
inputs — and train a surrogate on its answers. Where the victim returns full probabilities the
surrogate matches centred log-probabilities (logit matching, the "learning" extraction of
Jagielski et al., "High Accuracy and High Fidelity Extraction of Neural Networks", 2020), which
needs far fewer queries than matching labels; under rounding/top-k/label-only outputs it falls
back to soft-label cross-entropy.

``run_extraction`` reports fidelity (agreement with the victim on held-out data) and accuracy
of the stolen model at each point of a query schedule — the curve a report plots. The victim
can be any ``ModelAdapter``: a local model, a ``PolicyWrappedModel`` or a ``RemoteAdapter``
talking to a deployed gateway; when the victim itself runs out of budget
(``QueryBudgetExceeded``) the curve stops there.

Examples:
    >>> from bastion.models.zoo import demo_target
    >>> t = demo_target("digits")
    >>> r = run_extraction(t.model, t.data.x_test, budget=1000, eval_x=t.data.x_train[:300],
    ...                    config=ExtractionConfig(schedule=(1000,), epochs=20))
    >>> r.curve[-1].queries
    1000
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from bastion.attacks.inference.reference import proxy_mlp
from bastion.core.errors import ConfigError, InvalidInputError, QueryBudgetExceeded
from bastion.core.model import InputSpec, ModelAdapter
from bastion.models.adapters import net_labels

QueryStrategy = Literal["in_distribution", "random", "mixed"]
SurrogateLoss = Literal["auto", "logit", "soft", "hard"]


class BudgetedModel:
    """Wrap a ``ModelAdapter`` so that more than ``budget`` queried samples raise ``QueryBudgetExceeded``."""

    def __init__(self, model: ModelAdapter, budget: int) -> None:
        self.model = model
        self.budget = int(budget)
        self.used = 0

    @property
    def n_classes(self) -> int:
        return self.model.n_classes

    @property
    def input_spec(self) -> InputSpec:
        return self.model.input_spec

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.used + len(x) > self.budget:
            raise QueryBudgetExceeded(
                f"query budget exhausted: {self.used} of {self.budget} used, {len(x)} more requested")
        self.used += len(x)
        return self.model.predict_proba(x)


@dataclass(frozen=True)
class ExtractionConfig:
    """Attack parameters (all recorded in the result)."""

    strategy: QueryStrategy = "in_distribution"
    schedule: tuple[int, ...] = (100, 300, 1000, 3000, 10000)
    loss: SurrogateLoss = "auto"
    epochs: int = 30
    min_steps: int = 600
    batch_size: int = 128
    lr: float = 3e-3
    mixup: bool = True
    noise_std: float = 0.02
    seed: int = 0


@dataclass
class ExtractionPoint:
    queries: int
    fidelity: float
    accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExtractionResult:
    curve: list[ExtractionPoint]
    victim_accuracy: float | None
    queries_used: int
    stopped_by_budget: bool
    surrogate: nn.Module | None = None
    loss_used: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def fidelity(self) -> float:
        return self.curve[-1].fidelity if self.curve else 0.0

    def fidelity_at(self, queries: int) -> float | None:
        pts = [p for p in self.curve if p.queries <= queries]
        return pts[-1].fidelity if pts else None

    def to_dict(self) -> dict[str, Any]:
        last = self.curve[-1] if self.curve else None
        return {"attack": "extraction", "method": "knockoff", "fidelity": self.fidelity,
                "accuracy": None if last is None else last.accuracy, "victim_accuracy": self.victim_accuracy,
                "queries_used": self.queries_used, "stopped_by_budget": self.stopped_by_budget,
                "loss": self.loss_used, "curve": [p.to_dict() for p in self.curve],
                "duration_s": round(self.duration_s, 3), "params": dict(self.params)}

    def curve_png(self, title: str = "extraction") -> bytes:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.6, 3.6), dpi=100)
        q = [p.queries for p in self.curve]
        ax.semilogx(q, [p.fidelity for p in self.curve], "o-", label="fidelity (agreement)")
        if all(p.accuracy is not None for p in self.curve):
            ax.semilogx(q, [p.accuracy for p in self.curve], "s--", label="stolen-model accuracy")
        if self.victim_accuracy is not None:
            ax.axhline(self.victim_accuracy, color="k", lw=0.8, ls=":", label="victim accuracy")
        ax.set_xlabel("victim queries")
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        return buf.getvalue()


def _queries(pool: np.ndarray | None, n: int, spec: InputSpec, cfg: ExtractionConfig,
             rng: np.random.Generator) -> np.ndarray:
    """``n`` query inputs: the pool first (shuffled), then mixup/noise augmentations, or random inputs."""
    shape = (n, *spec.shape)
    lo, hi = spec.clip_min, spec.clip_max

    def random_inputs(m: int) -> np.ndarray:
        if lo is not None and hi is not None:
            return rng.uniform(lo, hi, size=(m, *spec.shape)).astype(np.float32)
        return rng.normal(0.0, 1.0, size=(m, *spec.shape)).astype(np.float32)

    if cfg.strategy == "random" or pool is None:
        return random_inputs(n)
    n_pool = n if cfg.strategy == "in_distribution" else n - n // 2
    order = rng.permutation(len(pool))
    first = pool[order[: min(n_pool, len(pool))]]
    extra = n_pool - len(first)
    parts = [first]
    if extra > 0:
        a = pool[rng.integers(0, len(pool), extra)]
        if cfg.mixup:
            b = pool[rng.integers(0, len(pool), extra)]
            lam = rng.uniform(0.0, 1.0, size=(extra,) + (1,) * len(spec.shape)).astype(np.float32)
            a = lam * a + (1 - lam) * b
        a = a + rng.normal(0.0, cfg.noise_std, size=a.shape).astype(np.float32)
        if lo is not None or hi is not None:
            a = np.clip(a, lo, hi)
        parts.append(a.astype(np.float32))
    if n - n_pool > 0:
        parts.append(random_inputs(n - n_pool))
    out = np.concatenate(parts).reshape(shape)
    return out[rng.permutation(n)].astype(np.float32)


def _choose_loss(cfg_loss: SurrogateLoss, answers: np.ndarray) -> str:
    if cfg_loss != "auto":
        return cfg_loss
    if np.all(answers > 0):
        return "logit"
    one_hot = np.all((answers == 0) | (answers == 1))
    return "hard" if one_hot else "soft"


def train_surrogate(factory: Callable[[], nn.Module], x: np.ndarray, answers: np.ndarray, loss: str,
                    cfg: ExtractionConfig) -> nn.Module:
    """Fit a fresh surrogate to the victim's answers."""
    torch.manual_seed(cfg.seed)
    net = factory()
    net.train()
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    pt = torch.from_numpy(np.asarray(answers, dtype=np.float32))
    if loss == "logit":
        lp = torch.log(pt.clamp_min(1e-30))
        target = lp - lp.mean(dim=1, keepdim=True)
    else:
        target = pt / pt.sum(dim=1, keepdim=True).clamp_min(1e-12)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    n = len(xt)
    steps_per_epoch = max(1, -(-n // cfg.batch_size))
    total = max(cfg.epochs * steps_per_epoch, cfg.min_steps)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    g = torch.Generator().manual_seed(cfg.seed)
    step = 0
    while step < total:
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            out = net(xt[idx])
            if loss == "logit":
                z = out - out.mean(dim=1, keepdim=True)
                lval = ((z - target[idx]) ** 2).mean()
            else:
                lval = -(target[idx] * torch.log_softmax(out, dim=1)).sum(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            lval.backward()
            opt.step()
            sched.step()
            step += 1
            if step >= total:
                break
    net.eval()
    return net


def run_extraction(
    victim: ModelAdapter,
    attacker_data: np.ndarray | None,
    budget: int,
    eval_x: np.ndarray,
    eval_y: np.ndarray | None = None,
    config: ExtractionConfig | None = None,
    surrogate_factory: Callable[[], nn.Module] | None = None,
    eval_victim_labels: np.ndarray | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> ExtractionResult:
    """Steal ``victim`` with at most ``budget`` queries; fidelity/accuracy at each schedule point.

    ``attacker_data`` is the attacker's unlabelled pool (``None`` → synthetic queries only);
    ``eval_x`` (never queried by the attacker) measures fidelity. The victim's labels on
    ``eval_x`` are computed once (or passed as ``eval_victim_labels``) and are not counted
    against the attacker's budget.
    """
    cfg = config or ExtractionConfig()
    t0 = time.perf_counter()
    if budget < 1:
        raise ConfigError(f"query budget must be >= 1, got {budget}")
    spec = victim.input_spec
    if len(eval_x) == 0:
        raise InvalidInputError("extraction needs evaluation inputs (eval_x) to measure fidelity")
    if eval_victim_labels is None:
        eval_victim_labels = np.concatenate([np.asarray(victim.predict_proba(eval_x[i : i + 512])).argmax(1)
                                             for i in range(0, len(eval_x), 512)])
    victim_acc = None if eval_y is None else float((eval_victim_labels == eval_y).mean())
    schedule = sorted({int(s) for s in cfg.schedule if 0 < s < budget} | {int(budget)})
    rng = np.random.default_rng(cfg.seed)
    pool = None if attacker_data is None else np.asarray(attacker_data, dtype=np.float32)
    xq = _queries(pool, budget, spec, cfg, rng)
    factory = surrogate_factory or proxy_mlp(spec.shape, victim.n_classes)
    answers: list[np.ndarray] = []
    curve: list[ExtractionPoint] = []
    used, stopped, loss_used, net = 0, False, "", None
    for j, point in enumerate(schedule):
        try:
            for i in range(used, point, spec.max_batch):
                chunk = xq[i : min(point, i + spec.max_batch)]
                answers.append(np.asarray(victim.predict_proba(chunk), dtype=np.float64))
                used += len(chunk)
        except QueryBudgetExceeded:
            stopped = True
        if used == 0:
            break
        ans = np.concatenate(answers)
        loss_used = _choose_loss(cfg.loss, ans)
        net = train_surrogate(factory, xq[:used], ans, loss_used, cfg)
        pred = net_labels(net, eval_x, batch_size=1024)
        curve.append(ExtractionPoint(used, float((pred == eval_victim_labels).mean()),
                                     None if eval_y is None else float((pred == eval_y).mean())))
        if progress is not None:
            progress(j + 1, len(schedule))
        if stopped:
            break
    params = {**asdict(cfg), "schedule": schedule, "budget": budget, "n_eval": len(eval_x),
              "attacker_pool": 0 if pool is None else len(pool),
              "surrogate": "custom" if surrogate_factory else "proxy-mlp-256"}
    return ExtractionResult(curve, victim_acc, used, stopped, net, loss_used, params, time.perf_counter() - t0)
