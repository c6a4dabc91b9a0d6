"""Model files as supply chain: scanning, signing and verification, attestations, ML-BOM, model card."""
