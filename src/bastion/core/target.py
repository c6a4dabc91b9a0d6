"""``Target``: what an assessment looks at — a model, its data, metadata and fingerprints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from bastion.core.domain import InputRange
from bastion.core.errors import InvalidInputError
from bastion.core.model import ModelAdapter

DataKind = Literal["image", "tabular", "text", "other"]


@dataclass
class DataSplits:
    """Arrays a check may use. ``train`` = the model's training set (members), ``test`` = held out."""

    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    x_pop: np.ndarray | None = None
    y_pop: np.ndarray | None = None

    def eval_split(self) -> tuple[np.ndarray, np.ndarray]:
        """The split to attack: test if present, else train."""
        if self.x_test is not None and self.y_test is not None:
            return self.x_test, self.y_test
        if self.x_train is not None and self.y_train is not None:
            return self.x_train, self.y_train
        raise InvalidInputError("the target has no labelled data; pass --data with x/y arrays")

    @property
    def has_train(self) -> bool:
        return self.x_train is not None and self.y_train is not None

    @property
    def has_test(self) -> bool:
        return self.x_test is not None and self.y_test is not None


@dataclass
class TargetMetadata:
    """Facts about the task that checks and reports use."""

    task: str = "classification"
    data_kind: DataKind = "other"
    class_names: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    sensitive_features: list[str] = field(default_factory=list)
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "data_kind": self.data_kind,
            "class_names": list(self.class_names),
            "feature_names": list(self.feature_names),
            "sensitive_features": list(self.sensitive_features),
            "description": self.description,
            "extra": self.extra,
        }


@dataclass
class Target:
    """A model under assessment with its data.

    ``fingerprints`` holds sha256 digests, e.g. ``{"model": "...", "data": "..."}``.
    ``model_format`` is the loader's name for the file type (``torchscript``, ``onnx``, ``skops``,
    ``torch-export``, ``remote``, ``demo``); ``model_path`` the file it came from (if any).
    """

    name: str
    model: ModelAdapter
    data: DataSplits = field(default_factory=DataSplits)
    metadata: TargetMetadata = field(default_factory=TargetMetadata)
    fingerprints: dict[str, str] = field(default_factory=dict)
    model_format: str = "unknown"
    model_path: str | None = None
    data_path: str | None = None

    def input_range(self) -> InputRange:
        """The model's valid input range and where it came from (flag, sidecar, model, inferred from data)."""
        spec = self.model.input_spec
        rec = self.metadata.extra.get("input_range")
        detail = str(rec.get("detail", "")) if isinstance(rec, dict) and \
            (rec.get("clip_min"), rec.get("clip_max")) == (spec.clip_min, spec.clip_max) else ""
        return InputRange(spec.clip_min, spec.clip_max, spec.range_source or "unknown", detail)

    @property
    def is_white_box(self) -> bool:
        """True when the model exposes a differentiable ``torch.nn.Module``."""
        return getattr(self.model, "module", None) is not None

    def describe(self) -> dict[str, Any]:
        """JSON description recorded in the assessment."""
        spec = self.model.input_spec
        d = self.data
        return {
            "name": self.name,
            "model_format": self.model_format,
            "model_path": self.model_path,
            "data_path": self.data_path,
            "white_box": self.is_white_box,
            "n_classes": self.model.n_classes,
            "input_spec": spec.to_dict(),
            "input_range": self.input_range().to_dict(),
            "n_train": None if d.x_train is None else len(d.x_train),
            "n_test": None if d.x_test is None else len(d.x_test),
            "fingerprints": dict(self.fingerprints),
            "metadata": self.metadata.to_dict(),
        }
