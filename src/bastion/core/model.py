"""The model-facing vocabulary: ``InputSpec`` and the ``ModelAdapter`` protocol.

Every model Bastion touches — a TorchScript file, an ONNX graph, a scikit-learn estimator,
a remote HTTP endpoint — is wrapped in a ``ModelAdapter``. Attacks, checks, defences and
the gateway only ever talk to this protocol (white-box attacks additionally use
``TorchAdapter.module`` from ``bastion.models``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class InputSpec:
    """What one model input looks like.

    ``shape`` is the per-sample shape (no batch dimension), e.g. ``(1, 28, 28)`` or ``(30,)``.
    ``clip_min``/``clip_max`` is the valid value range (``None`` = unbounded); ``range_source`` says
    where it came from (``flag``, ``sidecar``, ``model``, ``inferred from data``; ``None`` = not
    resolved yet — see :mod:`bastion.core.domain`).
    """

    shape: tuple[int, ...]
    dtype: str = "float32"
    clip_min: float | None = None
    clip_max: float | None = None
    max_batch: int = 1024
    range_source: str | None = None

    @property
    def n_features(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "clip_min": self.clip_min,
            "clip_max": self.clip_max,
            "max_batch": self.max_batch,
            "range_source": self.range_source,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        return cls(
            shape=tuple(int(v) for v in d["shape"]),
            dtype=str(d.get("dtype", "float32")),
            clip_min=d.get("clip_min"),
            clip_max=d.get("clip_max"),
            max_batch=int(d.get("max_batch", 1024)),
            range_source=d.get("range_source"),
        )


@runtime_checkable
class ModelAdapter(Protocol):
    """A classifier Bastion can query.

    ``predict_proba`` takes a batch shaped ``(n, *input_spec.shape)`` and returns
    ``(n, n_classes)`` class probabilities (rows sum to 1).
    """

    @property
    def n_classes(self) -> int: ...

    @property
    def input_spec(self) -> InputSpec: ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


def predict_labels(model: ModelAdapter, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Predicted class labels, computed in batches."""
    out = [np.argmax(model.predict_proba(x[i : i + batch_size]), axis=1) for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0,), dtype=np.int64)


@dataclass
class ModelInfo:
    """Where a model came from: file, format, digest, and free-form extra facts."""

    path: str | None = None
    format: str | None = None
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
