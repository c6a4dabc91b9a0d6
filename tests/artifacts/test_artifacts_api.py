"""Pin the supply-chain API other capabilities import (assess loaders, gateway registry, govern, respond)."""

from __future__ import annotations

import inspect

import bastion.artifacts.scan as scan
from bastion.artifacts import signing


def test_scan_exports() -> None:
    assert set(scan.__all__) >= {"scan_path", "ensure_safe", "restricted_load", "ScanReport", "Policy"}
    assert list(inspect.signature(scan.ensure_safe).parameters) == ["path", "allow", "max_severity"]
    assert list(inspect.signature(scan.restricted_load).parameters) == ["path", "allow"]
    assert list(inspect.signature(scan.scan_path).parameters)[:2] == ["path", "allow"]


def test_signing_signatures() -> None:
    assert list(inspect.signature(signing.sign_model).parameters)[:4] == ["path", "key_path", "attest", "incremental"]
    assert list(inspect.signature(signing.verify_model).parameters)[:4] == [
        "path", "pub_path", "require_attestation", "max_severity"]
    fields = set(signing.VerificationResult.__dataclass_fields__)
    assert {"model_digest", "files", "attestation", "key_id", "current_scan", "bundle"} <= fields
