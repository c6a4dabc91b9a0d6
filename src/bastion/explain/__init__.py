"""SHAP / LIME explanations and saliency, used by reports, poisoning triage and incidents."""
