"""``MembershipConfig``: the user-facing options of every membership method (each one is recorded with
the result), translated into the configuration of the method that runs (each method reads only its own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from bastion.attacks.inference.membership.label_only import LabelOnlyConfig
from bastion.attacks.inference.membership.lira import LiraConfig, LiraScorer, LiraVariance
from bastion.attacks.inference.membership.references import ReferenceConfig
from bastion.attacks.inference.membership.rmia import RmiaConfig
from bastion.attacks.inference.membership.threshold import ThresholdConfig
from bastion.attacks.inference.planning import ReferencePlanConfig
from bastion.attacks.inference.reference import OPTIMIZERS, OptimizerName, Recipe
from bastion.core.errors import ConfigError

MembershipMethod = Literal["loss", "confidence", "label_only", "lira", "rmia"]
MEMBERSHIP_METHODS: tuple[str, ...] = get_args(MembershipMethod)


@dataclass(frozen=True)
class MembershipConfig:
    """Parameters of a membership attack (every one is recorded with the result)."""

    method: MembershipMethod = "lira"
    n_reference: int | None = None  # None: as many as time_budget_s affords (planning.N_MIN..N_MAX)
    time_budget_s: float | None = 180.0  # cloning + recipe fit + reference training + scoring
    reference_arch: Literal["clone", "proxy"] = "clone"  # the target's own architecture, re-initialised
    reference_epochs: int | None = None  # None: fit the recipe to the target; set: a fixed recipe
    reference_batch_size: int = 64
    reference_lr: float = 1e-3
    reference_optimizer: OptimizerName = "adam"
    reference_weight_decay: float = 0.0
    reference_subset_fraction: float = 0.5
    reference_set_size: int | None = None  # records per reference model (overrides the fraction)
    label_only_queries: int = 16
    label_only_noise: float = 0.05
    rmia_gamma: float = 2.0
    rmia_offline_a: float = 0.3
    rmia_population: int = 1000
    reference_mode: Literal["offline", "online"] = "online"
    augment: bool = False
    variance: LiraVariance = "shrunk"
    variance_prior: float = 4.0
    lira_scorer: LiraScorer = "learned"
    neighbours: int = 10  # learned LiRA scorer: neighbour-calibration features (k, 3k same label, k any); 0 = off
    delta: float = 1e-5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in MEMBERSHIP_METHODS:
            raise ConfigError(f"unknown membership method {self.method!r}; choose one of {', '.join(MEMBERSHIP_METHODS)}")
        if self.method in ("lira", "rmia") and self.n_reference is not None and self.n_reference < 2:
            raise ConfigError(f"{self.method} needs at least 2 reference models, got {self.n_reference}")
        if self.reference_mode not in ("online", "offline"):
            raise ConfigError(f"unknown reference mode {self.reference_mode!r}; choose online or offline")
        if self.reference_arch not in ("clone", "proxy"):
            raise ConfigError(f"unknown reference architecture {self.reference_arch!r}; choose clone or proxy")
        if self.reference_optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown reference optimiser {self.reference_optimizer!r}; choose one of "
                              f"{', '.join(OPTIMIZERS)}")
        if self.reference_epochs is not None and self.reference_epochs < 1:
            raise ConfigError(f"reference_epochs must be >= 1 (or unset to fit the recipe), got {self.reference_epochs}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ConfigError(f"time_budget_s must be > 0 seconds, got {self.time_budget_s}")
        if self.variance not in get_args(LiraVariance):
            raise ConfigError(f"unknown LiRA variance {self.variance!r}; choose one of "
                              f"{', '.join(get_args(LiraVariance))}")
        if self.lira_scorer not in get_args(LiraScorer):
            raise ConfigError(f"unknown LiRA scorer {self.lira_scorer!r}; choose one of {', '.join(get_args(LiraScorer))}")
        if self.neighbours < 0:
            raise ConfigError(f"neighbours must be >= 0 (0 turns neighbour calibration off), got {self.neighbours}")
        if self.reference_set_size is not None and self.reference_set_size < 1:
            raise ConfigError(f"reference_set_size must be >= 1, got {self.reference_set_size}")

    @property
    def uses_reference_models(self) -> bool:
        return self.method in ("lira", "rmia")

    @property
    def needs_population(self) -> bool:
        """Whether the attack needs attacker population data (``x_pop``)."""
        return self.method == "rmia" or (self.method == "lira" and self.reference_mode == "offline")

    def plan(self) -> ReferencePlanConfig:
        """How the reference models are chosen and trained (``planning.build_reference_models``)."""
        fixed = Recipe(self.reference_optimizer, self.reference_lr, self.reference_weight_decay,
                       self.reference_epochs or 30, self.reference_batch_size)
        return ReferencePlanConfig(self.n_reference, self.time_budget_s, self.reference_arch,
                                   "fit" if self.reference_epochs is None else "fixed", fixed, self.seed)

    # the configuration each method reads

    def threshold(self) -> ThresholdConfig:
        assert self.method in ("loss", "confidence")
        return ThresholdConfig(self.method)

    def label_only(self) -> LabelOnlyConfig:
        return LabelOnlyConfig(self.label_only_queries, self.label_only_noise, self.seed)

    def references(self) -> ReferenceConfig:
        return ReferenceConfig(self.method, self.plan(), self.reference_mode, self.reference_subset_fraction,
                               self.reference_set_size, self.needs_population)

    def lira(self) -> LiraConfig:
        return LiraConfig(self.variance, self.variance_prior, self.lira_scorer, self.neighbours, self.augment,
                          self.seed)

    def rmia(self) -> RmiaConfig:
        return RmiaConfig(self.rmia_gamma, self.rmia_offline_a, self.rmia_population, self.seed)
