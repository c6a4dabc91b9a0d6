"""Backdoor poisoning: BadNets trigger patches (dirty label) and a clean-label variant.

- ``badnets``: stamp a trigger on ``rate``·n samples of other classes and relabel them to the
  target class (Gu et al. 2017, "BadNets", https://arxiv.org/abs/1708.06733).
- ``clean_label``: stamp the trigger only on samples that already belong to the target class
  (labels unchanged), after blending them towards other-class content so the model leans on
  the trigger (Turner et al. 2019, "Label-Consistent Backdoor Attacks",
  https://arxiv.org/abs/1912.02771 — here with interpolation instead of adversarial
  perturbation).

Images (``(n, c, h, w)``) get a square patch in a corner; tabular rows (``(n, d)``) get a
fixed set of features set to an out-of-range value.

Examples:
    >>> import numpy as np
    >>> x = np.zeros((100, 1, 8, 8), dtype=np.float32); y = np.arange(100) % 10
    >>> p = badnets(x, y, target=0, rate=0.1, seed=0)
    >>> float(p.x[p.indices[0], 0, -1, -1]), bool((p.y[p.indices] == 0).all())
    (1.0, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from bastion.attacks.poisoning.label_flip import PoisonedSet, _check
from bastion.core.errors import InvalidInputError


@dataclass(frozen=True)
class TriggerSpec:
    """The trigger: a ``size``×``size`` patch of ``value`` in an image corner, or ``size`` tabular
    features (the last ones, or ``features``) set to ``value``."""

    size: int = 3
    value: float = 1.0
    position: Literal["bottom-right", "top-left", "bottom-left", "top-right"] = "bottom-right"
    features: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def apply_trigger(x: np.ndarray, trigger: TriggerSpec | None = None) -> np.ndarray:
    """A copy of ``x`` with the trigger stamped on every sample."""
    t = trigger or TriggerSpec()
    out = np.array(x, copy=True)
    if out.ndim >= 3:  # images (n, c, h, w) or (n, h, w)
        s = t.size
        rows = slice(-s, None) if t.position.startswith("bottom") else slice(0, s)
        cols = slice(-s, None) if t.position.endswith("right") else slice(0, s)
        if out.ndim == 4:
            out[:, :, rows, cols] = t.value
        else:
            out[:, rows, cols] = t.value
        return out
    if out.ndim == 2:
        feats = list(t.features) or list(range(out.shape[1] - t.size, out.shape[1]))
        if max(feats) >= out.shape[1]:
            raise InvalidInputError(f"trigger features {feats} out of range for {out.shape[1]} features")
        out[:, feats] = t.value
        return out
    raise InvalidInputError(f"cannot place a trigger on data of shape {x.shape}")


def badnets(
    x: np.ndarray, y: np.ndarray, target: int, rate: float, seed: int = 0, trigger: TriggerSpec | None = None
) -> PoisonedSet:
    """Dirty-label BadNets: ``rate``·n non-target samples get the trigger and label ``target``."""
    _check(x, y, rate)
    t = trigger or TriggerSpec()
    pool = np.flatnonzero(y != target)
    n_poison = max(1, round(rate * len(y)))
    if n_poison > len(pool):
        raise InvalidInputError(f"rate {rate} needs {n_poison} non-target samples, only {len(pool)} exist")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(pool, size=n_poison, replace=False))
    x_new, y_new = np.array(x, copy=True), y.copy()
    x_new[idx] = apply_trigger(x[idx], t)
    y_new[idx] = target
    return PoisonedSet(x_new, y_new, idx, "badnets", {"target": target, "rate": rate, "seed": seed, **t.to_dict()})


def clean_label(
    x: np.ndarray, y: np.ndarray, target: int, rate: float, seed: int = 0,
    trigger: TriggerSpec | None = None, blend: float = 0.3,
) -> PoisonedSet:
    """Clean-label backdoor: ``rate``·n target-class samples, blended with other-class content
    (weight ``blend``) and stamped with the trigger; labels stay correct."""
    _check(x, y, rate)
    t = trigger or TriggerSpec()
    pool = np.flatnonzero(y == target)
    others = np.flatnonzero(y != target)
    n_poison = min(len(pool), max(1, round(rate * len(y))))
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(pool, size=n_poison, replace=False))
    donors = rng.choice(others, size=n_poison, replace=True)
    x_new = np.array(x, copy=True)
    mixed = (1.0 - blend) * x[idx] + blend * x[donors]
    x_new[idx] = apply_trigger(mixed.astype(x.dtype), t)
    return PoisonedSet(
        x_new, y.copy(), idx, "clean_label", {"target": target, "rate": rate, "seed": seed, "blend": blend, **t.to_dict()}
    )


def attack_success_rate(
    predict: Any, x_test: np.ndarray, y_test: np.ndarray, target: int, trigger: TriggerSpec | None = None
) -> float:
    """Share of non-target test samples that the model sends to ``target`` once triggered.

    ``predict`` maps a batch to labels (e.g. ``lambda x: predict_labels(model, x)``).
    """
    keep = y_test != target
    if not keep.any():
        raise InvalidInputError("no non-target test samples to measure attack success on")
    pred = np.asarray(predict(apply_trigger(x_test[keep], trigger)))
    return float(np.mean(pred == target))
