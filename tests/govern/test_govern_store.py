"""Governance tables on SQLite and PostgreSQL, and evidence read from other capabilities' tables
(the gateway's registry and hash-chained audit log), including a tampered chain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bastion.govern.evidence import collect_evidence
from bastion.govern.risk import add_risk, list_risks, risk_history, update_risk
from bastion.govern.store import ensure_schema
from bastion.govern.training.records import record_completion, team_coverage
from bastion.store.db import get_engine, session_scope


@pytest.fixture
def pg_url(pg_schema: Any) -> Iterator[str]:
    with pg_schema("govern") as url:
        yield url


@pytest.mark.postgres
def test_register_and_training_on_postgres(pg_url: str) -> None:
    rid = add_risk("Evasion", 4, 4, controls=["BC-EV-01"], owner="sec", system="pg", url=pg_url)
    update_risk(rid, actor="t", status="mitigated", url=pg_url)
    assert [h["action"] for h in risk_history(rid, url=pg_url)] == ["create", "update"]
    assert list_risks("pg", {"BC-EV-01": "pass"}, url=pg_url)[0].residual == 12
    record_completion("ada", "core", 1, "lab", 1.0, True, url=pg_url)
    record_completion("ada", "core", 1, "quiz", 1.0, True, url=pg_url)
    assert team_coverage(pg_url)[0]["completions"] == 1
    tables = set(text_rows(pg_url, "select table_name from information_schema.tables where table_schema = "
                                   "current_schema()"))
    assert {"govern_risks", "govern_risk_history", "govern_training_records", "govern_ethics_answers",
            "govern_classifications"} <= tables


def text_rows(url: str, sql: str) -> list[str]:
    with get_engine(url).connect() as conn:
        return [r[0] for r in conn.execute(text(sql))]


def test_gateway_registry_and_audit_chain_become_evidence(bastion_home: Path) -> None:
    from bastion.gateway.audit import append_records
    from bastion.store.models_gateway import GatewayModelVersion

    ensure_schema()
    with session_scope() as s:
        for version, verified, verdict in (("1", True, "safe"), ("2", False, "suspicious")):
            s.add(GatewayModelVersion(name="digits", version=version, path="/m", format="torchscript",
                                      sha256="0" * 64, verified=verified, signer="k" * 64 if verified else None,
                                      scan_verdict=verdict, allowed_unsafe=not verified, input_spec={},
                                      n_classes=10, details={}, pushed_by="t", created_at=datetime.now(UTC)))
    eng = get_engine()
    append_records(eng, [("request", "client:a", "predict", json.dumps({"n": i}), 1.0 + i) for i in range(5)])
    one = collect_evidence(model="digits", version="1")
    assert one.for_control("BC-SC-02").status == "pass" and one.for_control("BC-SC-01").status == "pass"
    both = collect_evidence(model="digits")
    assert both.for_control("BC-SC-02").status == "fail" and both.for_control("BC-SC-01").status == "warn"
    assert both.for_control("BC-LG-01").status == "pass"
    with eng.begin() as conn:
        conn.execute(text("UPDATE gateway_audit SET body = '{\"n\": 99}' WHERE seq = 3"))
    tampered = collect_evidence(model="digits")
    lg = tampered.for_control("BC-LG-01")
    assert lg.status == "fail" and "record 3" in lg.evidence[0].summary
    assert tampered.sources["audit_log"].startswith("BROKEN")


def test_incident_table_read_defensively_by_shape(bastion_home: Path) -> None:
    """Incidents (issue 8's respond_incidents) become evidence by column names, without importing its models."""
    eng = get_engine()
    with eng.begin() as conn:
        conn.execute(text("CREATE TABLE respond_incidents (id INTEGER PRIMARY KEY, model TEXT, status TEXT, "
                          "serious BOOLEAN, alert_type TEXT, opened_at TEXT)"))
        conn.execute(text("INSERT INTO respond_incidents (model, status, serious, alert_type, opened_at) VALUES "
                          "('digits', 'resolved', 0, 'drift', '2026-05-01'), "
                          "('digits', 'open', 1, 'extraction', '2026-06-01'), "
                          "('other', 'open', 0, 'drift', '2026-06-02')"))
    ev = collect_evidence(model="digits")
    ir = ev.for_control("BC-IR-01")
    assert ir.status == "warn" and "1 open, 1 serious" in ir.evidence[0].summary
    assert ev.for_control("BC-MO-02").status == "pass" and ev.for_control("BC-MO-01").status == "pass"
    assert collect_evidence(model="nothing").for_control("BC-IR-01").status == "no evidence"


def test_signed_model_is_verified_now_and_tampering_fails(bastion_home: Path, tmp_path: Path) -> None:
    import shutil

    from bastion.artifacts.keys import generate_keypair
    from bastion.artifacts.signing import sign_model
    from bastion.models.zoo import demo_model_path

    model = tmp_path / "digits.pt"
    shutil.copy(demo_model_path("digits"), model)
    _priv, pub = generate_keypair(tmp_path / "signer")
    sign_model(model, tmp_path / "signer")
    ok = collect_evidence(signed_models=[f"{model}={pub}"], use_store=False).for_control("BC-SC-02")
    assert ok.status == "pass" and "verifies" in ok.evidence[0].summary
    with model.open("ab") as fh:
        fh.write(b"\0")
    bad = collect_evidence(signed_models=[f"{model}={pub}"], use_store=False).for_control("BC-SC-02")
    assert bad.status == "fail" and "does NOT verify" in bad.evidence[0].summary


def test_data_manifest_is_reverified_against_the_data(bastion_home: Path, tmp_path: Path) -> None:
    from bastion.artifacts.keys import generate_keypair
    from bastion.data.integrity import build_manifest, write_manifest

    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("id,x,y\n1,0.5,0\n2,0.7,1\n3,0.1,0\n")
    _priv, pub = generate_keypair(tmp_path / "k")
    manifest = write_manifest(build_manifest([data]), tmp_path / "m.json", key=str(tmp_path / "k"))
    presence = collect_evidence(manifests=[manifest], use_store=False).for_control("BC-DA-01")
    assert presence.status == "pass" and "(signed)" in presence.evidence[0].summary
    spec = f"{manifest}={data}"
    assert collect_evidence(manifests=[spec], manifest_key=pub, use_store=False).for_control("BC-DA-01").status == "pass"
    (data / "train.csv").write_text("id,x,y\n1,0.5,0\n2,0.7,0\n3,0.1,0\n")  # one label flipped
    bad = collect_evidence(manifests=[spec], manifest_key=pub, use_store=False).for_control("BC-DA-01")
    assert bad.status == "fail" and "1 modified" in bad.evidence[0].summary
