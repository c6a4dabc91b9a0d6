"""Federated learning on Flower (simulation on Ray): FedAvg/FedProx, SecAgg+, central/local DP,
a malicious-client red-team option and robust aggregation (median, trimmed mean, Krum)."""

from bastion.defenses.federated.config import AGGREGATIONS, FederatedConfig
from bastion.defenses.federated.partition import PartitionSpec, partition
from bastion.defenses.federated.simulation import (
    FederatedError,
    FederatedResult,
    run_federated,
    save_federated_model,
)

__all__ = [
    "AGGREGATIONS",
    "FederatedConfig",
    "FederatedError",
    "FederatedResult",
    "PartitionSpec",
    "partition",
    "run_federated",
    "save_federated_model",
]
