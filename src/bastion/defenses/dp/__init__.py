"""Differentially private training (DP-SGD via Opacus) and privacy statements."""

from bastion.defenses.dp.statement import PrivacyStatement, privacy_statement_path, read_privacy_statement
from bastion.defenses.dp.trainer import DPConfig, DPTrainingResult, save_dp_model, train_dp

__all__ = [
    "DPConfig",
    "DPTrainingResult",
    "PrivacyStatement",
    "privacy_statement_path",
    "read_privacy_statement",
    "save_dp_model",
    "train_dp",
]
