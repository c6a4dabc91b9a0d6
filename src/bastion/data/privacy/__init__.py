"""Data privacy: PII detection, anonymisation (k-anonymity, l-diversity), envelope encryption."""
