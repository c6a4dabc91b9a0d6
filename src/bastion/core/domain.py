"""The input domain: which values a model input may take, and where Bastion learned it.

Every command that perturbs or trains (assess, attack evasion/poison/privacy, harden *) needs the
valid value range of the model's input: a perturbation that leaves it is not an input the model can
ever receive, and a budget ε means nothing without the range it is a fraction of. The range is
resolved once, in this order, and the result says which source gave it:

==========================  =======================================================================
source                      from
==========================  =======================================================================
``flag``                    ``--clip-min`` / ``--clip-max`` (or ``clip_min=`` in Python)
``sidecar``                 ``MODEL.bastion.json`` beside the model file
``model``                   the model file's own metadata (TorchScript extra file ``bastion.json``,
                            ONNX ``metadata_props``) or a built-in demo's recorded range
``inferred from data``      the evaluation/training data, by :func:`infer_range` (rules below)
==========================  =======================================================================

Inference from data (:func:`infer_range`) — image-like data is data whose samples have two or more
dimensions (``(28, 28)``, ``(1, 28, 28)``, ``(3, 32, 32)``), or whose model takes such inputs:

=========================================================  ============================================
observed values (all splits)                               inferred range
=========================================================  ============================================
image, within [0, 1]                                       [0, 1]
image, ≥ 0, maximum in (127, 255] (8-bit pixels)           [0, 255]
image, within [-1, 1], reaching below -0.9 and above 0.9   [-1, 1] (the ``(x - 0.5) / 0.5`` convention)
image, anything else (negative values of standardised      refused: :class:`InputRangeError` names the
data, ``[0, 16]`` integers, values above 255 …)            observed range and the flags to pass
tabular (1-D samples)                                      unbounded; ε scaled by the median feature std
=========================================================  ============================================

Examples:
    >>> import numpy as np
    >>> infer_range(np.random.default_rng(0).random((10, 1, 8, 8)), image=True).describe()
    'input range [0, 1] (inferred from data)'
    >>> infer_range(np.zeros((10, 30)) + 5.0, image=False).describe()
    'input range unbounded (inferred from data: tabular data)'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from bastion.core.errors import ConfigError

RangeSource = Literal["flag", "sidecar", "model", "inferred from data"]
RANGE_SOURCES: tuple[str, ...] = ("flag", "sidecar", "model", "inferred from data")
EIGHT_BIT_MIN_MAX = 127.0  # an 8-bit image set whose brightest pixel is at most 127 is not told apart from [0, 127]
SYMMETRIC_REACH = 0.9  # data in [-1, 1] must reach both ends this far to be read as the [-1, 1] convention


class InputRangeError(ConfigError):
    """The valid input range cannot be inferred safely; the message says which flags to pass."""


@dataclass(frozen=True)
class InputRange:
    """A resolved value range: ``clip_min``/``clip_max`` (``None`` = unbounded) and where it came from.

    ``source`` is one of :data:`RANGE_SOURCES`, or ``"clip_min: flag, clip_max: sidecar"`` when the two
    bounds came from different places; ``detail`` says what the data looked like when inferred.
    """

    clip_min: float | None
    clip_max: float | None
    source: str
    detail: str = ""

    @property
    def bounded(self) -> bool:
        return self.clip_min is not None and self.clip_max is not None

    def describe(self) -> str:
        """One line for text output and reports, e.g. ``input range [0, 1] (inferred from data)``."""
        if self.clip_min is None and self.clip_max is None:
            rng = "unbounded"
        else:
            rng = f"[{_num(self.clip_min, '-inf')}, {_num(self.clip_max, 'inf')}]"
        why = self.source if not (self.detail and self.clip_min is None and self.clip_max is None) \
            else f"{self.source}: {self.detail}"
        return f"input range {rng} ({why})"

    def to_dict(self) -> dict[str, Any]:
        return {"clip_min": self.clip_min, "clip_max": self.clip_max, "source": self.source, "detail": self.detail}


def _num(v: float | None, none: str) -> str:
    return none if v is None else f"{v:g}"


@dataclass(frozen=True)
class _Observed:
    lo: float
    hi: float
    mean: float
    std: float
    integer: bool


def _observe(arrays: Sequence[np.ndarray]) -> _Observed:
    """Min, max, mean, std and integrality over every array, without concatenating them."""
    n = 0
    total = total_sq = 0.0
    lo, hi = np.inf, -np.inf
    integer = True
    for a in arrays:
        flat = np.asarray(a).reshape(-1)
        if flat.size == 0:
            continue
        lo, hi = min(lo, float(np.min(flat))), max(hi, float(np.max(flat)))
        f64 = flat.astype(np.float64, copy=False)
        total, total_sq, n = total + float(f64.sum()), total_sq + float(np.square(f64).sum()), n + flat.size
        sample = flat[:: max(1, flat.size // 100_000)]
        integer = integer and bool(np.all(np.mod(sample, 1) == 0))
    if n == 0:
        raise InputRangeError("no data to infer the input range from; pass --clip-min/--clip-max")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputRangeError("the data holds NaN or infinite values; the input range cannot be inferred")
    mean = total / n
    return _Observed(lo, hi, mean, float(np.sqrt(max(total_sq / n - mean * mean, 0.0))), integer)


def infer_range(x: np.ndarray | Sequence[np.ndarray], image: bool) -> InputRange:
    """The valid range of inputs like ``x`` (one array or several splits) by the module docstring's rules.

    ``image``: samples are images (2+ dimensions per sample). Raises :class:`InputRangeError` when
    image data fits no convention (e.g. standardised pixels) rather than guessing.
    """
    src: RangeSource = "inferred from data"
    if not image:
        return InputRange(None, None, src, "tabular data")
    o = _observe([x] if isinstance(x, np.ndarray) else list(x))
    lo, hi = o.lo, o.hi
    seen = f"{'integer-valued' if o.integer else 'real-valued'} image data in [{lo:.4g}, {hi:.4g}]"
    if lo >= 0.0 and hi <= 1.0:
        return InputRange(0.0, 1.0, src, seen)
    if lo >= 0.0 and EIGHT_BIT_MIN_MAX < hi <= 255.0:
        return InputRange(0.0, 255.0, src, seen)
    if lo >= -1.0 and hi <= 1.0 and lo <= -SYMMETRIC_REACH and hi >= SYMMETRIC_REACH:
        return InputRange(-1.0, 1.0, src, seen)
    if lo < 0.0:
        looks = (f"it looks standardised (mean {o.mean:.2f}, std {o.std:.2f})" if abs(o.mean) < 0.5 * max(o.std, 1e-12)
                 else f"it holds negative values (mean {o.mean:.2f}, std {o.std:.2f})")
        hint = ("for pixels p in [0, 1] standardised as (p - m) / s, the valid range is "
                "--clip-min -m/s --clip-max (1 - m)/s")
    else:
        looks = "it matches no pixel convention ([0, 1], 8-bit [0, 255], [-1, 1])"
        hint = f"e.g. --clip-min 0 --clip-max {hi:g} if {hi:g} is the largest valid value"
    raise InputRangeError(
        f"cannot infer the valid input range of {seen}: {looks}. Bastion will not guess a range for "
        f"image inputs: pass --clip-min/--clip-max in the model's input units ({hint}), or write "
        "clip_min/clip_max into the model's sidecar MODEL.bastion.json"
    )


def resolve_range(
    *,
    flag: tuple[float | None, float | None] = (None, None),
    sidecar: tuple[float | None, float | None] | None = None,
    model: tuple[float | None, float | None] | None = None,
    data: np.ndarray | None = None,
    image: bool = False,
) -> InputRange:
    """The input range by precedence flag > sidecar > model > inferred from data (each bound separately).

    A bound given by a higher source wins; a source that gives either bound counts as stating the
    range (a sidecar with only ``clip_min`` leaves ``clip_max`` unbounded rather than guessed). Data
    is consulted only when no source states anything.
    """
    sources: list[tuple[str, tuple[float | None, float | None]]] = [("flag", flag)]
    for name, given in (("sidecar", sidecar), ("model", model)):
        if given is not None:
            sources.append((name, given))
    stated = [(n, b) for n, b in sources if b[0] is not None or b[1] is not None]
    if not stated:
        if data is None:
            return InputRange(None, None, "unknown", "no flag, sidecar, model metadata or data")
        return infer_range(data, image)
    if len(stated) == 1 or stated[0][0] != "flag":
        name, (lo, hi) = stated[0]
        out_lo, out_hi, src_lo, src_hi = lo, hi, name, name
    else:  # flags first, then the next stating source fills the bound the flags left open
        (_, (lo, hi)), (nxt, (lo2, hi2)) = stated[0], stated[1]
        out_lo, src_lo = (lo, "flag") if lo is not None else (lo2, nxt)
        out_hi, src_hi = (hi, "flag") if hi is not None else (hi2, nxt)
    lo_f = None if out_lo is None else float(out_lo)
    hi_f = None if out_hi is None else float(out_hi)
    if lo_f is not None and hi_f is not None and not lo_f < hi_f:
        raise ConfigError(f"the input range [{lo_f:g}, {hi_f:g}] is empty: clip_min must be below clip_max")
    source = src_lo if src_lo == src_hi else f"clip_min: {src_lo}, clip_max: {src_hi}"
    return InputRange(lo_f, hi_f, source)
