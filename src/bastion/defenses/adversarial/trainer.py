"""Adversarial training: PGD (Madry et al. 2018), fast FGSM + random init (Wong et al. 2020), TRADES.

One loop, three inner problems. Each epoch is validated on a held-out split with PGD at the full
ε; the best robust epoch is kept (early stopping against robust overfitting), and in fast mode a
collapse of PGD accuracy (catastrophic overfitting) restores the best weights and falls back to PGD.

Examples:
    >>> from bastion.models.zoo import build_architecture
    >>> from bastion.datasets import load_demo_data
    >>> d = load_demo_data("digits")
    >>> net = build_architecture("digits-mlp", d.input_shape, 10)
    >>> cfg = AdversarialTrainingConfig(method="pgd", eps=0.1, epochs=2)
    >>> net, record = adversarial_train(net, d.splits.x_train, d.splits.y_train, cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bastion.core.errors import InvalidInputError
from bastion.defenses.adversarial.config import AdversarialTrainingConfig
from bastion.defenses.adversarial.perturb import autocast, fgsm_rs_perturb, pgd_perturb
from bastion.defenses.adversarial.record import EpochRecord, TrainingRecord

EpochCallback = Callable[[EpochRecord, TrainingRecord], None]


def detect_catastrophic_overfitting(robust_history: list[float], co_drop: float = 0.2) -> bool:
    """True when the last robust accuracy collapsed relative to the best before it.

    Catastrophic overfitting (Wong et al. 2020) shows as PGD accuracy dropping abruptly while
    FGSM training accuracy keeps rising. Fires when the drop from the previous best is at least
    5 points and either ``co_drop`` absolute or 40% of the best (22% → 8% fires; 2-point noise does not).
    """
    if len(robust_history) < 2:
        return False
    best, current = max(robust_history[:-1]), robust_history[-1]
    drop = best - current
    return drop >= 0.05 and (drop >= co_drop or current <= 0.6 * best)


def _accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((module(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
    return correct / max(1, len(x))


def robust_accuracy_pgd(
    module: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: AdversarialTrainingConfig, steps: int,
    random_start: bool = True, batch: int = 250, seed: int = 0,
) -> float:
    """Accuracy under L∞ PGD-``steps`` (or FGSM when ``steps == 1`` without random start) at ``cfg.eps``, fp32."""
    g = torch.Generator().manual_seed(seed)
    correct = 0
    for i in range(0, len(x), batch):
        xb, yb = x[i : i + batch], y[i : i + batch]
        step = cfg.eps if (steps == 1 and not random_start) else 2.5 * cfg.eps / steps
        xa = pgd_perturb(module, xb, yb, cfg.eps, steps, step, cfg.clip_min, cfg.clip_max,
                         random_start=random_start, generator=g)
        with torch.no_grad():
            correct += int((module(xa).argmax(1) == yb).sum())
    return correct / max(1, len(x))


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of an (N, C, H, W) batch by up to ``max_shift`` pixels (zero padding)."""
    if max_shift <= 0 or x.ndim != 4:
        return x
    n, c, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s))
    off = torch.randint(0, 2 * s + 1, (n, 2), generator=generator).to(x.device)
    rows = (off[:, 0:1] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (off[:, 1:2] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


class BudgetClock(Protocol):
    """What the trainer reads time from: seconds since start (``wall``, process ``cpu``), the seconds
    counted against ``time_budget_s`` (``budget``) and the cores the CPU time is divided by. Tests pass
    a clock of their own (``adversarial_train(..., clock=...)``) so that budget decisions are exact."""

    cores: int

    def wall(self) -> float: ...

    def cpu(self) -> float: ...

    def budget(self) -> float: ...


class ProcessClock:
    """Wall and process-CPU seconds since start; the budget clock is one or the other (CPU / cores)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.cores = max(1, min(torch.get_num_threads(), os.cpu_count() or 1))
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def wall(self) -> float:
        return time.perf_counter() - self.t0

    def cpu(self) -> float:
        return time.process_time() - self.c0

    def budget(self) -> float:
        return self.cpu() / self.cores if self.kind == "cpu" else self.wall()


def _load_avg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _lr_factor(cfg: AdversarialTrainingConfig, progress: float) -> float:
    """Multiplier of ``cfg.lr`` at ``progress`` ∈ [0, 1] of the planned epochs."""
    if cfg.lr_schedule == "constant":
        return 1.0
    if cfg.lr_schedule == "onecycle":
        warm = 0.3
        return max(1e-3, progress / warm) if progress < warm else max(0.0, (1 - progress) / (1 - warm))
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _split_validation(
    x: np.ndarray, y: np.ndarray, cfg: AdversarialTrainingConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if cfg.val_fraction <= 0:
        return x, y, x[:0], y[:0]
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(x))
    n_val = min(max(1, int(len(x) * cfg.val_fraction)), cfg.val_samples)
    return x[perm[n_val:]], y[perm[n_val:]], x[perm[:n_val]], y[perm[:n_val]]


def adversarial_train(
    module: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    cfg: AdversarialTrainingConfig,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    on_epoch: EpochCallback | None = None,
    architecture: str = "",
    device: str | torch.device = "cpu",
    clock: BudgetClock | None = None,
) -> tuple[nn.Module, TrainingRecord]:
    """Train ``module`` (returning logits) to be robust at L∞ ``cfg.eps``; returns it (best epoch) and the record.

    ``clock`` (default: a ``ProcessClock`` on ``cfg.budget_clock``, started now) is what the time budget,
    the annealed learning rate and the record's times read."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if len(x) != len(y) or len(x) < 2:
        raise InvalidInputError(f"need matching x/y with at least 2 samples; got {len(x)} inputs, {len(y)} labels")
    if x_val is None or y_val is None:
        x, y, x_val, y_val = _split_validation(x, y, cfg)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = torch.device(device)
    module.to(dev)
    xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    xv = torch.from_numpy(np.asarray(x_val, dtype=np.float32)).to(dev)
    yv = torch.from_numpy(np.asarray(y_val, dtype=np.int64)).to(dev)
    for p in module.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    clock = clock if clock is not None else ProcessClock(cfg.budget_clock)
    record = TrainingRecord(config=cfg.to_dict(), architecture=architecture, n_train=len(x), n_val=len(xv),
                            cores=clock.cores)
    method = cfg.method
    best_state: dict[str, torch.Tensor] | None = None
    best_key = (-1.0, -1.0)
    since_best = 0
    robust_hist: list[float] = []
    n_batches = math.ceil(len(xt) / cfg.batch_size)
    total_steps = cfg.epochs * n_batches
    train_bf16 = cfg.bf16 == "all"
    attack_bf16 = cfg.bf16 != "off"
    for epoch in range(cfg.epochs):
        eps_t = cfg.eps_at(epoch)
        module.train()
        perm = torch.randperm(len(xt), generator=gen).to(dev)
        loss_sum, correct = 0.0, 0
        for b, i in enumerate(range(0, len(xt), cfg.batch_size)):
            progress = (epoch * n_batches + b) / total_steps
            if cfg.anneal_to_budget and cfg.time_budget_s:
                progress = max(progress, clock.budget() / cfg.time_budget_s)
            lr = cfg.lr * _lr_factor(cfg, progress)
            for group in opt.param_groups:
                group["lr"] = lr
            idx = perm[i : i + cfg.batch_size]
            xb, yb = random_shift(xt[idx], cfg.augment_shift, gen), yt[idx]
            loss, logits_adv = _batch_loss(module, xb, yb, method, eps_t, cfg, gen, attack_bf16, train_bf16)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits_adv.argmax(1) == yb).sum())
        module.eval()
        if len(xv):
            clean = _accuracy(module, xv, yv)
            robust = robust_accuracy_pgd(module, xv, yv, cfg, cfg.val_steps, seed=cfg.seed)
            fgsm = robust_accuracy_pgd(module, xv, yv, cfg, 1, random_start=False)
        else:
            clean = robust = fgsm = float("nan")
        ep = EpochRecord(epoch + 1, method, eps_t, loss_sum / len(xt), correct / len(xt), clean, robust, fgsm,
                         clock.wall(), clock.cpu(), _load_avg(), lr)
        record.epochs.append(ep)
        robust_hist.append(robust)
        stop = False
        if len(xv) and method == "fast" and detect_catastrophic_overfitting(robust_hist, cfg.co_drop):
            record.catastrophic_overfitting = True
            record.event("catastrophic_overfitting", epoch + 1, robust_accuracy=robust,
                         best_robust_accuracy=max(robust_hist[:-1]), fgsm_accuracy=fgsm,
                         action="fallback to pgd" if cfg.co_fallback == "pgd" else "stop")
            if best_state is not None:
                module.load_state_dict(best_state)
            robust_hist[-1] = max(robust_hist[:-1])  # the restored weights
            if cfg.co_fallback == "pgd":
                method = "pgd"
            else:
                stop = True
        elif len(xv):
            key = (robust, clean)
            if key > best_key:
                best_key, since_best = key, 0
                best_state = copy.deepcopy(module.state_dict())
                record.best_epoch = epoch + 1
            else:
                since_best += 1
            if cfg.patience and since_best >= cfg.patience and epoch + 1 >= cfg.eps_ramp_epochs:
                record.stopped_early = True
                record.event("early_stop", epoch + 1, reason=f"no robust-accuracy gain for {cfg.patience} epochs")
                stop = True
        if on_epoch is not None:
            on_epoch(ep, record)
        used = clock.budget()
        per_epoch = used / (epoch + 1)
        # stop when the next epoch (estimated by the mean epoch so far) would overrun the budget
        if cfg.time_budget_s is not None and used + per_epoch > cfg.time_budget_s and not stop:
            record.event("time_budget", epoch + 1, budget_s=cfg.time_budget_s, clock=cfg.budget_clock,
                         used_s=round(used, 2))
            stop = epoch + 1 < cfg.epochs
            record.stopped_early = record.stopped_early or stop
        if stop:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
        record.best_robust_accuracy, record.best_clean_accuracy = best_key
    elif record.epochs:
        record.best_epoch = record.epochs[-1].epoch
    record.duration_s, record.cpu_s = clock.wall(), clock.cpu()
    module.eval()
    return module, record


def _batch_loss(
    module: nn.Module, xb: torch.Tensor, yb: torch.Tensor, method: str, eps: float,
    cfg: AdversarialTrainingConfig, gen: torch.Generator, attack_bf16: bool = False, train_bf16: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    if method == "fast":
        xa = fgsm_rs_perturb(module, xb, yb, eps, clip_min=cfg.clip_min, clip_max=cfg.clip_max, generator=gen,
                             bf16=attack_bf16)
        with autocast(xa, train_bf16):
            logits = module(xa).float()
        return F.cross_entropy(logits, yb), logits
    if method == "trades":
        xa = pgd_perturb(module, xb, yb, eps, cfg.train_steps, cfg.step_size, cfg.clip_min, cfg.clip_max,
                         loss="kl", generator=gen, bf16=attack_bf16)
        with autocast(xa, train_bf16):
            logits_clean = module(xb).float()
            logits_adv = module(xa).float()
        robust = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction="batchmean")
        return F.cross_entropy(logits_clean, yb) + cfg.trades_beta * robust, logits_adv
    xa = pgd_perturb(module, xb, yb, eps, cfg.train_steps, cfg.step_size, cfg.clip_min, cfg.clip_max, generator=gen,
                     bf16=attack_bf16)
    with autocast(xa, train_bf16):
        logits = module(xa).float()
    return F.cross_entropy(logits, yb), logits
