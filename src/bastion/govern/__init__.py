"""Governance: control catalog, risk, reports, Annex IV, training labs."""
