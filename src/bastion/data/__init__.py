"""Data security: integrity manifests, validation and anomalies, privacy (PII), poisoning detection."""
