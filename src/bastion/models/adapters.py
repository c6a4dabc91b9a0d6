"""In-process model adapters: torch modules and scikit-learn estimators.

``TorchAdapter`` is the white-box adapter: attacks use ``adapter.module`` (an ``nn.Module``
returning logits, in eval mode, parameters frozen) directly on tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from bastion.core.errors import InvalidInputError
from bastion.core.model import InputSpec


def check_batch(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Validate a batch against ``spec``: shape, finiteness. Returns float32 C-contiguous array."""
    arr = np.asarray(x)
    if arr.ndim == len(spec.shape):
        raise InvalidInputError(
            f"input has shape {arr.shape}, which looks like one sample; expected a batch (n, {', '.join(map(str, spec.shape))})"
        )
    if tuple(arr.shape[1:]) != tuple(spec.shape):
        if int(np.prod(arr.shape[1:])) == spec.n_features:
            arr = arr.reshape((arr.shape[0], *spec.shape))
        else:
            raise InvalidInputError(
                f"input has per-sample shape {tuple(arr.shape[1:])}; the model expects {tuple(spec.shape)}"
            )
    if not np.issubdtype(arr.dtype, np.number):
        raise InvalidInputError(f"input dtype {arr.dtype} is not numeric")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise InvalidInputError("input contains NaN or infinite values")
    return arr


def set_input_range(model: Any, clip_min: float | None, clip_max: float | None, source: str) -> None:
    """Give a loaded adapter the resolved input range (every Bastion adapter keeps its spec in ``_spec``)."""
    from dataclasses import replace

    spec = getattr(model, "_spec", None)
    if not isinstance(spec, InputSpec):
        raise InvalidInputError(f"cannot set the input range of a {type(model).__name__}")
    model._spec = replace(spec, clip_min=clip_min, clip_max=clip_max, range_source=source)


class LocalAdapter:
    """What every in-process adapter keeps: its input spec (in ``_spec``, which ``set_input_range`` updates),
    its class count, fixed when it is built, and its ``info``."""

    def __init__(self, input_spec: InputSpec, n_classes: int, info: dict[str, Any] | None) -> None:
        self._spec = input_spec
        self._n_classes = int(n_classes)
        self.info = dict(info or {})

    @property
    def n_classes(self) -> int:
        return self._n_classes

    @property
    def input_spec(self) -> InputSpec:
        return self._spec


class TorchAdapter(LocalAdapter):
    """A torch classifier returning logits, wrapped as a ``ModelAdapter``.

    Examples:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> m = TorchAdapter(net, InputSpec(shape=(4,)), n_classes=3)
        >>> m.predict_proba(np.zeros((2, 4), dtype=np.float32)).shape
        (2, 3)
    """

    def __init__(
        self,
        module: nn.Module,
        input_spec: InputSpec,
        n_classes: int | None = None,
        batch_size: int = 512,
        info: dict[str, Any] | None = None,
    ) -> None:
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        self.module = module
        self.batch_size = batch_size
        if n_classes is None:
            with torch.no_grad():
                n_classes = int(module(torch.zeros((1, *input_spec.shape))).shape[-1])
        super().__init__(input_spec, n_classes, info)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable forward pass (no ``no_grad``): for white-box attacks."""
        return self.module(x)

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        arr = check_batch(x, self._spec)
        outs = []
        with torch.inference_mode():
            for i in range(0, len(arr), self.batch_size):
                outs.append(self.module(torch.from_numpy(arr[i : i + self.batch_size])).float())
        if not outs:
            return np.zeros((0, self._n_classes), dtype=np.float32)
        return torch.cat(outs).numpy()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(self.predict_logits(x))
        return torch.softmax(z, dim=1).numpy()


class SklearnAdapter(LocalAdapter):
    """A scikit-learn classifier (anything with ``predict_proba``) as a black-box ``ModelAdapter``."""

    def __init__(self, estimator: Any, input_spec: InputSpec, info: dict[str, Any] | None = None) -> None:
        if not hasattr(estimator, "predict_proba"):
            raise InvalidInputError(
                f"{type(estimator).__name__} has no predict_proba; Bastion needs class probabilities"
            )
        self.estimator = estimator
        classes = getattr(estimator, "classes_", None)
        super().__init__(input_spec, len(classes) if classes is not None else int(estimator.predict_proba(
            np.zeros((1, input_spec.n_features), dtype=np.float32)).shape[1]), info)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        arr = check_batch(x, self._spec).reshape(len(x), -1)
        return np.asarray(self.estimator.predict_proba(arr), dtype=np.float64)


class _AffineInput(nn.Module):
    """``inner(shift + scale * z)``: the network seen in per-feature units."""

    def __init__(self, inner: nn.Module, shift: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.inner = inner
        self.shift: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("shift", shift)
        self.register_buffer("scale", scale)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner(self.shift + self.scale * z)


class AffineInputAdapter:
    """A model seen through ``x = shift + scale ⊙ z``, so that an L∞ budget in ``z`` is a per-feature budget.

    Tabular features live on different scales (a wine's proline varies by hundreds, its hue by tenths):
    an ε of 0.1 in ``z`` with ``scale`` = each feature's standard deviation moves every feature by a
    tenth of its own spread. Features with zero spread stay fixed. White-box when the base model is.

    Examples:
        >>> net = torch.nn.Linear(2, 2)
        >>> base = TorchAdapter(net, InputSpec(shape=(2,)), n_classes=2)
        >>> m = AffineInputAdapter(base, np.array([10.0, 0.0]), np.array([100.0, 0.1]))
        >>> m.to_x(m.to_z(np.array([[110.0, 0.05]]))).tolist()
        [[110.0, 0.05000000074505806]]
    """

    def __init__(self, base: Any, shift: np.ndarray, scale: np.ndarray) -> None:
        from dataclasses import replace

        spec = base.input_spec
        self.base = base
        self.shift = np.asarray(shift, np.float32).reshape(spec.shape)
        self.scale = np.asarray(scale, np.float32).reshape(spec.shape)
        self._spec = replace(spec, clip_min=None, clip_max=None)
        inner = getattr(base, "module", None)
        self.module: nn.Module | None = None if inner is None else _AffineInput(
            inner, torch.from_numpy(self.shift), torch.from_numpy(self.scale)).eval()
        self.label_only = bool(getattr(base, "label_only", False))
        self.info = dict(getattr(base, "info", {}) or {})

    @property
    def n_classes(self) -> int:
        return int(self.base.n_classes)

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def remaining(self) -> int | None:
        return getattr(self.base, "remaining", None)

    def to_z(self, x: np.ndarray) -> np.ndarray:
        """Per-feature units of ``x`` (features with zero scale map to 0)."""
        arr = check_batch(x, self.base.input_spec)
        safe = np.where(self.scale == 0, 1.0, self.scale)
        return np.where(self.scale == 0, 0.0, (arr - self.shift) / safe).astype(np.float32)

    def to_x(self, z: np.ndarray) -> np.ndarray:
        return (self.shift + self.scale * np.asarray(z, np.float32)).astype(np.float32)

    def predict_proba(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.base.predict_proba(self.to_x(check_batch(z, self._spec))))


def net_labels(net: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Arg-max labels of a torch classifier on ``x``, in batches, without gradients."""
    with torch.no_grad():
        return np.concatenate([net(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], dtype=np.float32)))
                               .argmax(1).numpy() for i in range(0, len(x), batch_size)])
