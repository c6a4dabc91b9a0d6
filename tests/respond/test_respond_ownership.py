"""Ownership incidents: a suspect endpoint that carries our fingerprint opens one high-severity extraction
incident with the verdict as evidence, and optionally its signed forensic bundle."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from bastion.artifacts.keys import generate_keypair
from bastion.core.errors import IntegrityError, SignatureError
from bastion.respond.forensics import verify_bundle
from bastion.respond.incidents import get_incident
from bastion.respond.ownership import open_ownership_incident

VERDICT = {"match_rate": 0.93, "p_value": 1.5e-9, "matches": 93, "queries": 100}


@pytest.fixture
def db(bastion_home: Path) -> None:
    from bastion.store.db import dispose_engines, upgrade

    dispose_engines()
    upgrade()


def test_a_fingerprint_match_opens_one_high_extraction_incident_with_the_verdict(db) -> None:
    inc, created = open_ownership_incident("https://thief.example/predict", "fingerprint", VERDICT,
                                           fingerprint_file="fp.json", source_sha256="ab" * 32)
    assert created
    assert inc["alert_type"] == "extraction" and inc["severity"] == "high"
    assert "fingerprint" in inc["title"] and "rate 0.93" in inc["title"] and "p=1.5e-09" in inc["title"]
    stored = get_incident(int(inc["id"]))
    assert stored["evidence"]["ownership"] == {"method": "fingerprint", "suspect": "https://thief.example/predict",
                                               "verdict": VERDICT, "fingerprint_file": "fp.json",
                                               "source_sha256": "ab" * 32}
    again, created_again = open_ownership_incident("https://thief.example/predict", "fingerprint", VERDICT)
    assert not created_again and again["id"] == inc["id"] and again["occurrences"] == 2  # the same suspect: one incident, updated


def test_a_watermark_verdict_names_its_trigger_accuracy(db) -> None:
    inc, _ = open_ownership_incident("suspect-b", "watermark", {"trigger_accuracy": 0.8, "p_value": 0.001})
    assert "watermark" in inc["title"] and "rate 0.8" in inc["title"] and "p=0.001" in inc["title"]


def test_with_a_key_the_signed_bundle_verifies_and_tampering_is_caught(db, tmp_path: Path) -> None:
    key, pub = generate_keypair(tmp_path / "signer")
    bundle = tmp_path / "inc.tar.gz"
    inc, _ = open_ownership_incident("suspect-c", "fingerprint", VERDICT, bundle=bundle, signing_key=key)
    report = verify_bundle(bundle, pub)
    assert report["valid"] and report["incident_id"] == inc["id"] and report["pinned_key"]
    with tarfile.open(bundle) as tar:
        assert {"incident.json", "detectors.json", "manifest.json", "manifest.sig"} <= set(tar.getnames())

    _, other_pub = generate_keypair(tmp_path / "other")
    with pytest.raises(SignatureError):
        verify_bundle(bundle, other_pub)  # pinned to a key that did not sign it

    raw = bytearray(bundle.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bundle.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        verify_bundle(bundle, pub)


def test_without_a_signing_key_no_bundle_is_written(db, tmp_path: Path) -> None:
    open_ownership_incident("suspect-d", "fingerprint", VERDICT, bundle=tmp_path / "x.tar.gz")
    assert not (tmp_path / "x.tar.gz").exists()
