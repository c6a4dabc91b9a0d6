"""The audit chain: any single-byte change is detected; proofs verify; concurrent writers stay chained."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text


@pytest.fixture(scope="module")
def chain(gw_home: Path) -> Any:
    from bastion.gateway.audit import AuditLog, ensure_audit_key, write_checkpoint
    from bastion.store.db import get_engine, upgrade

    upgrade()
    key = ensure_audit_key(gw_home / "audit-key")
    log = AuditLog(None, key, checkpoint_every=10_000, checkpoint_interval_s=3600)
    futs = [log.submit("request", f"api_key:cl_{i % 3}", "predict", {"i": i, "labels": [i % 10]})
            for i in range(40)]
    assert [f.result(timeout=30) for f in futs] == list(range(1, 41))
    log.close()
    write_checkpoint(get_engine(), key)
    return key, get_engine()


def test_merkle_proofs_match_roots_for_every_size() -> None:
    from bastion.gateway.merkle import MerkleTree, root_from_proof

    for n in range(1, 70):
        leaves = [os.urandom(32) for _ in range(n)]
        tree = MerkleTree(leaves)
        for i in range(n):
            assert root_from_proof(i, n, leaves[i], tree.proof(i)) == tree.root
        if n > 1:
            assert root_from_proof(0, n, os.urandom(32), tree.proof(0)) != tree.root


def test_clean_chain_verifies_and_exports_with_proofs(chain: Any) -> None:
    from bastion.gateway.audit import export_records, verify_chain, verify_exported

    key, _ = chain
    rep = verify_chain(None, Path(str(key) + ".pub"))
    assert rep.ok and rep.records == 40 and rep.checkpoints == 1 and rep.unchecked_tail == 0
    recs = export_records(None, 5, 9)
    assert [r["seq"] for r in recs] == [5, 6, 7, 8, 9]
    assert all(verify_exported(r, Path(str(key) + ".pub")) for r in recs)
    forged = dict(recs[0], body_json=recs[0]["body_json"].replace('"i":4', '"i":5'))
    assert not verify_exported(forged)


COLUMNS = ["body", "actor", "action", "kind", "hash", "prev_hash"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=st.integers(1, 40), column=st.sampled_from(COLUMNS), pos=st.integers(0, 10_000),
       delta=st.integers(1, 255))
def test_any_single_byte_change_is_detected(chain: Any, seq: int, column: str, pos: int, delta: int) -> None:
    from bastion.gateway.audit import verify_chain

    key, engine = chain
    with engine.begin() as conn:
        original = conn.execute(text(f"SELECT {column} FROM gateway_audit WHERE seq = :s"), {"s": seq}).scalar()
        raw = bytearray(original.encode())
        i = pos % len(raw)
        raw[i] = (raw[i] + delta) % 128 or 1  # stay ASCII so the column still stores it
        changed = raw.decode()
        if changed == original:
            return
        conn.execute(text(f"UPDATE gateway_audit SET {column} = :v WHERE seq = :s"), {"v": changed, "s": seq})
    try:
        rep = verify_chain(None, Path(str(key) + ".pub"))
        assert not rep.ok
        assert rep.first_bad_seq in (seq, seq + 1) if column in ("hash",) else rep.first_bad_seq == seq
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE gateway_audit SET {column} = :v WHERE seq = :s"), {"v": original, "s": seq})
    assert verify_chain(None, Path(str(key) + ".pub")).ok


def test_deleted_record_and_forged_checkpoint_are_detected(chain: Any) -> None:
    from bastion.gateway.audit import verify_chain

    key, engine = chain
    pub = Path(str(key) + ".pub")
    with engine.begin() as conn:
        row = conn.execute(text("SELECT * FROM gateway_audit WHERE seq = 17")).mappings().one()
        conn.execute(text("DELETE FROM gateway_audit WHERE seq = 17"))
    rep = verify_chain(None, pub)
    assert not rep.ok and rep.first_bad_seq == 17 and "missing" in rep.problem
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO gateway_audit (seq, ts, kind, actor, action, body, prev_hash, hash) "
                          "VALUES (:seq, :ts, :kind, :actor, :action, :body, :prev_hash, :hash)"), dict(row))
        sig = conn.execute(text("SELECT signature FROM gateway_audit_checkpoints")).scalar()
        conn.execute(text("UPDATE gateway_audit_checkpoints SET signature = :s"),
                     {"s": sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]})
    try:
        rep = verify_chain(None, pub)
        assert not rep.ok and "signature" in rep.problem
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE gateway_audit_checkpoints SET signature = :s"), {"s": sig})
    assert verify_chain(None, pub).ok


def test_two_writers_interleave_into_one_chain(chain: Any) -> None:
    from bastion.gateway.audit import AuditLog, verify_chain

    key, _ = chain
    logs = [AuditLog(None, None), AuditLog(None, None)]

    def work(log: AuditLog, tag: int) -> None:
        for i in range(30):
            log.append("request", f"writer{tag}", "predict", {"i": i})

    threads = [threading.Thread(target=work, args=(lg, t)) for t, lg in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for lg in logs:
        lg.close()
    rep = verify_chain(None, Path(str(key) + ".pub"))
    assert rep.ok and rep.records == 100 and rep.unchecked_tail == 60


def test_cli_verify_exits_1_and_names_the_broken_record(chain: Any) -> None:
    import json

    from typer.testing import CliRunner

    from bastion.cli.main import build_app

    key, engine = chain
    with engine.begin() as conn:
        original = conn.execute(text("SELECT body FROM gateway_audit WHERE seq = 23")).scalar()
        conn.execute(text("UPDATE gateway_audit SET body = :b WHERE seq = 23"), {"b": original.replace("22", "99")})
    try:
        r = CliRunner().invoke(build_app(), ["audit", "verify", "--public-key", f"{key}.pub", "--format", "json"])
        assert r.exit_code == 1
        rep = json.loads(r.stdout)
        assert rep["ok"] is False and rep["first_bad_seq"] == 23 and "modified" in rep["problem"]
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE gateway_audit SET body = :b WHERE seq = 23"), {"b": original})
    r = CliRunner().invoke(build_app(), ["audit", "verify", "--public-key", f"{key}.pub"])
    assert r.exit_code == 0 and "audit log OK" in r.stdout
