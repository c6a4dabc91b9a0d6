"""The training record: one JSON document beside the model, saying how it was made robust."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EpochRecord:
    """Metrics of one epoch. Accuracies are on the validation split; robust = PGD-``val_steps`` at ``eps``.

    ``elapsed_s`` is wall time since the start; ``cpu_s`` the process CPU time (all threads) since the
    start, ``load_avg`` the 1-minute load average of the machine at the end of the epoch (so a run on
    a shared CPU can be judged: CPU seconds / cores is the dedicated-machine equivalent).
    """

    epoch: int
    method: str
    eps_train: float
    train_loss: float
    train_accuracy: float
    clean_accuracy: float
    robust_accuracy: float
    fgsm_accuracy: float
    elapsed_s: float
    cpu_s: float = 0.0
    load_avg: float | None = None
    lr: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class TrainingRecord:
    """How a model was adversarially trained: config, per-epoch curve, events, chosen epoch."""

    config: dict[str, Any]
    architecture: str = ""
    epochs: list[EpochRecord] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_robust_accuracy: float | None = None
    best_clean_accuracy: float | None = None
    stopped_early: bool = False
    catastrophic_overfitting: bool = False
    duration_s: float = 0.0
    cpu_s: float = 0.0
    cores: int = 1
    n_train: int = 0
    n_val: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def event(self, kind: str, epoch: int, **details: Any) -> None:
        self.events.append({"event": kind, "epoch": epoch, **details})

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "bastion.adversarial_training",
            "architecture": self.architecture,
            "config": self.config,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "best_epoch": self.best_epoch,
            "best_robust_accuracy": self.best_robust_accuracy,
            "best_clean_accuracy": self.best_clean_accuracy,
            "stopped_early": self.stopped_early,
            "catastrophic_overfitting": self.catastrophic_overfitting,
            "duration_s": round(self.duration_s, 2),
            "cpu_s": round(self.cpu_s, 2),
            "cores": self.cores,
            "dedicated_equivalent_s": round(self.cpu_s / max(1, self.cores), 2),
            "curve": [e.to_dict() for e in self.epochs],
            "events": self.events,
            **({"extra": self.extra} if self.extra else {}),
        }
