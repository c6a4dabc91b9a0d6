"""Incidents, playbooks, forensic bundles, regulatory clocks."""
