"""The privacy statement written beside a DP-trained model: ``MODEL.privacy.json``.

Assessments and reports read it (``read_privacy_statement(model_path)``) to put the claimed ε
beside the measured membership-inference TPR at low FPR and the empirical ε lower bound.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bastion.core.errors import InvalidInputError

STATEMENT_VERSION = "1"


@dataclass
class PrivacyStatement:
    """What DP-SGD guarantees for one trained model (ε from the accountant, not the target)."""

    epsilon: float
    delta: float
    target_epsilon: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    epochs: int
    steps: int
    dataset_size: int
    accountant: str
    mechanism: str = "DP-SGD (Opacus), Poisson sampling, per-sample clipping"
    grad_sample_mode: str = "hooks"
    unit: str = "example-level"
    extra: dict[str, Any] = field(default_factory=dict)
    statement_version: str = STATEMENT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrivacyStatement:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def privacy_statement_path(model_path: str | Path) -> Path:
    p = Path(model_path)
    return p.with_name(p.name + ".privacy.json")


def read_privacy_statement(model_path: str | Path | None) -> PrivacyStatement | None:
    """The statement beside ``model_path``, or ``None`` when the model was not trained with DP."""
    if model_path is None:
        return None
    path = privacy_statement_path(model_path)
    if not path.is_file():
        return None
    try:
        return PrivacyStatement.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"privacy statement {path} is not valid: {exc}") from exc
