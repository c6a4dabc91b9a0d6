"""What every poisoning attack shares: ``PoisonedSet``, the ``Trigger`` protocol, the range, sampling.

A trigger is a small frozen dataclass with ``apply(x)`` (numpy in → numpy out, torch in → torch
out) and ``to_dict()``; ``trigger_from_params(method, params)`` rebuilds it from the parameters an
attack records (``PoisonedSet.params``, ``OUT.truth.json`` of ``bastion attack poison``), so the
attack success rate can be measured later on triggered *test* inputs with nothing but that record.

Triggers stay inside the valid input range: images are clipped to ``[clip_min, clip_max]``
(resolved by :mod:`bastion.core.domain` when the caller gives none).

Examples:
    >>> import numpy as np
    >>> from bastion.attacks.poisoning import blended
    >>> x = np.zeros((50, 1, 8, 8), dtype=np.float32); y = np.arange(50) % 5
    >>> p = blended(x, y, target=1, rate=0.1, seed=0)
    >>> t = trigger_from_params(p.method, p.params)
    >>> bool(np.allclose(t.apply(x[:3]), p.x[p.indices[:3]]))
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from bastion.core.domain import infer_range
from bastion.core.errors import InvalidInputError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


@dataclass
class PoisonedSet:
    """A poisoned training set, the ground truth of which samples were poisoned, and the attack's record.

    ``params`` holds everything needed to rebuild the trigger (``trigger_from_params(method, params)``);
    ``trigger`` is that trigger (``None`` for label flips).
    """

    x: np.ndarray
    y: np.ndarray
    indices: np.ndarray
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    trigger: Trigger | None = None

    @property
    def is_poisoned(self) -> np.ndarray:
        mask = np.zeros(len(self.y), dtype=bool)
        mask[self.indices] = True
        return mask

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` as torch tensors (float32 inputs, int64 labels)."""
        return torch.from_numpy(np.ascontiguousarray(self.x, dtype=np.float32)), torch.from_numpy(
            np.asarray(self.y, dtype=np.int64))


class Trigger(Protocol):
    """A backdoor trigger: ``apply`` stamps it on a batch; ``to_dict`` records it (JSON numbers)."""

    def apply(self, x: ArrayT) -> ArrayT: ...

    def to_dict(self) -> dict[str, Any]: ...


class ArrayTrigger:
    """Base of the triggers (frozen dataclasses) that work on numpy arrays: ``apply`` takes numpy or torch
    and returns the same kind, ``apply_numpy`` does the work; ``to_dict`` records the fields.

    ``class T(ArrayTrigger, methods=("name",))`` registers ``T.from_params`` as the trigger of those attack
    methods (:func:`register_trigger`).
    """

    def __init_subclass__(cls, methods: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if methods:
            register_trigger(*methods)(cls.from_params)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Trigger:
        """The trigger an attack recorded in ``params``."""
        raise NotImplementedError

    def apply(self, x: ArrayT) -> ArrayT:
        return like(self.apply_numpy(to_numpy(x)), x)

    def apply_numpy(self, a: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]  # (subclasses are dataclasses)

    def record(self, target: int, rate: float, seed: int, **extra: Any) -> dict[str, Any]:
        """What the attack that planted this trigger records: target, rate, seed, its own ``extra``
        settings, then the trigger's fields (all ``trigger_from_params`` needs)."""
        return {"target": target, "rate": rate, "seed": seed, **extra, **self.to_dict()}


def to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """A float32 numpy copy-free view where possible (tensors are detached to CPU)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def like(out: np.ndarray, ref: ArrayT) -> ArrayT:
    """``out`` in the kind of ``ref``: a tensor on ``ref``'s device and dtype, or a numpy array of its dtype."""
    if isinstance(ref, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(out)).to(device=ref.device, dtype=ref.dtype)
    return out.astype(ref.dtype, copy=False)


def image_range(x: np.ndarray, clip_min: float | None, clip_max: float | None) -> tuple[float, float]:
    """The range an image trigger must stay in: the caller's bounds, else inferred from ``x``."""
    if x.ndim < 3:
        raise InvalidInputError(f"this trigger needs images (n, c, h, w) or (n, h, w), got shape {x.shape}")
    if clip_min is not None and clip_max is not None:
        if not clip_min < clip_max:
            raise InvalidInputError(f"empty input range [{clip_min:g}, {clip_max:g}]")
        return float(clip_min), float(clip_max)
    r = infer_range(x, image=True)
    lo = clip_min if clip_min is not None else r.clip_min
    hi = clip_max if clip_max is not None else r.clip_max
    assert lo is not None and hi is not None  # infer_range bounds images or raises
    return float(lo), float(hi)


def check_poisoning(x: np.ndarray, y: np.ndarray, rate: float, target: int | None = None) -> None:
    if len(x) != len(y):
        raise InvalidInputError(f"x has {len(x)} samples but y has {len(y)}")
    if not 0.0 < rate < 1.0:
        raise InvalidInputError(f"poisoning rate {rate} must be in (0, 1)")
    if target is not None and target < 0:
        raise InvalidInputError(f"target class {target} must be >= 0")


def poisoning_inputs(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, rate: float,
                     target: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` as numpy arrays, checked by :func:`check_poisoning` (every attack starts here)."""
    xa, ya = to_numpy(x), to_numpy(y)
    check_poisoning(xa, ya, rate, target)
    return xa, ya


def image_inputs(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, rate: float, target: int,
                 clip_min: float | None, clip_max: float | None) -> tuple[np.ndarray, np.ndarray, float, float]:
    """:func:`poisoning_inputs` for an image trigger, with the range it must stay in (:func:`image_range`)."""
    xa, ya = poisoning_inputs(x, y, rate, target)
    return (xa, ya, *image_range(xa, clip_min, clip_max))


def dirty_label(x: np.ndarray, y: np.ndarray, target: int, rate: float, seed: int, method: str,
                trigger: ArrayTrigger, **extra: Any) -> PoisonedSet:
    """The dirty-label recipe: ``trigger`` on ``rate``·n non-target samples (:func:`choose_dirty`), relabelled
    ``target``; ``extra`` settings are recorded before the trigger's."""
    idx = choose_dirty(y, target, rate, seed)
    x_new, y_new = np.array(x, copy=True), y.copy()
    x_new[idx] = trigger.apply(x[idx])
    y_new[idx] = target
    return PoisonedSet(x_new, y_new, idx, method, trigger.record(target, rate, seed, **extra), trigger)


def choose_dirty(y: np.ndarray, target: int, rate: float, seed: int) -> np.ndarray:
    """``round(rate·n)`` (at least 1) sorted indices of non-target samples, for a dirty-label attack."""
    pool = np.flatnonzero(y != target)
    n_poison = max(1, round(rate * len(y)))
    if n_poison > len(pool):
        raise InvalidInputError(f"rate {rate} needs {n_poison} non-target samples, only {len(pool)} exist")
    return np.sort(np.random.default_rng(seed).choice(pool, size=n_poison, replace=False))


def choose_clean(y: np.ndarray, target: int, rate: float, seed: int) -> tuple[np.ndarray, bool]:
    """Sorted indices of target-class samples for a clean-label attack, and whether the class capped them.

    ``round(rate·n)`` samples, at most the whole target class (then ``capped`` is true: at 10 % of a
    10-class set, every target-class sample carries the trigger).
    """
    pool = np.flatnonzero(y == target)
    if len(pool) == 0:
        raise InvalidInputError(f"no samples of target class {target} to poison (clean-label attacks keep labels)")
    wanted = max(1, round(rate * len(y)))
    n_poison = min(len(pool), wanted)
    idx = np.sort(np.random.default_rng(seed).choice(pool, size=n_poison, replace=False))
    return idx, wanted > len(pool)


_BUILDERS: dict[str, Callable[[dict[str, Any]], Trigger]] = {}


def register_trigger(*methods: str) -> Callable[[Callable[[dict[str, Any]], Trigger]], Callable[[dict[str, Any]], Trigger]]:
    """Register a builder ``params -> Trigger`` for attack ``methods``; a method registered twice is an error."""
    def deco(fn: Callable[[dict[str, Any]], Trigger]) -> Callable[[dict[str, Any]], Trigger]:
        for m in methods:
            if m in _BUILDERS:
                raise ValueError(f"trigger for {m!r} registered twice")
            _BUILDERS[m] = fn
        return fn
    return deco


def trigger_from_params(method: str, params: dict[str, Any]) -> Trigger:
    """The test-time trigger of attack ``method`` from its recorded ``params`` (see the module docstring)."""
    import bastion.attacks.poisoning  # noqa: F401  (registers every attack's trigger)

    if method not in _BUILDERS:
        raise InvalidInputError(f"attack {method!r} has no trigger to apply (known: {', '.join(sorted(_BUILDERS))})")
    return _BUILDERS[method](params)


def attack_success_rate(
    predict: Callable[[np.ndarray], Any], x_test: np.ndarray, y_test: np.ndarray, target: int,
    trigger: Trigger | None = None,
) -> float:
    """Share of non-target test samples that the model sends to ``target`` once triggered.

    ``predict`` maps a batch to labels (e.g. ``lambda x: predict_labels(model, x)``); ``trigger``
    defaults to the BadNets patch of ``TriggerSpec()``.
    """
    from bastion.attacks.poisoning.backdoor import TriggerSpec

    keep = np.asarray(y_test) != target
    if not keep.any():
        raise InvalidInputError("no non-target test samples to measure attack success on")
    t: Trigger = trigger if trigger is not None else TriggerSpec()
    pred = np.asarray(predict(t.apply(np.asarray(x_test)[keep])))
    return float(np.mean(pred == target))
