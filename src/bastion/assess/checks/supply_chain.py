"""Supply-chain checks: scan the target's model file, verify its signature and attestation.

``supply_chain.scan`` runs the allowlist-first scanner on ``target.model_path``;
``supply_chain.signature`` verifies ``PATH.sig`` (OpenSSF model-signing) and the evidence
attestation with the public key from the ``public_key`` option or ``$BASTION_MODEL_PUBKEY``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bastion.assess.registry import CheckContext, Outcome, check, status_for_severity
from bastion.core.errors import BastionError
from bastion.core.results import Finding
from bastion.core.severity import Severity, Status
from bastion.core.target import Target

SCAN_CONTROLS = [
    "mitre-atlas:AML.T0010",
    "mitre-atlas:AML.T0010.003",
    "mitre-atlas:AML.T0011.000",
    "mitre-atlas:AML.T0018.002",
    "owasp-ml:ML06:2023",
    "nist-ai-rmf:MANAGE-3.1",
    "eu-ai-act:Art15(5)",
]
SIGNATURE_CONTROLS = [
    "mitre-atlas:AML.M0013",
    "mitre-atlas:AML.M0014",
    "mitre-atlas:AML.T0010.003",
    "owasp-ml:ML06:2023",
    "nist-ai-rmf:MANAGE-3.2",
    "eu-ai-act:Art15(5)",
]
MAX_FINDINGS = 25


def _model_path(target: Target) -> Path | None:
    if not target.model_path:
        return None
    p = Path(target.model_path)
    return p if p.exists() else None


def _has_model_file(target: Target) -> bool:
    return _model_path(target) is not None


def _signed_file(target: Target, ctx: CheckContext, companion: str) -> tuple[Path, str | None, Path, dict[str, Any]]:
    """The model file, the public key to verify it with (option ``public_key`` or ``$BASTION_MODEL_PUBKEY``),
    its ``companion`` file (``bundle`` or ``attestation``) and the check's params naming all three."""
    from bastion.artifacts import signing

    path = _model_path(target)
    assert path is not None
    pub = ctx.option("public_key") or os.environ.get("BASTION_MODEL_PUBKEY")
    beside = getattr(signing, f"{companion}_path_for")(path)
    return path, pub, beside, {"path": str(path), companion: str(beside), "public_key": pub}


@check(id="supply_chain.scan",
       title="Model file scan (allowlist-first pickle, archive, ONNX, Keras, safetensors analysis)",
       controls=SCAN_CONTROLS, applies=_has_model_file)
def model_scan_check(target: Target, ctx: CheckContext) -> Outcome:
    """Scan the model file(s) for code execution, tampering and malformed structure."""
    from bastion.artifacts.scan import scan_path

    path = _model_path(target)
    assert path is not None
    allow = list(ctx.option("allow", []) or [])
    report = scan_path(path, allow=allow)
    counts = {s.value: 0 for s in Severity}
    for _, x in report.findings:
        counts[x.severity.value] += x.count
    findings = []
    for f, x in sorted(report.findings, key=lambda fx: -fx[1].severity.rank)[:MAX_FINDINGS]:
        findings.append(Finding(
            id=f"supply_chain.scan.{x.code.lower()}",
            severity=x.severity,
            title=f"{x.code}: {x.global_name or f.format} in {Path(f.path).name}",
            evidence={"file": f.path, "format": f.format, "location": x.location, "global": x.global_name,
                      "message": x.message, "count": x.count},
            recommendation=(
                f"inspect with `bastion model scan {f.path}`; re-export the model as safetensors/ONNX/"
                "TorchScript, or allow a trusted class with `bastion model scan --allow module:name`"
            ),
            controls=list(SCAN_CONTROLS),
        ))
    ms = report.max_severity
    return Outcome(
        status_for_severity(ms),
        f"scan verdict {report.verdict} ({len(report.scanned_files)} file(s), max severity "
        f"{ms.value if ms else 'none'})",
        metrics={
            "scan_verdict": report.verdict,
            "max_severity": ms.value if ms else "none",
            "files_scanned": len(report.scanned_files),
            "findings_critical": counts["critical"],
            "findings_high": counts["high"],
            "findings_medium": counts["medium"],
            "scan_seconds": round(report.duration_s, 4),
        },
        params={"path": str(path), "allowlist_version": report.allowlist_version, "allow": allow},
        findings=findings,
    )


KEY_PATH = "keys/release"


def sign_command(path: Path | str, ctx: CheckContext, with_keygen: bool = False) -> str:
    """The runnable command that signs ``path`` with this assessment attached as its evidence attestation.

    ``keys/release`` is the private key (``keys/release.pub`` its public half); ``with_keygen`` prepends the
    one-time command that creates it.
    """
    report = (Path(ctx.out_dir) / "assessment.json") if ctx.out_dir is not None else Path("assessment.json")
    sign = f"bastion model sign {path} --key {KEY_PATH} --attest {report}"
    if not with_keygen:
        return sign
    return f"bastion keys generate --out {KEY_PATH}   # once: private key {KEY_PATH}, public key {KEY_PATH}.pub\n{sign}"


@check(id="supply_chain.signature",
       title="Model signature and evidence attestation (OpenSSF model signing + in-toto)",
       controls=SIGNATURE_CONTROLS, profiles=("standard", "thorough"), applies=_has_model_file)
def signature_check(target: Target, ctx: CheckContext) -> Outcome:
    """Verify the model's OpenSSF model-signing bundle and Bastion evidence attestation."""
    from bastion.artifacts.signing import verify_model

    path, pub, bundle, params = _signed_file(target, ctx, "bundle")
    rec = sign_command(path, ctx, with_keygen=True)
    if not bundle.is_file():
        f = Finding("supply_chain.signature.unsigned", Severity.MEDIUM, "model file is not signed",
                    {"file": str(path)}, rec, list(SIGNATURE_CONTROLS))
        return Outcome(Status.WARN, "no signature bundle", {"signed": False, "verified": False}, params, [f])
    if not pub:
        f = Finding("supply_chain.signature.no_key", Severity.LOW, "signed, but no public key to verify with",
                    {"bundle": str(bundle)}, "pass the public key (option public_key or $BASTION_MODEL_PUBKEY)",
                    list(SIGNATURE_CONTROLS))
        return Outcome(Status.WARN, "signature not verified (no key)", {"signed": True, "verified": False}, params,
                       [f])
    try:
        res = verify_model(path, pub)
    except BastionError as exc:
        f = Finding("supply_chain.signature.invalid", Severity.CRITICAL, "model does not match its signature",
                    {"error": str(exc)}, f"restore the signed model, or sign this one again: {sign_command(path, ctx)}", list(SIGNATURE_CONTROLS))
        return Outcome(Status.FAIL, str(exc), {"signed": True, "verified": False}, params, [f])
    findings = []
    if res.attestation is None:
        findings.append(Finding("supply_chain.signature.no_attestation", Severity.LOW,
                                "signature verified but no evidence attestation", {"bundle": str(bundle)},
                                rec, list(SIGNATURE_CONTROLS)))
    return Outcome(
        Status.WARN if findings else Status.PASS,
        f"signature verified ({len(res.files)} file(s)), digest {res.model_digest[:16]}…",
        {"signed": True, "verified": True, "files_signed": len(res.files),
         "attested": res.attestation is not None}, params, findings,
    )


PROVENANCE_CONTROLS = [*SIGNATURE_CONTROLS, "mitre-atlas:AML.M0023"]


@check(id="supply_chain.provenance",
       title="Provenance: attested model digest, scan verdict and dataset digests match the target",
       controls=PROVENANCE_CONTROLS, profiles=("standard", "thorough"), applies=_has_model_file)
def provenance_check(target: Target, ctx: CheckContext) -> Outcome:
    """Does the signed attestation describe this model *and the data it was assessed on*?"""
    from bastion.artifacts.signing import verify_model

    path, pub, att, params = _signed_file(target, ctx, "attestation")
    controls = list(PROVENANCE_CONTROLS)
    rec = sign_command(path, ctx)

    def result(status: Status, metrics: dict[str, object], findings: list[Finding], summary: str) -> Outcome:
        return Outcome(status, summary, dict(metrics), params, findings)

    if not att.is_file():
        return result(Status.WARN, {"attested": False}, [Finding(
            "supply_chain.provenance.missing", Severity.MEDIUM, "no provenance attestation for the model",
            {"file": str(path)}, rec, controls)], "no attestation")
    if not pub:
        return result(Status.WARN, {"attested": True, "verified": False}, [Finding(
            "supply_chain.provenance.no_key", Severity.LOW, "attestation present but no public key to verify it",
            {"attestation": str(att)}, "pass option public_key or set $BASTION_MODEL_PUBKEY", controls)],
            "attestation not verified (no key)")
    try:
        res = verify_model(path, pub, require_attestation=True)
    except BastionError as exc:
        return result(Status.FAIL, {"attested": True, "verified": False}, [Finding(
            "supply_chain.provenance.invalid", Severity.CRITICAL, "attestation or signature does not verify",
            {"error": str(exc)}, f"restore the attested model, or attest this one again: {sign_command(path, ctx)}", controls)], str(exc))
    predicate = res.attestation or {}
    attested = {d.get("name"): (d.get("digest") or {}).get("sha256") for d in predicate.get("datasets", [])}
    current = {k: v for k, v in target.fingerprints.items() if k != "model"}
    mismatched = sorted(k for k in attested.keys() & current.keys() if attested[k] != current[k])
    findings = []
    if mismatched:
        findings.append(Finding(
            "supply_chain.provenance.data_mismatch", Severity.HIGH,
            "the model was attested with different data than the data assessed now",
            {"datasets": mismatched, "attested": {k: attested[k] for k in mismatched},
             "current": {k: current[k] for k in mismatched}}, rec, controls))
    elif not attested:
        findings.append(Finding("supply_chain.provenance.no_datasets", Severity.LOW,
                                "attestation records no dataset digests", {"attestation": str(att)}, rec, controls))
    scan = predicate.get("scan") or {}
    status = Status.FAIL if mismatched else (Status.WARN if findings else Status.PASS)
    return result(status, {
        "attested": True, "verified": True, "datasets_attested": len(attested),
        "datasets_matching": len([k for k in attested.keys() & current.keys() if attested[k] == current[k]]),
        "attested_scan_verdict": scan.get("verdict"),
    }, findings, f"attestation verified; scan {scan.get('verdict')}, {len(attested)} dataset digest(s)")

