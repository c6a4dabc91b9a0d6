"""Typed configuration of an adversarial-training run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from bastion.core.errors import ConfigError

TrainingMethod = Literal["pgd", "fast", "trades"]
METHODS: tuple[TrainingMethod, ...] = ("pgd", "fast", "trades")
Bf16Mode = Literal["off", "attack", "all"]
LrSchedule = Literal["cosine", "onecycle", "constant"]
BudgetClock = Literal["wall", "cpu"]


@dataclass(frozen=True)
class AdversarialTrainingConfig:
    """Everything that determines an adversarial-training run (recorded in the training record).

    ``eps`` is the L∞ budget in input units. ``eps_ramp_epochs``: ε grows linearly from 0 to ``eps``
    over these epochs (stabilises early training, Madry/Gowal). ``train_steps``/``step_size``: the
    inner PGD (step 2.5 ε / steps by default). ``trades_beta``: weight of the TRADES robust term.
    Early stopping keeps the epoch with the best robust validation accuracy (robust overfitting,
    Rice et al. 2020) and stops after ``patience`` epochs without improvement. Catastrophic
    overfitting (fast mode): robust validation accuracy falling by more than ``co_drop`` from its
    best, or under PGD while FGSM accuracy stays high, restores the best weights and continues with
    PGD (``co_fallback="pgd"``) or stops (``"stop"``). ``time_budget_s``: no epoch is started that the
    last epoch's duration says would end past the budget; ``budget_clock="cpu"`` measures it as process
    CPU seconds / cores used (the dedicated-machine equivalent on a shared, loaded CPU) instead of wall
    seconds. ``bf16``: run the inner attack (``"attack"``) or also the weight update (``"all"``) under
    bfloat16 autocast (AMX/AVX-512-bf16 CPUs, CUDA); validation stays fp32. ``augment_shift``: random
    translation of image batches by up to this many pixels (zero padded). ``lr_schedule``: cosine
    over ``epochs``, one-cycle (linear warm-up over the first 30% of steps, then linear decay to 0,
    per batch), or constant. ``anneal_to_budget``: with a time budget, the schedule's progress is the
    further along of planned steps and budget used, so a run that the budget cuts short (a loaded
    machine) still ends with the learning rate annealed (results then depend on the machine's speed).
    """

    method: TrainingMethod = "pgd"
    eps: float = 0.3
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    train_steps: int = 7
    step_size: float | None = None
    eps_ramp_epochs: int = 0
    trades_beta: float = 6.0
    clip_min: float | None = 0.0
    clip_max: float | None = 1.0
    val_fraction: float = 0.1
    val_samples: int = 500
    val_steps: int = 10
    patience: int = 0
    co_drop: float = 0.2
    co_fallback: Literal["pgd", "stop"] = "pgd"
    time_budget_s: float | None = None
    budget_clock: BudgetClock = "wall"
    bf16: Bf16Mode = "off"
    augment_shift: int = 0
    lr_schedule: LrSchedule = "cosine"
    anneal_to_budget: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if not self.eps > 0:
            raise ConfigError(f"eps must be > 0, got {self.eps}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.train_steps < 1 or self.val_steps < 1:
            raise ConfigError("train_steps and val_steps must be >= 1")
        if not 0.0 <= self.val_fraction < 0.9:
            raise ConfigError(f"val_fraction must be in [0, 0.9), got {self.val_fraction}")
        if self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("batch_size must be >= 1 and lr > 0")
        for name, value, allowed in (("bf16", self.bf16, ("off", "attack", "all")),
                                     ("lr_schedule", self.lr_schedule, ("cosine", "onecycle", "constant")),
                                     ("budget_clock", self.budget_clock, ("wall", "cpu"))):
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.augment_shift < 0:
            raise ConfigError(f"augment_shift must be >= 0, got {self.augment_shift}")

    def eps_at(self, epoch: int) -> float:
        """ε used in (0-based) ``epoch`` under the linear ramp."""
        if self.eps_ramp_epochs <= 0:
            return self.eps
        return self.eps * min(1.0, (epoch + 1) / self.eps_ramp_epochs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
