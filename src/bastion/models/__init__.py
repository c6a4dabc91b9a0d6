"""Loading models into ``ModelAdapter`` objects (torch, ONNX, scikit-learn, remote)."""

from bastion.core.model import InputSpec, ModelAdapter, predict_labels
from bastion.models.adapters import SklearnAdapter, TorchAdapter, check_batch

__all__ = ["InputSpec", "ModelAdapter", "SklearnAdapter", "TorchAdapter", "check_batch", "predict_labels"]
