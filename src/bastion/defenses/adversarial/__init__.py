"""Adversarial training: PGD (Madry), fast FGSM + random init (Wong) with catastrophic-overfitting
detection, TRADES; ε ramp, early stopping on robust validation accuracy, a JSON training record."""

from bastion.defenses.adversarial.config import METHODS, AdversarialTrainingConfig, TrainingMethod
from bastion.defenses.adversarial.perturb import fgsm_rs_perturb, pgd_perturb
from bastion.defenses.adversarial.record import EpochRecord, TrainingRecord
from bastion.defenses.adversarial.trainer import (
    adversarial_train,
    detect_catastrophic_overfitting,
    robust_accuracy_pgd,
)

__all__ = [
    "METHODS",
    "AdversarialTrainingConfig",
    "EpochRecord",
    "TrainingMethod",
    "TrainingRecord",
    "adversarial_train",
    "detect_catastrophic_overfitting",
    "fgsm_rs_perturb",
    "pgd_perturb",
    "robust_accuracy_pgd",
]
