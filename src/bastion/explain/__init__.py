"""SHAP / LIME explanations and saliency, used by reports, poisoning triage and incidents.

``saliency_maps`` (integrated gradients / input gradients) is light (torch only); SHAP and LIME
are imported when an explanation is requested (the ``explain`` extra).
"""

from bastion.explain.attributions import (
    Explanation,
    choose_method,
    explain_lime,
    explain_lime_image,
    explain_shap,
    grid_segments,
    heatmap_png,
    local_bar_png,
    signed_map_png,
    summary_plot_png,
)
from bastion.explain.saliency import SaliencyMethod, saliency_maps

__all__ = [
    "Explanation",
    "SaliencyMethod",
    "choose_method",
    "explain_lime",
    "explain_lime_image",
    "explain_shap",
    "grid_segments",
    "heatmap_png",
    "local_bar_png",
    "saliency_maps",
    "signed_map_png",
    "summary_plot_png",
]
