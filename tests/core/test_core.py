"""The core vocabulary: severities order, results round-trip, registry refuses duplicates."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass

import pytest

from bastion.assess.registry import CHECKS, CheckContext, register_check
from bastion.core import (
    Assessment,
    CheckResult,
    ConfigError,
    Finding,
    RegistryError,
    Severity,
    SignatureError,
    Status,
    Target,
)


def test_severity_is_ordered_and_parses() -> None:
    assert Severity.CRITICAL > Severity.HIGH > Severity.MEDIUM > Severity.LOW > Severity.INFO
    assert Severity.parse("HIGH") is Severity.HIGH
    with pytest.raises(ConfigError, match="unknown severity"):
        Severity.parse("severe")


def test_assessment_roundtrips_through_json() -> None:
    finding = Finding("evasion.x", Severity.HIGH, "fragile", {"eps": 0.1}, "bastion harden …", ["owasp-ml:ML01:2023"])
    result = CheckResult("evasion.x", "X", Status.FAIL, metrics={"robust_accuracy": 0.1}, findings=[finding])
    a = Assessment(target={"name": "t"}, profile="quick", seed=3, results=[result])
    d = json.loads(json.dumps(a.to_dict()))
    back = Assessment.from_dict(d)
    assert back.max_severity is Severity.HIGH
    assert back.results[0].findings[0].controls == ["owasp-ml:ML01:2023"]
    assert d["summary"]["max_severity"] == "high"
    assert d["summary"]["findings"]["high"] == 1


@dataclass
class _Dummy:
    id: str = "test.dummy-duplicate"
    title: str = "dummy"
    controls: list[str] | None = None
    profiles: tuple[str, ...] = ("quick",)

    def applies(self, target: Target) -> bool:
        return True

    def run(self, target: Target, ctx: CheckContext) -> CheckResult:
        return CheckResult(self.id, self.title, Status.PASS)


def test_registry_refuses_duplicate_ids() -> None:
    first = _Dummy()
    register_check(first)  # type: ignore[arg-type]
    try:
        with pytest.raises(RegistryError, match="already registered"):
            register_check(_Dummy())  # type: ignore[arg-type]
    finally:
        CHECKS.pop(first.id, None)


def test_keys_are_0600_and_signatures_verify(tmp_path) -> None:
    from bastion.artifacts.keys import generate_keypair, sign_bytes, verify_bytes

    priv, pub = generate_keypair(tmp_path / "k")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    sig = sign_bytes(priv, b"payload")
    verify_bytes(pub, b"payload", sig)
    with pytest.raises(SignatureError):
        verify_bytes(pub, b"payloaD", sig)
    with pytest.raises(ConfigError, match="already exists"):
        generate_keypair(tmp_path / "k")
