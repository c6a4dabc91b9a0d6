"""In-toto attestations (Statement v1 in a signed DSSE envelope) that tie a model digest to evidence.

The statement's subjects are the model (the model-signing manifest digest: the digest the
bundle signs) and each file; the predicate records the scan verdict, the dataset digests and the
assessment (summary, scores, every finding, and the model fingerprint it assessed). The
envelope is signed with the same ECDSA P-256 key as the model bundle, using DSSE's
pre-authentication encoding.

Binding: ``predicate.binding`` names the signed digest, the file digest and the digest the
assessment says it assessed; ``sign_model`` refuses an assessment of another model and
``verify_model`` recomputes the binding from the files on disk.

Examples:
    >>> stmt = build_statement("m.pt", "ab12...", {"m.pt": "ab12..."}, scan={...})  # doctest: +SKIP
    >>> write_envelope(stmt, "key", "m.pt.att.json")                                 # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bastion.artifacts.keys import b64, public_key_fingerprint, sign_bytes, unb64, verify_bytes
from bastion.core.errors import SignatureError
from bastion.core.paths import atomic_write_text

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://bastion-ml.dev/attestation/model-evidence/v1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def build_statement(
    model_name: str,
    model_digest: str,
    file_digests: dict[str, str],
    scan: dict[str, Any],
    datasets: list[dict[str, Any]] | None = None,
    assessment: dict[str, Any] | None = None,
    binding: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An in-toto Statement v1 binding ``model_digest`` (and each file) to the evidence."""
    from bastion import __version__

    subjects = [{"name": model_name, "digest": {"sha256": model_digest}}]
    subjects += [{"name": name if name == model_name else f"{model_name}/{name}",
                  "digest": {"sha256": d}} for name, d in sorted(file_digests.items())]
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "bastion_version": __version__,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": {"name": model_name, "digest": {"sha256": model_digest}, "files": len(file_digests)},
            "scan": scan,
            "datasets": datasets or [],
            "assessment": assessment,
            "binding": binding or {"model_digest": model_digest},
        },
    }


def write_envelope(statement: dict[str, Any], key_path: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Sign ``statement`` as a DSSE envelope and write it (atomically) to ``out``."""
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    sig = sign_bytes(key_path, pae(PAYLOAD_TYPE, payload))
    from bastion.artifacts.keys import load_private_key

    pub = load_private_key(key_path).public_key()
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": b64(payload),
        "signatures": [{"keyid": public_key_fingerprint(pub), "sig": b64(sig)}],
    }
    atomic_write_text(out, json.dumps(envelope, indent=2) + "\n")
    return Path(out)


def read_envelope(path: str | os.PathLike[str], pub_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Verify a DSSE envelope with ``pub_path`` and return its in-toto statement."""
    p = Path(path)
    try:
        env = json.loads(p.read_text("utf-8"))
        payload = unb64(env["payload"])
        sigs = env["signatures"]
        if env.get("payloadType") != PAYLOAD_TYPE or not sigs:
            raise SignatureError(f"{p} is not an in-toto DSSE envelope")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"attestation {p} is unreadable: {exc}") from None
    errors = []
    for s in sigs:
        try:
            verify_bytes(pub_path, pae(PAYLOAD_TYPE, payload), unb64(s["sig"]))
            break
        except (SignatureError, KeyError, TypeError) as exc:
            errors.append(str(exc))
    else:
        raise SignatureError(f"attestation {p} signature does not verify with {pub_path}")
    statement: dict[str, Any] = json.loads(payload)
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != PREDICATE_TYPE:
        raise SignatureError(f"attestation {p} is not a Bastion in-toto statement")
    return statement


def assessment_evidence(assessment_path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Summary and dataset digests from an assessment JSON file (``bastion assess --format json``)."""
    from bastion.core.errors import InvalidInputError

    p = Path(assessment_path)
    try:
        data = json.loads(p.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"assessment {p} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or "results" not in data or "target" not in data:
        raise InvalidInputError(f"{p} is not a Bastion assessment (no 'target'/'results')")
    summary = data.get("summary") or {}
    scores: dict[str, Any] = {}
    findings: list[dict[str, Any]] = []
    for r in data.get("results", []):
        for k, v in (r.get("metrics") or {}).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                scores[f"{r.get('check_id')}.{k}"] = v
        for f in r.get("findings") or []:
            if isinstance(f, dict) and "severity" in f:
                findings.append({"check_id": r.get("check_id"), "id": f.get("id"), "severity": f.get("severity"),
                                 "title": str(f.get("title", ""))[:200]})
    fps = (data.get("target") or {}).get("fingerprints") or {}
    datasets = [{"name": k, "digest": {"sha256": v}} for k, v in sorted(fps.items()) if k != "model"]
    return {
        "file": p.name,
        "profile": data.get("profile"),
        "seed": data.get("seed"),
        "created_at": data.get("created_at"),
        "target": (data.get("target") or {}).get("name"),
        "max_severity": summary.get("max_severity"),
        "findings": summary.get("findings"),
        "bastion_version": (data.get("environment") or {}).get("bastion"),
        "scores": scores,
        "finding_list": findings,
        "target_fingerprint": fps.get("model"),
        "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
    }, datasets
