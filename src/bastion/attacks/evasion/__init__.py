"""Evasion attacks, torch-native: tensors in, tensors out, one file per attack.

White-box (``model`` is an ``nn.Module`` returning logits): ``FGSM``, ``PGD``, ``APGD`` (CE/DLR).
Black-box (``model`` is a ``predict`` callable, a ``ModelAdapter`` or an ``nn.Module``):
``SquareAttack`` (scores) and ``HopSkipJump`` (labels only).
``run_evasion`` runs any of them by name on a ``ModelAdapter`` and numpy data.

Examples:
    >>> import torch
    >>> from bastion.attacks.evasion import PGD
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> x_adv = PGD(eps=0.1, steps=5)(net, torch.rand(2, 4), torch.tensor([0, 1]))
    >>> tuple(x_adv.shape)
    (2, 4)
"""

from __future__ import annotations

from bastion.attacks.evasion.apgd import APGD
from bastion.attacks.evasion.base import LOSSES, NORMS, LossName, Norm, WhiteBoxAttack, frozen_eval
from bastion.attacks.evasion.fgsm import FGSM
from bastion.attacks.evasion.hopskipjump import HopSkipJump
from bastion.attacks.evasion.pgd import PGD
from bastion.attacks.evasion.run import (
    ATTACK_NAMES,
    BLACK_BOX_ATTACKS,
    WHITE_BOX_ATTACKS,
    EvasionResult,
    make_attack,
    run_evasion,
)
from bastion.attacks.evasion.square import SquareAttack

ATTACKS: dict[str, type] = {
    "fgsm": FGSM,
    "pgd": PGD,
    "apgd-ce": APGD,
    "apgd-dlr": APGD,
    "square": SquareAttack,
    "hsj": HopSkipJump,
}

__all__ = [
    "APGD",
    "ATTACKS",
    "ATTACK_NAMES",
    "BLACK_BOX_ATTACKS",
    "FGSM",
    "LOSSES",
    "NORMS",
    "PGD",
    "WHITE_BOX_ATTACKS",
    "EvasionResult",
    "HopSkipJump",
    "LossName",
    "Norm",
    "SquareAttack",
    "WhiteBoxAttack",
    "frozen_eval",
    "make_attack",
    "run_evasion",
]
