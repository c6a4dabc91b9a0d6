"""Poisoning and backdoor detection on a training set (see ``detect`` for the combined detector)."""

from bastion.data.poisoning.detect import (
    METHODS,
    PoisonConfig,
    PoisonReport,
    detect_poisoning,
    trigger_saliency_png,
)
from bastion.data.poisoning.labels import label_quality
from bastion.data.poisoning.reference import representations, train_reference_model
from bastion.data.poisoning.strip import strip_entropy

__all__ = [
    "METHODS",
    "PoisonConfig",
    "PoisonReport",
    "detect_poisoning",
    "label_quality",
    "representations",
    "strip_entropy",
    "train_reference_model",
    "trigger_saliency_png",
]
