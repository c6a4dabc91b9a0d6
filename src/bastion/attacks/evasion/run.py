"""``run_evasion``: one attack by name on a ``ModelAdapter`` and numpy data, with the numbers.

This is the entry point the CLI, the assessment checks and other capabilities use. White-box
attacks need a differentiable model (an adapter with a ``.module``, e.g. ``TorchAdapter``); any
model can be attacked with ``square`` (scores) or ``hsj`` (labels). Only samples the model
classifies correctly are attacked; the others count as non-robust and keep ``x_adv = x``.

Examples:
    >>> from bastion.models.zoo import demo_target                       # doctest: +SKIP
    >>> t = demo_target("digits")                                         # doctest: +SKIP
    >>> x, y = t.data.eval_split()                                        # doctest: +SKIP
    >>> r = run_evasion(t.model, x, y, "pgd", "linf", 0.1, samples=100)   # doctest: +SKIP
    >>> r.robust_accuracy < r.clean_accuracy                              # doctest: +SKIP
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion.attacks.evasion.apgd import APGD
from bastion.attacks.evasion.base import check_eps, check_norm
from bastion.attacks.evasion.fgsm import FGSM
from bastion.attacks.evasion.hopskipjump import HopSkipJump
from bastion.attacks.evasion.pgd import PGD
from bastion.attacks.evasion.square import SquareAttack
from bastion.core.errors import InvalidInputError, QueryBudgetExceeded
from bastion.core.model import ModelAdapter, predict_labels

WHITE_BOX_ATTACKS: tuple[str, ...] = ("fgsm", "pgd", "apgd-ce", "apgd-dlr")
BLACK_BOX_ATTACKS: tuple[str, ...] = ("square", "hsj")
ATTACK_NAMES: tuple[str, ...] = WHITE_BOX_ATTACKS + BLACK_BOX_ATTACKS
DEFAULT_STEPS: dict[str, int] = {"fgsm": 1, "pgd": 20, "apgd-ce": 50, "apgd-dlr": 50, "square": 1000, "hsj": 20}

Attack = FGSM | PGD | APGD | SquareAttack | HopSkipJump


@dataclass
class EvasionResult:
    """What one evasion run measured. ``success[i]``: sample i was classified correctly and its
    adversarial example is not. ``robust_accuracy`` counts clean errors as non-robust."""

    attack: str
    norm: str
    eps: float
    steps: int
    samples: int
    seed: int
    x_adv: np.ndarray
    y: np.ndarray
    pred_clean: np.ndarray
    pred_adv: np.ndarray
    clean_accuracy: float
    robust_accuracy: float
    success: np.ndarray
    duration_s: float
    samples_per_s: float
    queries: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def attack_success_rate(self) -> float:
        """Fraction of correctly classified samples the attack fooled."""
        correct = int((self.pred_clean == self.y).sum())
        return float(self.success.sum() / correct) if correct else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (no arrays): every number with its parameters."""
        return {
            "attack": self.attack,
            "norm": self.norm,
            "eps": self.eps,
            "steps": self.steps,
            "samples": self.samples,
            "seed": self.seed,
            "clean_accuracy": round(self.clean_accuracy, 6),
            "robust_accuracy": round(self.robust_accuracy, 6),
            "attack_success_rate": round(self.attack_success_rate, 6),
            "n_success": int(self.success.sum()),
            "duration_s": round(self.duration_s, 4),
            "samples_per_s": round(self.samples_per_s, 2),
            "queries": self.queries,
            "params": self.params,
        }


def make_attack(
    attack: str,
    norm: str,
    eps: float,
    steps: int | None = None,
    seed: int = 0,
    clip_min: float | None = 0.0,
    clip_max: float | None = 1.0,
    **kw: Any,
) -> Attack:
    """Build an attack object by CLI name (``fgsm``, ``pgd``, ``apgd-ce``, ``apgd-dlr``, ``square``, ``hsj``)."""
    if attack not in ATTACK_NAMES:
        raise InvalidInputError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACK_NAMES)}")
    n = check_norm(norm)
    e = check_eps(eps)
    s = DEFAULT_STEPS[attack] if steps is None else int(steps)
    if s < 1:
        raise InvalidInputError(f"steps must be >= 1, got {s}")
    common: dict[str, Any] = {"clip_min": clip_min, "clip_max": clip_max, "seed": seed}
    if attack == "fgsm":
        return FGSM(e, n, **common, **kw)
    if attack == "pgd":
        return PGD(e, n, steps=s, **common, **kw)
    if attack in ("apgd-ce", "apgd-dlr"):
        return APGD(e, n, steps=s, loss="ce" if attack == "apgd-ce" else "dlr", **common, **kw)
    if attack == "square":
        return SquareAttack(e, n, n_queries=s, **common, **kw)
    return HopSkipJump(e, n, max_iter=s, **common, **kw)


def _validate(model: ModelAdapter, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from bastion.models.adapters import check_batch

    xa = check_batch(x, model.input_spec)
    ya = np.asarray(y)
    if ya.ndim != 1 or len(ya) != len(xa):
        raise InvalidInputError(f"labels must be a 1-D array with one label per sample; got shape {ya.shape} "
                                f"for {len(xa)} samples")
    if not np.issubdtype(ya.dtype, np.integer):
        if not np.issubdtype(ya.dtype, np.number) or not np.all(np.mod(ya, 1) == 0):
            raise InvalidInputError(f"labels must be integer class indices, got dtype {ya.dtype}")
    ya = ya.astype(np.int64)
    if len(ya) and (ya.min() < 0 or ya.max() >= model.n_classes):
        raise InvalidInputError(f"labels must be in [0, {model.n_classes - 1}]; found {ya.min()}..{ya.max()}")
    if len(xa) == 0:
        raise InvalidInputError("no samples to attack")
    return xa, ya


def _labels(model: ModelAdapter, module: nn.Module | None, x: np.ndarray) -> np.ndarray:
    if module is not None:
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), 1024):
                out.append(module(torch.from_numpy(x[i : i + 1024])).argmax(1))
        return torch.cat(out).numpy()
    return predict_labels(model, x)


def run_evasion(
    model: ModelAdapter,
    x: np.ndarray,
    y: np.ndarray,
    attack: str,
    norm: str,
    eps: float,
    steps: int | None = None,
    samples: int | None = None,
    seed: int = 0,
    **kw: Any,
) -> EvasionResult:
    """Attack the first ``samples`` samples (all when None) and measure clean and robust accuracy.

    ``kw`` may hold ``clip_min``/``clip_max`` (default: the model's ``input_spec``) and any
    attack-specific option (``restarts``, ``step_size``, ``p_init``, ``batch_size``…).
    """
    if attack not in ATTACK_NAMES:
        raise InvalidInputError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACK_NAMES)}")
    module: nn.Module | None = getattr(model, "module", None)
    if attack in WHITE_BOX_ATTACKS and module is None:
        raise InvalidInputError(
            f"attack {attack!r} needs gradients, but this model ({type(model).__name__}) is not differentiable; "
            "use a black-box attack: --attack square (scores) or --attack hsj (labels only)")
    xa, ya = _validate(model, x, y)
    if samples is not None:
        if samples < 1:
            raise InvalidInputError(f"samples must be >= 1, got {samples}")
        xa, ya = xa[:samples], ya[:samples]
    spec = model.input_spec
    clip_min = kw.pop("clip_min", spec.clip_min)
    clip_max = kw.pop("clip_max", spec.clip_max)
    atk = make_attack(attack, norm, eps, steps, seed, clip_min, clip_max, **kw)
    t0 = time.perf_counter()
    pred_clean = _labels(model, module, xa)
    correct = pred_clean == ya
    x_adv = xa.copy()
    if correct.any():
        idx = np.flatnonzero(correct)
        xt, yt = torch.from_numpy(xa[idx]), torch.from_numpy(ya[idx])
        target: Any = module if module is not None else model
        x_adv[idx] = atk(target, xt, yt).numpy()
    try:
        pred_adv = _labels(model, module, x_adv)
    except QueryBudgetExceeded as exc:
        # a budgeted endpoint: trust the labels the attack itself saw at the returned points
        seen = getattr(atk, "last_pred", None)
        if seen is None or not correct.any():
            raise QueryBudgetExceeded(f"the query budget ran out before the adversarial examples could be "
                                      f"checked ({exc}); raise the budget or lower --samples/--steps") from exc
        pred_adv = pred_clean.copy()
        pred_adv[np.flatnonzero(correct)] = np.asarray(seen)
    duration = time.perf_counter() - t0
    success = correct & (pred_adv != ya)
    queries = getattr(atk, "queries_used", None)
    n_steps = DEFAULT_STEPS[attack] if steps is None else int(steps)
    params: dict[str, Any] = {**atk.params(), "samples": len(xa), "steps": n_steps,
                              "threads": getattr(atk, "threads", None) or torch.get_num_threads()}
    if getattr(atk, "budget_exhausted", False):
        params["budget_exhausted"] = True
    remaining = getattr(model, "remaining", None)
    if remaining is not None:
        params["query_budget_remaining"] = remaining
    return EvasionResult(
        attack=attack, norm=atk.norm, eps=atk.eps, steps=n_steps,
        samples=len(xa), seed=seed, x_adv=x_adv, y=ya, pred_clean=pred_clean, pred_adv=pred_adv,
        clean_accuracy=float(correct.mean()), robust_accuracy=float((pred_adv == ya).mean()),
        success=success, duration_s=duration, samples_per_s=len(xa) / max(duration, 1e-9),
        queries=queries, params=params,
    )
