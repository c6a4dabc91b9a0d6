"""Incidents from proof-of-ownership checks: a suspect endpoint that carries our fingerprint or watermark.

The verdict (match count, queries, p-value, the measured null, the fingerprint digest) is the incident's
evidence; ``bastion incident export`` (or ``--bundle`` on the verify commands) signs it into a forensic bundle.
The alert type is ``extraction`` (MITRE ATLAS AML.T0024.002 Extract AI Model): a derived copy served by
someone else is the outcome of model theft.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bastion.core.severity import Severity
from bastion.respond.forensics import export_bundle
from bastion.respond.incidents import Alert, open_or_update


def open_ownership_incident(suspect: str, method: str, verdict: dict[str, Any], *,
                            fingerprint_file: str | None = None, source_sha256: str | None = None,
                            db_url: str | None = None, bundle: str | Path | None = None,
                            signing_key: str | Path | None = None) -> tuple[dict[str, Any], bool]:
    """Open (or update) a high-severity incident for ``suspect`` with the ownership ``verdict`` as evidence;
    with ``bundle`` and ``signing_key`` also write the signed forensic bundle. Returns (incident, created)."""
    evidence = {"ownership": {"method": method, "suspect": suspect, "verdict": verdict,
                              "fingerprint_file": fingerprint_file, "source_sha256": source_sha256}}
    rate = verdict.get("match_rate", verdict.get("trigger_accuracy"))
    alert = Alert(type="extraction", severity=Severity.HIGH,
                  title=f"suspect endpoint matches our model's {method} (rate {rate}, p={verdict.get('p_value'):.2g})",
                  model=suspect, model_sha256=source_sha256, client=suspect, evidence=evidence)
    inc, created = open_or_update(alert, db_url)
    if bundle is not None and signing_key is not None:
        export_bundle(int(inc["id"]), bundle, signing_key, db_url=db_url)
    return inc, created
