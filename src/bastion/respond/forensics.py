"""Forensic bundles: everything needed to reconstruct an incident, signed, verifiable offline.

``export_bundle`` writes a ``.tar.gz`` holding:

- ``incident.json`` (evidence, affected clients, timeline, regulatory clocks),
- ``audit.jsonl``: the audit-log slice around the incident, each record with its hash-chain
  fields and Merkle inclusion proof against a signed checkpoint,
- ``audit-key.pub``: the gateway key that signs audit checkpoints,
- ``models.json``: the model's registered versions (digests, signature and scan status),
- ``detectors.json``: detector state and evidence (monitor snapshot, when given),
- ``flagged_inputs.json``: digests of the affected clients' inputs (never the raw inputs),
- ``config.json`` and ``manifest.json`` (sha256 of every file) with ``manifest.sig``
  (ECDSA P-256 over the manifest, key id recorded).

``verify_bundle`` reads the archive in memory (no extraction, no links, no absolute or ``..``
paths), checks every digest, the manifest signature, the audit records' hashes, the chain links
between consecutive records and each inclusion proof against the signed checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bastion import __version__
from bastion.artifacts.keys import (
    b64,
    public_key_fingerprint,
    public_path_for,
    sign_bytes,
    unb64,
    verify_bytes,
)
from bastion.core.errors import IntegrityError, InvalidInputError, SignatureError
from bastion.core.paths import atomic_write_bytes
from bastion.respond.incidents import get_incident

BUNDLE_FORMAT = "bastion-forensic-bundle/1"
MAX_MEMBER_BYTES = 512 << 20


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()


def export_bundle(incident_id: int, out: str | Path, key: str | Path, *, db_url: str | None = None,
                  audit_public_key: str | Path | None = None, detectors: dict[str, Any] | None = None,
                  config: dict[str, Any] | None = None, margin_s: float = 3600.0) -> dict[str, Any]:
    """Write the signed bundle for ``incident_id``; returns its manifest."""
    from bastion.gateway.audit import export_records

    inc = get_incident(incident_id, db_url)
    opened = datetime.fromisoformat(inc["opened_at"]).timestamp()
    records = export_records(db_url, ts_from=opened - margin_s, ts_to=time.time() + 1)
    clients = set(inc.get("affected_clients") or [])
    flagged = [{"seq": r["seq"], "request_id": r["body"].get("request_id"), "input_sha256": r["body"].get("input_sha256"),
                "actor": r["actor"]} for r in records
               if r["kind"] == "request" and any(c and c in r["actor"] for c in clients)]
    files: dict[str, bytes] = {
        "incident.json": _dumps(inc),
        "audit.jsonl": b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in records),
        "models.json": _dumps(_model_versions(inc.get("model"), db_url)),
        "detectors.json": _dumps({"evidence": inc.get("evidence"), "monitor": detectors or {}}),
        "flagged_inputs.json": _dumps(flagged),
        "config.json": _dumps(config or {}),
    }
    if audit_public_key is not None and Path(audit_public_key).is_file():
        files["audit-key.pub"] = Path(audit_public_key).read_bytes()
    pub = public_path_for(key)
    manifest = {
        "format": BUNDLE_FORMAT, "incident_id": incident_id, "created_at": time.time(), "bastion": __version__,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        "audit_records": len(records), "signing_key_id": public_key_fingerprint(pub),
    }
    manifest_bytes = _dumps(manifest)
    files["manifest.json"] = manifest_bytes
    files["manifest.sig"] = b64(sign_bytes(key, manifest_bytes)).encode()
    files["signing-key.pub"] = pub.read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
    atomic_write_bytes(out, buf.getvalue(), mode=0o600)
    return manifest


def _model_versions(model: str | None, db_url: str | None) -> list[dict[str, Any]]:
    if not model:
        return []
    try:
        from bastion.gateway.registry import Registry

        return [v.to_dict() for v in Registry(_cfg(db_url)).list(model)]
    except Exception as exc:  # the registry may be unavailable offline: say so in the bundle
        return [{"error": f"registry unavailable: {exc}"}]


def _cfg(db_url: str | None) -> Any:
    from bastion.gateway.config import GatewayConfig

    return GatewayConfig(db_url=db_url)


def _read_members(path: str | Path) -> dict[str, bytes]:
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"bundle {p} not found")
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(p, mode="r:gz") as tar:
            for m in tar.getmembers():
                if not m.isfile() or m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise IntegrityError(f"bundle member {m.name!r} is not a plain relative file")
                if m.size > MAX_MEMBER_BYTES:
                    raise IntegrityError(f"bundle member {m.name!r} is too large")
                fh = tar.extractfile(m)
                assert fh is not None
                out[m.name] = fh.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise IntegrityError(f"{p} is not a readable forensic bundle: {exc}") from None
    return out


def verify_bundle(path: str | Path, pub: str | Path | None = None) -> dict[str, Any]:
    """Verify a bundle offline; raises ``IntegrityError``/``SignatureError`` naming the first problem."""
    from bastion.gateway.audit import verify_exported

    files = _read_members(path)
    for required in ("manifest.json", "manifest.sig", "incident.json", "audit.jsonl"):
        if required not in files:
            raise IntegrityError(f"bundle has no {required}")
    manifest = json.loads(files["manifest.json"])
    if manifest.get("format") != BUNDLE_FORMAT:
        raise IntegrityError(f"unknown bundle format {manifest.get('format')!r}")
    key_pem = Path(pub).read_bytes() if pub is not None else files.get("signing-key.pub")
    if key_pem is None:
        raise SignatureError("no public key to check the manifest signature (pass --pub)")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        kp = Path(tmp) / "k.pub"
        kp.write_bytes(key_pem)
        verify_bytes(kp, files["manifest.json"], unb64(files["manifest.sig"].decode()))
        key_id = public_key_fingerprint(kp)
        for name, digest in manifest["files"].items():
            if name not in files:
                raise IntegrityError(f"bundle is missing {name}")
            if hashlib.sha256(files[name]).hexdigest() != digest:
                raise IntegrityError(f"{name} does not match its digest in the manifest: the bundle was modified")
        audit_key = None
        if "audit-key.pub" in files:
            audit_key = Path(tmp) / "audit.pub"
            audit_key.write_bytes(files["audit-key.pub"])
        records = [json.loads(line) for line in files["audit.jsonl"].splitlines() if line.strip()]
        prev = None
        proven = 0
        for rec in records:
            if not verify_exported(rec, audit_key):
                raise IntegrityError(f"audit record seq {rec['seq']} fails its hash or inclusion proof")
            if prev is not None and rec["seq"] == prev["seq"] + 1 and rec["prev_hash"] != prev["hash"]:
                raise IntegrityError(f"audit chain broken between seq {prev['seq']} and {rec['seq']}")
            proven += rec.get("proof") is not None
            prev = rec
    return {"valid": True, "incident_id": manifest["incident_id"], "files": len(manifest["files"]),
            "audit_records": len(records), "records_with_inclusion_proof": proven, "signing_key_id": key_id,
            "pinned_key": pub is not None}
