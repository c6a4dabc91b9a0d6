"""Fit the reference models' training recipe to how the target fits its training data.

The target's recipe (optimiser, learning rate, weight decay, epochs) is unknown, but its effect is
measurable: how confident the target is on its known members and on non-members. LiRA works on
φ = log p_y − log(1 − p_y), so the fit is described by the distribution of φ on training records
(IN) and on other records (OUT): :class:`FitStats` keeps their deciles and accuracies. A recipe fits
when reference models trained with it on records of the attacker's pool show the same IN and OUT
distributions: the distance is the squared 2-Wasserstein distance between the decile sets, IN and
OUT averaged, over the variance of the target's φ (0 = identical distributions).

:func:`fit_recipe` trains one reference model per candidate recipe of a small grid in a single
vectorised batch (per-model optimiser, learning rate and weight decay:
``reference.StackedOptimizer``), measures each at checkpoint epochs and keeps the (recipe, epochs)
pair at the smallest distance. A candidate stops once it has overshot the target's IN fit and its
distance has grown at two checkpoints in a row, or once it is more than ``PRUNE`` times farther
than a finished candidate (slower and worse); the search stops when all have stopped, at
``max_epochs``, or at ``time_cap_s``. Among the candidates within ``TOLERANCE`` times the best
distance the one with the fewest epochs is chosen (equally like the target, cheaper: more reference
models fit in the budget). It also measures what one model-epoch costs (the budget of the attack is
planned from it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from bastion.attacks.inference.reference import (
    Architecture,
    Recipe,
    balanced_masks,
    logit_confidence,
    stacked_forward,
    train_stacked,
)

QUANTILES = tuple(np.round(np.arange(0.1, 0.91, 0.1), 2))
# declared before any bench target was built; see docs/privacy.md "Recipe fit" for how it was checked
DEFAULT_GRID: tuple[Recipe, ...] = (
    Recipe("sgd", 0.01), Recipe("sgd", 0.05), Recipe("sgd", 0.05, 5e-4),
    Recipe("adam", 3e-4), Recipe("adam", 1e-3), Recipe("adam", 3e-3), Recipe("adam", 1e-3, 1e-4),
    Recipe("adamw", 1e-3, 0.01), Recipe("adamw", 3e-3, 0.1),
)
CHECKPOINTS = (1, 2, 3, 4, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 60, 80, 100, 125, 150, 200, 250, 300)
# a candidate farther than PRUNE × the best finished candidate's distance stops (it is slower and worse);
# among candidates within TOLERANCE × the best distance the one with fewest epochs is chosen
PRUNE = 2.0
TOLERANCE = 1.5


@dataclass(frozen=True)
class FitStats:
    """How a model fits: deciles of φ on its training records (IN) and on other records (OUT)."""

    in_quantiles: tuple[float, ...]
    out_quantiles: tuple[float, ...]
    in_accuracy: float
    out_accuracy: float

    @classmethod
    def of(cls, logp_in: np.ndarray, y_in: np.ndarray, logp_out: np.ndarray, y_out: np.ndarray) -> FitStats:
        """From log-probabilities ``(n, k)`` on IN and OUT records."""
        q_in = np.quantile(logit_confidence(logp_in[None], y_in)[0], QUANTILES)
        q_out = np.quantile(logit_confidence(logp_out[None], y_out)[0], QUANTILES)
        return cls(tuple(float(v) for v in q_in), tuple(float(v) for v in q_out),
                   float((logp_in.argmax(1) == y_in).mean()), float((logp_out.argmax(1) == y_out).mean()))

    @property
    def median_gap(self) -> float:
        """Median φ on IN minus median φ on OUT: the members/non-members confidence gap."""
        return self.in_quantiles[len(QUANTILES) // 2] - self.out_quantiles[len(QUANTILES) // 2]

    def distance(self, target: FitStats, scale: float) -> float:
        """Squared W2 between decile sets (IN and OUT averaged) over ``scale``² (the target's φ variance)."""
        d_in = np.mean((np.array(self.in_quantiles) - target.in_quantiles) ** 2)
        d_out = np.mean((np.array(self.out_quantiles) - target.out_quantiles) ** 2)
        return float((d_in + d_out) / 2 / max(scale, 1e-6) ** 2)

    def to_dict(self) -> dict[str, Any]:
        return {"phi_in_deciles": [round(v, 3) for v in self.in_quantiles],
                "phi_out_deciles": [round(v, 3) for v in self.out_quantiles],
                "median_gap": round(self.median_gap, 3),
                "in_accuracy": round(self.in_accuracy, 4), "out_accuracy": round(self.out_accuracy, 4)}


@dataclass
class RecipeFit:
    """The chosen recipe, how well it matches, what was tried, and the measured training cost."""

    recipe: Recipe
    distance: float
    target: FitStats
    reference: FitStats
    tried: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    model_epoch_s: float = 0.0
    truncated: bool = False

    def to_params(self) -> dict[str, Any]:
        return {"recipe": self.recipe.to_dict(), "distance": round(self.distance, 4),
                "target_fit": self.target.to_dict(), "reference_fit": self.reference.to_dict(),
                "candidates": self.tried, "search_s": round(self.seconds, 2),
                "measured_model_epoch_s": round(self.model_epoch_s, 5), "truncated_by_time": self.truncated}


@dataclass
class _Track:
    recipe: Recipe
    best: float = float("inf")
    best_epoch: int = 0
    best_stats: FitStats | None = None
    worse: int = 0
    stopped: int = 0


def fit_recipe(arch: Architecture, x_pool: np.ndarray, y_pool: np.ndarray, set_size: int, target: FitStats,
               scale: float, grid: tuple[Recipe, ...] = DEFAULT_GRID, max_epochs: int = 200,
               time_cap_s: float | None = None, seed: int = 0, eval_records: int = 1000,
               progress: Callable[[float, float], None] | None = None) -> RecipeFit:
    """Choose the (recipe, epochs) whose reference models fit their training data as the target does.

    ``x_pool``/``y_pool``: the records reference models will train on (``set_size`` each). ``target``:
    the target's :class:`FitStats` on its members (IN) and non-members (OUT); ``scale``: the standard
    deviation of the target's φ over both. Every grid recipe shares the grid's batch size.
    """
    t0 = time.perf_counter()
    k = len(grid)
    masks = balanced_masks(len(x_pool), k, set_size, np.random.default_rng(seed))
    subsets = np.stack([np.flatnonzero(row) for row in masks])
    ev = np.sort(np.random.default_rng(seed + 1).permutation(len(x_pool))[:eval_records])
    x_ev = torch.from_numpy(np.ascontiguousarray(x_pool[ev], dtype=np.float32))
    y_ev = np.asarray(y_pool, dtype=np.int64)[ev]
    tracks = [_Track(r) for r in grid]
    alive = list(range(k))
    checkpoints = {e for e in CHECKPOINTS if e <= max_epochs} | {max_epochs}
    clock = {"eval": 0.0, "model_epochs": 0, "last": time.perf_counter()}
    truncated = False

    def on_epoch(epoch: int, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]) -> np.ndarray | None:
        nonlocal alive, truncated
        clock["model_epochs"] += len(alive)
        over_time = time_cap_s is not None and time.perf_counter() - t0 > time_cap_s
        if epoch not in checkpoints and not over_time:
            return None
        te = time.perf_counter()
        with torch.no_grad():
            logp = torch.log_softmax(stacked_forward(arch.module, params, buffers, x_ev, per_model=False), -1).numpy()
        keep = np.ones(len(alive), dtype=bool)
        for j, i in enumerate(alive):
            tr = tracks[i]
            inside = masks[i][ev]
            stats = FitStats.of(logp[j][inside], y_ev[inside], logp[j][~inside], y_ev[~inside])
            d = stats.distance(target, scale)
            if d < tr.best:
                tr.best, tr.best_epoch, tr.best_stats, tr.worse = d, epoch, stats, 0
            else:
                tr.worse += 1
            overshot = stats.in_quantiles[len(QUANTILES) // 2] > target.in_quantiles[len(QUANTILES) // 2]
            if (tr.worse >= 2 and overshot) or not np.isfinite(d):
                keep[j] = False
                tr.stopped = epoch
        finished = [tracks[i].best for i in range(k) if tracks[i].stopped]
        if finished:
            for j, i in enumerate(alive):
                if keep[j] and tracks[i].best > PRUNE * min(finished):
                    keep[j] = False
                    tracks[i].stopped = epoch
        clock["eval"] += time.perf_counter() - te
        if over_time:
            truncated = True
            keep[:] = False
        for j, i in enumerate(alive):
            if not keep[j] and not tracks[i].stopped:
                tracks[i].stopped = epoch
        alive = [i for j, i in enumerate(alive) if keep[j]]
        if progress is not None:
            progress(epoch, max_epochs)
        return keep

    train_stacked(arch, x_pool, y_pool, subsets, [replace(r, epochs=max_epochs) for r in grid], max_epochs, seed,
                  on_epoch=on_epoch)
    seconds = time.perf_counter() - t0
    closest = min(t.best for t in tracks)
    best = min((t for t in tracks if t.best <= TOLERANCE * closest), key=lambda t: (t.best_epoch, t.best))
    if best.best_stats is None:
        raise RuntimeError("the recipe search measured no checkpoint (time cap reached before the first epoch)")
    tried = [{**t.recipe.to_dict(), "epochs": t.best_epoch, "distance": round(t.best, 4),
              "stopped_at_epoch": t.stopped or max_epochs} for t in tracks]
    model_epoch_s = (seconds - clock["eval"]) / max(int(clock["model_epochs"]), 1)
    return RecipeFit(replace(best.recipe, epochs=max(best.best_epoch, 1)), best.best, target, best.best_stats, tried,
                     seconds, model_epoch_s, truncated)
