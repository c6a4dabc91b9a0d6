"""Reference models for a membership attack: which architecture, which recipe, how many in the time budget.

:func:`build_reference_models` is the path every reference-model attack takes:

1. **Architecture.** A re-initialised clone of the target (``clone.clone_architecture``: TorchScript,
   ``torch.export``, ONNX-converted or plain torch modules; ``sklearn.base.clone`` for scikit-learn
   estimators), checked to compute the target's function and to train; else the proxy MLP, with
   the reason recorded (``clone_unavailable``). A caller's factory (``--reference-arch``) wins.
2. **Recipe.** ``recipe.fit_recipe`` picks optimiser, learning rate, weight decay and epochs so the
   references fit their own training records as the target fits its members (``reference_recipe=
   "fit"``), or the fixed recipe of the config is used.
3. **How many.** With ``n_reference`` unset, the number of models is what the time budget affords
   after the search: ``(budget − elapsed − reserve) / (measured s per model-epoch × epochs)``,
   clamped to [``N_MIN``, ``N_MAX``]. A budget that cannot afford ``N_MIN`` models is a
   ``ConfigError`` that names the measured cost and the budget needed.

Everything chosen or measured is returned for the result's ``params``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion.attacks.inference.clone import (
    CloneUnavailable,
    SklearnReferenceEnsemble,
    clone_architecture,
    train_sklearn_references,
    verify_trains,
)
from bastion.attacks.inference.recipe import FitStats, fit_recipe
from bastion.attacks.inference.reference import (
    Architecture,
    Recipe,
    ReferenceEnsemble,
    ReferenceTrainConfig,
    proxy_mlp,
    train_reference_models,
    train_stacked,
)
from bastion.core.errors import ConfigError
from bastion.core.model import ModelAdapter

N_MIN = 8  # fewer reference models leave online LiRA 4 IN / 4 OUT fits per record
N_MAX = 64  # more add little (docs/privacy.md) and cost linearly
SEARCH_SHARE = 0.35  # the recipe search stops at this share of the time budget
MIN_BUDGET_S = 10.0


@dataclass(frozen=True)
class ReferencePlanConfig:
    """What :func:`build_reference_models` needs from the attack's configuration."""

    n_reference: int | None = None
    time_budget_s: float | None = 180.0
    arch: str = "clone"  # clone | proxy
    recipe: str = "fit"  # fit | fixed
    fixed_recipe: Recipe = field(default_factory=Recipe)
    seed: int = 0


def scoring_reserve_s(budget: float) -> float:
    """Budget kept for scoring after training (reference outputs, the learned scorer): 10 %, at least 5 s."""
    return max(5.0, 0.1 * budget)


def affordable_models(budget: float, elapsed: float, per_model_s: float) -> int:
    """How many reference models fit in what is left of ``budget``; ``ConfigError`` below ``N_MIN``."""
    left = budget - elapsed - scoring_reserve_s(budget)
    n = int(left // per_model_s) if per_model_s > 0 else N_MAX
    if n < N_MIN:
        need = elapsed + N_MIN * per_model_s + scoring_reserve_s(budget)
        raise ConfigError(f"a time budget of {budget:.0f} s affords {max(n, 0)} reference models (measured "
                          f"{per_model_s:.2f} s per model, {elapsed:.0f} s already spent on cloning and the recipe "
                          f"fit); at least {N_MIN} are needed: give --time-budget {math.ceil(need * 1.1)} or more, "
                          "or set --n-reference")
    return min(n, N_MAX)


def _architecture(model: ModelAdapter, factory: Callable[[], nn.Module] | None, arch: str, x: np.ndarray,
                  y: np.ndarray, seed: int) -> tuple[Architecture, dict[str, Any]]:
    info: dict[str, Any] = {}
    if factory is not None:
        return Architecture.from_factory(factory, "given"), info
    if arch == "clone":
        module = getattr(model, "module", None)
        try:
            if module is None:
                raise CloneUnavailable(f"{type(model).__name__} exposes no torch module (black-box)")
            a = clone_architecture(module, x[:8])
            info["clone_check"] = {k: round(v, 4) for k, v in verify_trains(a, x, y, seed=seed).items()}
            if a.notes:
                info["clone_notes"] = list(a.notes)
            return a, info
        except CloneUnavailable as exc:
            info["clone_unavailable"] = str(exc)
    spec = model.input_spec
    return Architecture.from_factory(proxy_mlp(spec.shape, model.n_classes), "proxy-mlp-256"), info


def measure_model_epoch_s(arch: Architecture, x: np.ndarray, y: np.ndarray, set_size: int, batch_size: int,
                          seed: int = 0) -> float:
    """Seconds one reference model's epoch takes: ``N_MIN`` models trained together for one epoch, timed."""
    rng = np.random.default_rng(seed)
    subsets = np.stack([rng.permutation(len(x))[:set_size] for _ in range(N_MIN)])
    recipe = Recipe(batch_size=batch_size, epochs=1)
    t0 = time.perf_counter()
    train_stacked(arch, x, y, subsets, [recipe] * N_MIN, 1, seed)
    return (time.perf_counter() - t0) / N_MIN


def _sklearn_params(est: Any) -> dict[str, Any]:
    return {k: v for k, v in est.get_params(deep=False).items()
            if isinstance(v, int | float | str | bool) or v is None}


def build_reference_models(
    model: ModelAdapter,
    x: np.ndarray,
    y: np.ndarray,
    set_size: int,
    target_fit: FitStats | None,
    fit_scale: float,
    cfg: ReferencePlanConfig,
    factory: Callable[[], nn.Module] | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> tuple[ReferenceEnsemble | SklearnReferenceEnsemble, dict[str, Any]]:
    """Train the reference models of a membership attack on ``x``/``y`` (``set_size`` records each).

    ``target_fit``/``fit_scale``: the target's fit on its members and non-members and the spread of its
    φ (for the recipe fit). Returns the ensemble and the ``params`` to record.
    """
    t0 = time.perf_counter()
    budget = cfg.time_budget_s
    if budget is not None and budget < MIN_BUDGET_S:
        raise ConfigError(f"time budget {budget} s is below the minimum of {MIN_BUDGET_S:.0f} s for a reference-model "
                          "attack; raise --time-budget or choose --method loss|confidence")
    params: dict[str, Any] = {"time_budget_s": budget}
    yy = np.asarray(y, dtype=np.int64)
    estimator = getattr(model, "estimator", None)
    if factory is None and cfg.arch == "clone" and estimator is not None and getattr(model, "module", None) is None:
        def n_for(per_model: float) -> int:
            assert budget is not None
            return affordable_models(budget, time.perf_counter() - t0, per_model)

        sk, per_model = train_sklearn_references(estimator, x, yy, cfg.n_reference or N_MIN, set_size, model.n_classes,
                                                 cfg.seed, n_for if cfg.n_reference is None and budget else None)
        params.update(reference_arch=sk.arch, reference_recipe={"estimator_params": _sklearn_params(estimator)},
                      recipe_source="the estimator's own hyperparameters (sklearn.base.clone)",
                      n_reference=sk.n_models, n_reference_source="time budget" if cfg.n_reference is None else "given",
                      measured_model_s=round(per_model, 4))
        return sk, params
    arch, info = _architecture(model, factory, cfg.arch, x, yy, cfg.seed)
    params.update(reference_arch=arch.name, **info)
    if cfg.recipe == "fit" and target_fit is not None:
        cap = SEARCH_SHARE * budget if budget is not None else None
        fit = fit_recipe(arch, x, yy, set_size, target_fit, fit_scale, time_cap_s=cap, seed=cfg.seed)
        recipe, model_epoch_s = fit.recipe, fit.model_epoch_s
        params.update(recipe_source="fitted to the target's members/non-members fit", recipe_fit=fit.to_params())
    else:
        recipe = cfg.fixed_recipe
        model_epoch_s = (measure_model_epoch_s(arch, x, yy, set_size, recipe.batch_size, cfg.seed)
                         if cfg.n_reference is None and budget is not None else 0.0)
        params.update(recipe_source="fixed")
    per_model = model_epoch_s * recipe.epochs
    if cfg.n_reference is not None:
        n, source = cfg.n_reference, "given"
    elif budget is not None:
        n, source = affordable_models(budget, time.perf_counter() - t0, per_model), "time budget"
    else:
        n, source = N_MAX // 2, "default (no time budget)"
    params.update(reference_recipe=recipe.to_dict(), n_reference=n, n_reference_source=source,
                  measured_model_epoch_s=round(model_epoch_s, 5), estimated_model_s=round(per_model, 3))
    t_train = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rcfg = ReferenceTrainConfig(n_models=n, set_size=set_size, epochs=recipe.epochs, batch_size=recipe.batch_size,
                                lr=recipe.lr, weight_decay=recipe.weight_decay, optimizer=recipe.optimizer)
    ens = train_reference_models(arch, x, yy, rcfg, cfg.seed, progress)
    params.update(reference_train_s=round(time.perf_counter() - t_train, 2),
                  reference_setup_s=round(t_train - t0, 2))
    return ens, params
