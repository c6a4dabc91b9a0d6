"""Typed configuration of a federated training run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from bastion.core.errors import ConfigError
from bastion.defenses.federated.partition import PartitionSpec

Aggregation = Literal["fedavg", "fedavgm", "fedadam", "fedprox", "median", "trimmed-mean", "krum"]
DPMode = Literal["none", "central", "local"]
AGGREGATIONS: tuple[str, ...] = ("fedavg", "fedavgm", "fedadam", "fedprox", "median", "trimmed-mean", "krum")
SERVER_OPT = ("fedavgm", "fedadam")
DEFAULT_SERVER_LR = {"fedavgm": 1.0, "fedadam": 0.01}
ROBUST = ("median", "trimmed-mean", "krum")


@dataclass
class FederatedConfig:
    """Everything that determines a federated run (recorded in the training record).

    ``malicious_clients`` > 0 turns the first clients into red-team attackers: each trains on a
    BadNets-poisoned copy of its data (trigger → ``backdoor_target``) and sends a boosted update
    ``w_global + boost·(w_local − w_global)`` (model replacement, Bagdasaryan et al. 2020).

    ``fedavgm`` and ``fedadam`` treat the averaged update as a pseudo-gradient for a server
    optimiser (Hsu et al. 2019; Reddi et al. 2021): ``server_lr`` (default 1.0 for FedAvgM,
    0.01 for FedAdam) and ``server_momentum``. ``lr_decay`` multiplies the clients' learning rate
    by ``lr_decay**(round-1)``.
    """

    arch: str = "digits-mlp"
    clients: int = 10
    rounds: int = 20
    partition: str = "iid"
    aggregation: Aggregation = "fedavg"
    proximal_mu: float = 0.01
    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    lr_decay: float = 1.0
    server_lr: float | None = None
    server_momentum: float = 0.9
    secure_aggregation: bool = False
    dp: DPMode = "none"
    epsilon: float | None = None
    delta: float = 1e-5
    clipping_norm: float = 1.0
    malicious_clients: int = 0
    backdoor_target: int = 0
    poison_rate: float = 0.5
    boost: float = 10.0
    trim_beta: float = 0.2
    seed: int = 0
    timeout_s: float = 900.0

    def validate(self) -> None:
        PartitionSpec.parse(self.partition)
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation {self.aggregation!r}: choose one of {', '.join(AGGREGATIONS)}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError("--lr-decay must be in (0, 1]")
        if self.server_lr is not None and self.server_lr <= 0:
            raise ConfigError("--server-lr must be positive")
        if not 0 <= self.server_momentum < 1:
            raise ConfigError("--server-momentum must be in [0, 1)")
        if self.clients < 2:
            raise ConfigError("federated training needs at least 2 clients")
        if self.rounds < 1:
            raise ConfigError("--rounds must be at least 1")
        if self.dp != "none" and (self.epsilon is None or self.epsilon <= 0):
            raise ConfigError(f"--dp {self.dp} needs a positive --epsilon")
        if self.secure_aggregation and self.aggregation in ROBUST:
            raise ConfigError(
                f"secure aggregation hides individual updates, so {self.aggregation} (which needs them) "
                "cannot run under it; use fedavg/fedprox with --secure-aggregation"
            )
        if self.secure_aggregation and self.clients < 3:
            raise ConfigError("secure aggregation (SecAgg+) needs at least 3 clients")
        if not 0 <= self.malicious_clients < self.clients:
            raise ConfigError("--malicious-clients must be between 0 and clients-1")
        if self.aggregation == "trimmed-mean" and not 0 < self.trim_beta < 0.5:
            raise ConfigError("trim beta must be in (0, 0.5)")

    @property
    def effective_server_lr(self) -> float:
        return self.server_lr if self.server_lr is not None else DEFAULT_SERVER_LR.get(self.aggregation, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
