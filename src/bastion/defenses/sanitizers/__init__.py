"""Input sanitisers and adversarial-input detectors as servable ``nn.Module`` wrappers.

Each wrapper carries ``bastion_defense`` (its name) and is saved as TorchScript with a sidecar
JSON (``save_model``) so the assessment attacks it adaptively: BPDA through feature squeezing,
EOT through randomised smoothing, detector-aware evaluation for the Mahalanobis and LID detectors.
"""

from bastion.defenses.sanitizers.calibrate import calibrate_threshold, detection_auc, detection_scores
from bastion.defenses.sanitizers.export import (
    DEFENSE_TRAITS,
    defense_block,
    read_defense,
    save_model,
    sidecar_path,
    training_record_path,
)
from bastion.defenses.sanitizers.lid import LIDDetector, lid_mle, split_stages
from bastion.defenses.sanitizers.mahalanobis import MahalanobisDetector, split_penultimate
from bastion.defenses.sanitizers.smoothing import (
    ABSTAIN,
    Certificate,
    RandomizedSmoothing,
    certify,
    smoothed_predict,
)
from bastion.defenses.sanitizers.squeeze import FeatureSqueezing, median_smooth, reduce_bit_depth

__all__ = [
    "ABSTAIN",
    "DEFENSE_TRAITS",
    "Certificate",
    "FeatureSqueezing",
    "LIDDetector",
    "MahalanobisDetector",
    "RandomizedSmoothing",
    "calibrate_threshold",
    "certify",
    "defense_block",
    "detection_auc",
    "detection_scores",
    "lid_mle",
    "median_smooth",
    "read_defense",
    "reduce_bit_depth",
    "save_model",
    "sidecar_path",
    "smoothed_predict",
    "split_penultimate",
    "split_stages",
    "training_record_path",
]
