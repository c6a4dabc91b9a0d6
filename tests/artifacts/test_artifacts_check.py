"""The ``supply_chain.scan`` and ``supply_chain.signature`` checks on a real demo target."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from bastion.artifacts.keys import generate_keypair
from bastion.artifacts.signing import sign_model
from bastion.assess.registry import CheckContext, get_check
from bastion.core.severity import Severity, Status
from bastion.models.zoo import demo_target


def test_scan_check_passes_demo_and_fails_malicious(corpus: dict[str, Any]) -> None:
    target = demo_target("digits")
    check = get_check("supply_chain.scan")
    assert check.applies(target)
    ok = check.run(target, CheckContext(profile="quick"))
    assert ok.status == Status.PASS and ok.metrics["scan_verdict"] == "safe"
    assert ok.params["allowlist_version"] >= 1
    bad_target = dataclasses.replace(target, model_path=str(corpus["malicious"]["torch_zip_evil.pt"]))
    bad = check.run(bad_target, CheckContext(profile="quick"))
    assert bad.status == Status.FAIL and bad.metrics["findings_critical"] >= 1
    f = bad.findings[0]
    assert f.severity == Severity.CRITICAL and "mitre-atlas:AML.T0010" in f.controls
    assert "bastion model scan" in f.recommendation


def test_signature_check(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    target = demo_target("digits")
    model = tmp_path / "digits.pt"
    shutil.copy(target.model_path or "", model)
    t = dataclasses.replace(target, model_path=str(model))
    check = get_check("supply_chain.signature")
    assert check.run(t, CheckContext()).findings[0].id == "supply_chain.signature.unsigned"
    priv, pub = generate_keypair(tmp_path / "k")
    sign_model(model, priv)
    res = check.run(t, CheckContext(options={"public_key": str(pub)}))
    assert res.status == Status.PASS and res.metrics["verified"] is True
    model.write_bytes(model.read_bytes() + b"\0")
    res = check.run(t, CheckContext(options={"public_key": str(pub)}))
    assert res.status == Status.FAIL and res.findings[0].severity == Severity.CRITICAL


def test_provenance_check_compares_attested_data(tmp_path: Path) -> None:
    target = demo_target("digits")
    model = tmp_path / "digits.pt"
    shutil.copy(target.model_path or "", model)
    t = dataclasses.replace(target, model_path=str(model))
    check = get_check("supply_chain.provenance")
    assert check.run(t, CheckContext()).findings[0].id == "supply_chain.provenance.missing"
    priv, pub = generate_keypair(tmp_path / "k")
    ctx = CheckContext(options={"public_key": str(pub)})
    sign_model(model, priv, attest={"datasets": [{"name": "data", "digest": {"sha256": target.fingerprints["data"]}}]})
    ok = check.run(t, ctx)
    assert ok.status == Status.PASS and ok.metrics["datasets_matching"] == 1
    sign_model(model, priv, attest={"datasets": [{"name": "data", "digest": {"sha256": "0" * 64}}]})
    bad = check.run(t, ctx)
    assert bad.status == Status.FAIL and bad.findings[0].id == "supply_chain.provenance.data_mismatch"
