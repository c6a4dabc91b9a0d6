"""Poisoning and backdoor detection on a training set (see ``detect`` for the combined detector)."""

from bastion.data.poisoning.detect import (
    PoisonConfig,
    PoisonReport,
    detect_poisoning,
    label_quality,
    representations,
    train_reference_model,
    trigger_saliency_png,
)

__all__ = [
    "PoisonConfig",
    "PoisonReport",
    "detect_poisoning",
    "label_quality",
    "representations",
    "train_reference_model",
    "trigger_saliency_png",
]
