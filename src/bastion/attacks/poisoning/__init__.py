"""Training-data poisoning attacks for red-teaming and tests (image and tabular).

- ``label_flip``: random and targeted (source → target class) label flipping.
- ``backdoor``: BadNets-style trigger backdoors (dirty label) and a clean-label variant.

Every attack returns a ``PoisonedSet``: the poisoned arrays plus the ground-truth indices.
"""

from bastion.attacks.poisoning.backdoor import (
    TriggerSpec,
    apply_trigger,
    attack_success_rate,
    badnets,
    clean_label,
)
from bastion.attacks.poisoning.label_flip import PoisonedSet, random_flip, targeted_flip

__all__ = [
    "PoisonedSet",
    "TriggerSpec",
    "apply_trigger",
    "attack_success_rate",
    "badnets",
    "clean_label",
    "random_flip",
    "targeted_flip",
]
