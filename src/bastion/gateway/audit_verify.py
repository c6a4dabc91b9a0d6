"""Verifying the audit chain and exporting records with Merkle inclusion proofs.

``verify_chain`` recomputes every record hash and link and every checkpoint (root, last hash,
signature) and names the first broken or missing record; ``export_records`` hands out records
with their audit paths; ``verify_exported`` lets a third party check one exported record alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from bastion.core.errors import IntegrityError as ChainError
from bastion.store.db import get_engine
from bastion.store.models_gateway import GatewayAuditRecord, GatewayCheckpoint

GENESIS = "0" * 64
_T: Any = GatewayAuditRecord.__table__
_C: Any = GatewayCheckpoint.__table__


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def record_hash(seq: int, ts: float, kind: str, actor: str, action: str, body: str, prev_hash: str) -> str:
    payload = canonical([seq, repr(float(ts)), kind, actor, action, body, prev_hash])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def checkpoint_message(first_seq: int, last_seq: int, last_hash: str, merkle_root: str) -> bytes:
    return canonical({"first_seq": first_seq, "last_seq": last_seq, "last_hash": last_hash,
                      "merkle_root": merkle_root, "log": "bastion-gateway-audit/v1"}).encode()


@dataclass
class VerifyReport:
    ok: bool
    records: int
    checkpoints: int
    first_bad_seq: int | None = None
    problem: str | None = None
    last_seq: int = 0
    last_hash: str = GENESIS
    unchecked_tail: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "checkpoints": self.checkpoints,
                "first_bad_seq": self.first_bad_seq, "problem": self.problem, "last_seq": self.last_seq,
                "last_hash": self.last_hash, "records_after_last_checkpoint": self.unchecked_tail}


def _iter_records(engine: Engine, lo: int = 1, hi: int | None = None, chunk: int = 5000) -> Iterator[Any]:
    cur = lo
    while True:
        q = select(_T).where(_T.c.seq >= cur).order_by(_T.c.seq).limit(chunk)
        if hi is not None:
            q = q.where(_T.c.seq <= hi)
        with engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return
        yield from rows
        cur = int(rows[-1].seq) + 1


def verify_chain(db_url: str | None = None, public_key: Path | None = None) -> VerifyReport:
    """Recompute the chain and every checkpoint; report the first broken or missing record."""
    from bastion.artifacts.keys import load_public_key, public_key_fingerprint, unb64, verify_bytes
    from bastion.core.errors import SignatureError
    from bastion.gateway.merkle import merkle_root

    engine = get_engine(db_url)
    with engine.connect() as conn:
        cps = conn.execute(select(_C).order_by(_C.c.first_seq)).all()
    pub = load_public_key(public_key) if public_key is not None else None
    rep = VerifyReport(ok=True, records=0, checkpoints=len(cps))

    def fail(seq: int | None, problem: str) -> VerifyReport:
        rep.ok, rep.first_bad_seq, rep.problem = False, seq, problem
        return rep

    hashes: dict[int, str] = {}
    prev, expected = GENESIS, 1
    for r in _iter_records(engine):
        seq = int(r.seq)
        if seq != expected:
            return fail(expected, f"record {expected} is missing (next present record is {seq})")
        if r.prev_hash != prev:
            return fail(seq, f"record {seq}: prev_hash does not match the hash of record {seq - 1}")
        h = record_hash(seq, r.ts, r.kind, r.actor, r.action, r.body, r.prev_hash)
        if h != r.hash:
            return fail(seq, f"record {seq}: content does not match its hash (modified)")
        try:
            json.loads(r.body)
        except ValueError:
            return fail(seq, f"record {seq}: body is not JSON")
        hashes[seq] = h
        prev, expected = h, seq + 1
        rep.records += 1
    rep.last_seq, rep.last_hash = expected - 1, prev
    covered = 0
    for cp in cps:
        if cp.first_seq != covered + 1:
            return fail(covered + 1, f"checkpoint {cp.id} starts at {cp.first_seq}; expected {covered + 1}")
        if cp.last_seq > rep.last_seq:
            return fail(rep.last_seq + 1, f"records {rep.last_seq + 1}..{cp.last_seq} under checkpoint "
                                          f"{cp.id} are missing (log truncated)")
        if hashes[cp.last_seq] != cp.last_hash:
            return fail(cp.last_seq, f"checkpoint {cp.id}: last hash differs from record {cp.last_seq}")
        root = merkle_root([bytes.fromhex(hashes[s]) for s in range(cp.first_seq, cp.last_seq + 1)]).hex()
        if root != cp.merkle_root:
            return fail(cp.first_seq, f"checkpoint {cp.id}: Merkle root differs from records "
                                      f"{cp.first_seq}..{cp.last_seq}")
        if pub is not None:
            if public_key_fingerprint(pub) != cp.key_id:
                return fail(cp.first_seq, f"checkpoint {cp.id} was signed by key {cp.key_id[:16]}…, "
                                          "not the given public key")
            try:
                verify_bytes(pub, checkpoint_message(cp.first_seq, cp.last_seq, cp.last_hash, cp.merkle_root),
                             unb64(cp.signature))
            except SignatureError:
                return fail(cp.first_seq, f"checkpoint {cp.id}: signature does not verify")
        covered = int(cp.last_seq)
    rep.unchecked_tail = rep.last_seq - covered
    return rep


def require_valid(db_url: str | None = None, public_key: Path | None = None) -> VerifyReport:
    rep = verify_chain(db_url, public_key)
    if not rep.ok:
        raise ChainError(f"audit log broken at record {rep.first_bad_seq}: {rep.problem}")
    return rep


def export_records(
    db_url: str | None = None, seq_from: int | None = None, seq_to: int | None = None,
    ts_from: float | None = None, ts_to: float | None = None,
) -> list[dict[str, Any]]:
    """Records in a seq/time range, each with its Merkle inclusion proof against a signed checkpoint."""
    from bastion.gateway.merkle import MerkleTree

    engine = get_engine(db_url)
    q = select(_T).order_by(_T.c.seq)
    if seq_from is not None:
        q = q.where(_T.c.seq >= seq_from)
    if seq_to is not None:
        q = q.where(_T.c.seq <= seq_to)
    if ts_from is not None:
        q = q.where(_T.c.ts >= ts_from)
    if ts_to is not None:
        q = q.where(_T.c.ts <= ts_to)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
        cps = conn.execute(select(_C).order_by(_C.c.first_seq)).all()
    trees: dict[int, tuple[Any, MerkleTree]] = {}
    out = []
    for r in rows:
        rec: dict[str, Any] = {"seq": r.seq, "ts": r.ts, "kind": r.kind, "actor": r.actor, "action": r.action,
                               "body": json.loads(r.body), "body_json": r.body, "prev_hash": r.prev_hash,
                               "hash": r.hash, "proof": None}
        cp = next((c for c in cps if c.first_seq <= r.seq <= c.last_seq), None)
        if cp is not None:
            if cp.id not in trees:
                with engine.connect() as conn:
                    leaves = conn.execute(select(_T.c.hash).where(_T.c.seq.between(cp.first_seq, cp.last_seq))
                                          .order_by(_T.c.seq)).scalars().all()
                trees[cp.id] = (cp, MerkleTree([bytes.fromhex(h) for h in leaves]))
            _, tree = trees[cp.id]
            idx = int(r.seq - cp.first_seq)
            rec["proof"] = {
                "checkpoint": {"first_seq": cp.first_seq, "last_seq": cp.last_seq, "last_hash": cp.last_hash,
                               "merkle_root": cp.merkle_root, "signature": cp.signature, "key_id": cp.key_id},
                "leaf_index": idx, "tree_size": int(cp.last_seq - cp.first_seq + 1),
                "path": [p.hex() for p in tree.proof(idx)],
            }
        out.append(rec)
    return out


def verify_exported(record: dict[str, Any], public_key: Path | None = None) -> bool:
    """Check one exported record: its hash, and its inclusion proof against the signed checkpoint."""
    from bastion.artifacts.keys import unb64, verify_bytes
    from bastion.core.errors import SignatureError
    from bastion.gateway.merkle import root_from_proof

    h = record_hash(record["seq"], record["ts"], record["kind"], record["actor"], record["action"],
                    record["body_json"], record["prev_hash"])
    if h != record["hash"]:
        return False
    proof = record.get("proof")
    if proof is None:
        return True
    cp = proof["checkpoint"]
    root = root_from_proof(proof["leaf_index"], proof["tree_size"], bytes.fromhex(h),
                           [bytes.fromhex(p) for p in proof["path"]])
    if root.hex() != cp["merkle_root"]:
        return False
    if public_key is not None:
        try:
            verify_bytes(public_key, checkpoint_message(cp["first_seq"], cp["last_seq"], cp["last_hash"],
                                                        cp["merkle_root"]), unb64(cp["signature"]))
        except SignatureError:
            return False
    return True
