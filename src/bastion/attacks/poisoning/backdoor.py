"""BadNets trigger patches (dirty label) and an interpolation clean-label variant.

- ``badnets``: stamp a trigger on ``rate``·n samples of other classes and relabel them to the
  target class (Gu et al. 2017, "BadNets", https://arxiv.org/abs/1708.06733).
- ``clean_label``: stamp the trigger only on samples that already belong to the target class
  (labels unchanged), after blending them towards other-class content so the model leans on
  the trigger (Turner et al. 2019's idea with interpolation instead of an adversarial
  perturbation; the adversarial version is :func:`~bastion.attacks.poisoning.label_consistent`).

Images (``(n, c, h, w)``) get a square patch in a corner; tabular rows (``(n, d)``) get a
fixed set of features set to ``value``.

Examples:
    >>> import numpy as np
    >>> x = np.zeros((100, 1, 8, 8), dtype=np.float32); y = np.arange(100) % 10
    >>> p = badnets(x, y, target=0, rate=0.1, seed=0)
    >>> float(p.x[p.indices[0], 0, -1, -1]), bool((p.y[p.indices] == 0).all())
    (1.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from bastion.attacks.poisoning.base import (
    ArrayTrigger,
    PoisonedSet,
    choose_clean,
    dirty_label,
    poisoning_inputs,
)
from bastion.core.errors import InvalidInputError

Corner = Literal["bottom-right", "top-left", "bottom-left", "top-right"]


@dataclass(frozen=True)
class TriggerSpec(ArrayTrigger, methods=("badnets", "clean_label")):
    """The trigger: a ``size``×``size`` patch of ``value`` in an image corner, or ``size`` tabular
    features (the last ones, or ``features``) set to ``value``."""

    size: int = 3
    value: float = 1.0
    position: Corner = "bottom-right"
    features: tuple[int, ...] = ()

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TriggerSpec:
        return cls(size=int(params.get("size", 3)), value=float(params.get("value", 1.0)),
                   position=params.get("position", "bottom-right"), features=tuple(params.get("features", ())))

    def apply_numpy(self, a: np.ndarray) -> np.ndarray:
        """A copy of ``a`` with the trigger stamped on every sample (``apply``: numpy or torch, same kind out)."""
        return apply_trigger(a, self)


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
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, target: int, rate: float, seed: int = 0,
    trigger: TriggerSpec | None = None,
) -> PoisonedSet:
    """Dirty-label BadNets: ``rate``·n non-target samples get the trigger and label ``target``."""
    x, y = poisoning_inputs(x, y, rate, target)
    return dirty_label(x, y, target, rate, seed, "badnets", trigger or TriggerSpec())


def clean_label(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, target: int, rate: float, seed: int = 0,
    trigger: TriggerSpec | None = None, blend: float = 0.3,
) -> PoisonedSet:
    """Clean-label backdoor: ``rate``·n target-class samples (at most the class), blended with
    other-class content (weight ``blend``) and stamped with the trigger; labels stay correct."""
    x, y = poisoning_inputs(x, y, rate, target)
    t = trigger or TriggerSpec()
    idx, capped = choose_clean(y, target, rate, seed)
    rng = np.random.default_rng(seed)
    donors = rng.choice(np.flatnonzero(y != target), size=len(idx), replace=True)
    x_new = np.array(x, copy=True)
    mixed = (1.0 - blend) * x[idx] + blend * x[donors]
    x_new[idx] = apply_trigger(mixed.astype(x.dtype), t)
    params = t.record(target, rate, seed, blend=blend, capped_at_class_size=capped)
    return PoisonedSet(x_new, y.copy(), idx, "clean_label", params, t)
