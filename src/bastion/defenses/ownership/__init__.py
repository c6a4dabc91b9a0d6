"""Proof of ownership: fingerprints of a trained model (no retraining) and watermarks embedded at training.

- :mod:`.fingerprint` — conferrable adversarial examples (Lukas et al., ICLR 2021): a query set that a
  model and the copies derived from it (extracted, fine-tuned, pruned) label alike, and independently
  trained models do not; verification gives a match rate and a p-value against a null of independent models.
- :mod:`.watermark` — a backdoor-style watermark (Adi et al., USENIX Security 2018): a secret trigger set
  of abstract inputs with random labels learnt during training, kept AES-256-GCM encrypted; verification
  is a binomial test against chance.
"""

from bastion.defenses.ownership.fingerprint import (
    Fingerprint,
    FingerprintConfig,
    FingerprintVerdict,
    create_fingerprint,
    verify_fingerprint,
)
from bastion.defenses.ownership.watermark import (
    WatermarkConfig,
    WatermarkKey,
    WatermarkResult,
    WatermarkVerdict,
    embed_watermark,
    load_trigger_set,
    save_trigger_set,
    verify_watermark,
)

__all__ = [
    "Fingerprint",
    "FingerprintConfig",
    "FingerprintVerdict",
    "WatermarkConfig",
    "WatermarkKey",
    "WatermarkResult",
    "WatermarkVerdict",
    "create_fingerprint",
    "embed_watermark",
    "load_trigger_set",
    "save_trigger_set",
    "verify_fingerprint",
    "verify_watermark",
]
