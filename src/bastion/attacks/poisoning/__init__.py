"""Training-data poisoning attacks for red-teaming and detector benchmarks (image and tabular).

One module per attack, each seeded, numpy or torch in, a ``PoisonedSet`` out (the poisoned
arrays, the ground-truth indices, the parameters that rebuild the trigger):

==================  ===========================  =========  ==========================================
attack              module                       labels     trigger
==================  ===========================  =========  ==========================================
``badnets``         ``backdoor``                 dirty      patch in a corner (Gu et al. 2017)
``blended``         ``blended``                  dirty      noise pattern blended over the image
                                                            (Chen et al. 2017)
``sig``             ``sig``                      clean      horizontal sinusoid (Barni et al. 2019)
``wanet``           ``wanet``                    dirty      smooth warping field (Nguyen & Tran 2021)
``label_consistent`` ``label_consistent``        clean      PGD-hardened images + corner checkerboard
                                                            (Turner et al. 2019)
``feature_trigger`` ``tabular``                  dirty      feature values (tabular rows)
``clean_label``     ``backdoor``                 clean      interpolation + patch (a lighter Turner)
``label_flip_*``    ``label_flip``               flipped    none
==================  ===========================  =========  ==========================================

``trigger_from_params(method, params)`` rebuilds any backdoor's test-time trigger, and
``attack_success_rate`` measures a model on triggered test inputs.
"""

from collections.abc import Callable

from bastion.attacks.poisoning.backdoor import TriggerSpec, apply_trigger, badnets, clean_label
from bastion.attacks.poisoning.base import PoisonedSet, Trigger, attack_success_rate, trigger_from_params
from bastion.attacks.poisoning.blended import BlendTrigger, blended
from bastion.attacks.poisoning.label_consistent import CornerPatternTrigger, label_consistent
from bastion.attacks.poisoning.label_flip import random_flip, targeted_flip
from bastion.attacks.poisoning.sig import SignalTrigger, sig
from bastion.attacks.poisoning.tabular import FeatureTrigger, feature_trigger
from bastion.attacks.poisoning.wanet import WarpTrigger, wanet

# backdoor attacks with the common signature (x, y, target, rate, seed, **options) -> PoisonedSet
BACKDOORS: dict[str, Callable[..., PoisonedSet]] = {
    "badnets": badnets,
    "blended": blended,
    "sig": sig,
    "wanet": wanet,
    "label_consistent": label_consistent,
    "feature_trigger": feature_trigger,
    "clean_label": clean_label,
}
CLEAN_LABEL = frozenset({"sig", "label_consistent", "clean_label"})

__all__ = [
    "BACKDOORS",
    "CLEAN_LABEL",
    "BlendTrigger",
    "CornerPatternTrigger",
    "FeatureTrigger",
    "PoisonedSet",
    "SignalTrigger",
    "Trigger",
    "TriggerSpec",
    "WarpTrigger",
    "apply_trigger",
    "attack_success_rate",
    "badnets",
    "blended",
    "clean_label",
    "feature_trigger",
    "label_consistent",
    "random_flip",
    "sig",
    "targeted_flip",
    "trigger_from_params",
    "wanet",
]
