"""Encrypted inference with CKKS (TenSEAL): packed, rotation-free evaluation of linear models and
small square-activation MLPs. The server evaluates on ciphertexts with the public context only.

Examples:
    >>> from bastion.defenses.encrypted import HEModel, ckks          # doctest: +SKIP
    >>> model = HEModel.from_torch(module, (64,))                      # doctest: +SKIP
    >>> ctx = ckks.make_context(model.params)                          # doctest: +SKIP
    >>> enc = ckks.encrypt_batch(ctx, x, model.n_features, model.params.slots)  # doctest: +SKIP
    >>> logits = ckks.decrypt_outputs(ctx, ckks.evaluate(model, enc))  # doctest: +SKIP
"""

from bastion.defenses.encrypted.model import HEModel, SquareActivation, he_mlp
from bastion.defenses.encrypted.params import CKKSParams, choose_params

__all__ = ["CKKSParams", "HEModel", "SquareActivation", "choose_params", "he_mlp"]
