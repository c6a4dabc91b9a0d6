"""Issue 16 at the registry: trusted keys only, and a serving spec that is part of the signed file set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def reg(gw_home: Path, signer: tuple[Path, Path], gwt: Any) -> Any:
    from bastion.gateway.registry import Registry
    from bastion.store.db import upgrade

    upgrade()
    return Registry(gwt.make_config(registry={"trusted_keys": [str(signer[1])]}))


def _audit_actions(reg: Any) -> list[tuple[str, dict[str, Any]]]:
    from sqlalchemy import text

    from bastion.store.db import get_engine

    with get_engine(reg.db_url).connect() as c:
        rows = c.execute(text("SELECT action, body FROM gateway_audit ORDER BY seq")).all()
    return [(a, json.loads(b) if isinstance(b, str) else b) for a, b in rows]


def test_rogue_key_is_refused_even_for_local_admins_until_trusted(reg: Any, gw_home: Path, digits_pt: Path,
                                                                  gwt: Any) -> None:
    from bastion.artifacts.keys import generate_keypair
    from bastion.core.errors import SignatureError

    rogue_priv, rogue_pub = generate_keypair(gw_home / "rogue")
    m = gwt.signed_copy(digits_pt, gw_home / "src-rogue", "benign.pt", rogue_priv)
    with pytest.raises(SignatureError, match="not trusted by this registry"):
        reg.push(m, "rogue", keys=[rogue_pub])  # the default actor is the CLI's local admin
    with pytest.raises(SignatureError, match="does not verify with any trusted key"):
        reg.push(m, "rogue")  # without --key: the trusted set does not include it either
    assert not reg.list("rogue")
    with pytest.raises(Exception, match="--note"):
        reg.trust_key(rogue_pub, note=" ")
    out = reg.trust_key(rogue_pub, note="release key of the vision team (ticket SEC-42)")
    assert out["fingerprint"] in reg.trusted_keys()
    info = reg.push(m, "rogue", keys=[rogue_pub])
    assert info.verified
    actions = _audit_actions(reg)
    trust = [b for a, b in actions if a == "registry.trust_key"]
    assert trust and trust[-1]["fingerprint"] == out["fingerprint"] and "SEC-42" in trust[-1]["note"]


def test_sidecar_not_covered_by_the_signature_is_refused(reg: Any, gw_home: Path, signer: tuple[Path, Path],
                                                          digits_pt: Path, gwt: Any) -> None:
    from bastion.core.errors import SignatureError

    m = gwt.signed_copy(digits_pt, gw_home / "src-spec", "benign.pt", signer[0])
    side = m.with_name(m.name + ".bastion.json")
    good = side.read_text()
    side.write_text(json.dumps({"input_shape": [1, 8, 8], "clip_min": -1e30, "clip_max": 1e30,
                                "max_batch": 100_000_000}))
    with pytest.raises(SignatureError, match=r"serving spec .* not covered by the signature"):
        reg.push(m, "spec")
    side.write_text(good)
    info = reg.push(m, "spec")
    assert info.verified and info.input_spec["clip_max"] == 1.0
    signed = info.details["serving_specs"]
    assert signed and signed[0]["file"] == side.name and signed[0]["spec"]["clip_max"] == 1.0
    push = [b for a, b in _audit_actions(reg) if a == "registry.push" and b["model"] == "spec"]
    assert push[-1]["input_spec"]["clip_max"] == 1.0 and push[-1]["serving_specs"][0]["file"] == side.name


def test_registry_list_shows_the_spec_in_force(reg: Any, gw_home: Path, signer: tuple[Path, Path], digits_pt: Path,
                                               gwt: Any) -> None:
    from typer.testing import CliRunner

    from bastion.cli.main import build_app

    m = gwt.signed_copy(digits_pt, gw_home / "src-list", "benign.pt", signer[0])
    reg.push(m, "listed")
    cfg = gw_home / "gw.yaml"
    cfg.write_text(json.dumps(reg.config.model_dump(mode="json")))
    out = CliRunner().invoke(build_app(), ["registry", "list", "listed", "--config", str(cfg)], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    assert "[1, 8, 8]" in out.output and "signed benign.pt.bastion.json" in out.output


def test_registry_applies_its_max_attestation_age(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from datetime import timedelta

    import bastion.artifacts.signing as signing
    from bastion.gateway import registry as registry_mod
    from bastion.gateway.config import RegistryConfig

    with pytest.raises(Exception, match="greater than 0"):
        RegistryConfig(max_attestation_age_days=0)
    seen: dict[str, Any] = {}

    class _Res:
        serving_specs: list[dict[str, Any]] = []

    def fake_verify(path: Path, key: Path, **kw: Any) -> _Res:
        seen.update(kw)
        return _Res()

    monkeypatch.setattr(signing, "verify_model", fake_verify)
    monkeypatch.setattr("bastion.artifacts.keys.public_key_fingerprint", lambda key: "fp")
    registry_mod._verify(tmp_path / "m.pt", [tmp_path / "k.pub"], True, "medium", tmp_path / "m.pt", [], 30.0)
    assert seen["max_attestation_age"] == timedelta(days=30) and seen["require_attestation"] is True
