"""SHAP / LIME explanations and saliency, used by reports, poisoning triage and incidents."""

from bastion.explain.saliency import SaliencyMethod, saliency_maps

__all__ = ["SaliencyMethod", "saliency_maps"]
