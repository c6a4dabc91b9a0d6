"""Model signing and verification with OpenSSF model-signing, plus Bastion's evidence attestation.

``sign_model`` writes two files beside the model: ``PATH.sig`` — a Sigstore bundle exactly
as OpenSSF ``model_signing sign key`` writes it (per-file sha256 manifest in an in-toto
statement, DSSE-signed with an ECDSA P-256 key), so ``model_signing verify key`` accepts it —
and ``PATH.att.json`` — a DSSE-signed in-toto statement binding the same model digest to the
scan verdict, dataset digests and the assessment summary.

Examples:
    >>> from bastion.artifacts.signing import sign_model, verify_model
    >>> sign_model("model_dir", "keys/release", attest="assessment.json")    # doctest: +SKIP
    PosixPath('model_dir.sig')
    >>> verify_model("model_dir", "keys/release.pub", require_attestation=True,
    ...              max_severity=Severity.MEDIUM).model_digest          # doctest: +SKIP
    '6b1f…'
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bastion.artifacts.keys import load_private_key, load_public_key, public_key_fingerprint
from bastion.core.errors import (
    DependencyError,
    InvalidInputError,
    SignatureError,
    UnsafeArtifactError,
)
from bastion.core.paths import atomic_write_text
from bastion.core.severity import Severity

HASH_CACHE_VERSION = 1


def bundle_path_for(path: str | os.PathLike[str]) -> Path:
    """``PATH.sig`` beside the model file or directory."""
    p = Path(path)
    return p.with_name(p.name + ".sig")


def attestation_path_for(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".att.json")


def sidecars_for(path: str | os.PathLike[str]) -> list[Path]:
    """The serving-spec sidecars beside a single-file model (``MODEL.EXT.bastion.json``, ``MODEL.bastion.json``)."""
    p = Path(path)
    if not p.is_file():
        return []  # a directory model's sidecar is one of its files, covered by the manifest
    cands = [p.with_name(p.name + ".bastion.json"), p.with_name(p.stem + ".bastion.json")]
    return [c for i, c in enumerate(cands) if c.is_file() and c not in cands[:i]]


def _serving_specs(path: Path) -> list[dict[str, Any]]:
    import hashlib

    out = []
    for side in sidecars_for(path):
        raw = side.read_bytes()
        try:
            spec = json.loads(raw)
        except ValueError as exc:
            raise InvalidInputError(f"serving spec {side} is not valid JSON ({exc}); fix it before signing") from None
        if not isinstance(spec, dict):
            raise InvalidInputError(f"serving spec {side} must hold a JSON object")
        out.append({"file": side.name, "sha256": hashlib.sha256(raw).hexdigest(), "spec": spec})
    return out


def _check_serving_specs(p: Path, predicate: dict[str, Any] | None, att_file: Path) -> list[dict[str, Any]]:
    """Every sidecar beside the model must be the one the signed attestation names (same digest)."""
    import hashlib

    signed = {s.get("file"): s.get("sha256") for s in ((predicate or {}).get("serving_specs") or [])}
    for side in sidecars_for(p):
        digest = hashlib.sha256(side.read_bytes()).hexdigest()
        if predicate is None:
            raise SignatureError(f"serving spec {side} is not covered by the signature: no attestation {att_file} "
                                 f"(sign the model with its sidecar beside it: bastion model sign {p})")
        if signed.get(side.name) != digest:
            what = "was changed after signing" if side.name in signed else "was not present when the model was signed"
            raise SignatureError(f"serving spec {side} is not covered by the signature: it {what} "
                                 f"(sha256 {digest}); re-sign the model with the spec it should serve with")
    return list((predicate or {}).get("serving_specs") or [])


def _hash_cache_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.hashcache.json")


@dataclass
class VerificationResult:
    """What ``verify_model`` established."""

    model: str
    bundle: str
    key_id: str
    model_digest: str
    files: dict[str, str] = field(default_factory=dict)
    attestation: dict[str, Any] | None = None
    attested_scan: dict[str, Any] | None = None
    current_scan: dict[str, Any] | None = None
    verified: bool = True
    serving_specs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "model": self.model,
            "bundle": self.bundle,
            "key_id": self.key_id,
            "model_digest": self.model_digest,
            "files": self.files,
            "attestation": self.attestation,
            "attested_scan": self.attested_scan,
            "current_scan": self.current_scan,
            "serving_specs": self.serving_specs,
        }


def _ms() -> Any:
    try:
        import model_signing  # noqa: F401
        from model_signing import hashing, manifest
        from model_signing._hashing import hashing as hashing_engine
        from model_signing._signing import sign_ec_key, sign_sigstore_pb, signing
    except ImportError:
        raise DependencyError.missing("model-signing", "supplychain") from None
    return hashing, manifest, hashing_engine, sign_ec_key, sign_sigstore_pb, signing


def _hashing_config() -> Any:
    hashing, *_ = _ms()
    return hashing.Config().use_file_serialization(hashing_algorithm="sha256", allow_symlinks=False)


def _files_of(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    out = []
    for p in sorted(path.rglob("*")):
        if p.is_symlink():
            raise InvalidInputError(f"{p} is a symbolic link; model signing refuses links")
        rel = p.relative_to(path).parts
        if p.is_file() and rel[0] not in (".git", ".github", ".gitattributes", ".gitignore"):
            out.append(p)
    return out


def _manifest(path: Path, incremental: bool) -> tuple[Any, dict[str, str]]:
    """Hash the model (only changed files when ``incremental``); returns (manifest, {name: hex})."""
    _, manifest, hashing_engine, *_ = _ms()
    cfg = _hashing_config()
    cache_file = _hash_cache_path(path)
    cache: dict[str, Any] = {}
    if incremental and cache_file.is_file():
        try:
            data = json.loads(cache_file.read_text("utf-8"))
            if data.get("version") == HASH_CACHE_VERSION:
                cache = data.get("files", {})
        except ValueError:
            cache = {}
    files = _files_of(path)
    stats = {f: f.stat() for f in files}

    def rel(f: Path) -> str:
        return "." if f == path else f.relative_to(path).as_posix()

    reuse: dict[str, str] = {}
    to_hash: list[Path] = []
    for f in files:
        c = cache.get(rel(f))
        st = stats[f]
        if incremental and c and c.get("size") == st.st_size and c.get("mtime_ns") == st.st_mtime_ns:
            reuse[rel(f)] = c["sha256"]
        else:
            to_hash.append(f)
    if not incremental or not reuse:
        m = cfg.hash(path)
    else:
        fresh = cfg.hash(path, files_to_hash=to_hash) if to_hash else None
        items = [manifest.FileManifestItem(path=Path(name), digest=hashing_engine.Digest("sha256", bytes.fromhex(d)))
                 for name, d in reuse.items()]
        if fresh is not None:
            items += [manifest.FileManifestItem(path=Path(rd.identifier), digest=rd.digest)
                      for rd in fresh.resource_descriptors()]
        m = manifest.Manifest(path.name, items, manifest._FileSerialization("sha256", False, frozenset()))
    digests = _named({rd.identifier: rd.digest.digest_hex for rd in m.resource_descriptors()}, path)
    raw = {rd.identifier: rd.digest.digest_hex for rd in m.resource_descriptors()}
    new_cache = {rel(f): {"size": stats[f].st_size, "mtime_ns": stats[f].st_mtime_ns,
                          "sha256": raw.get(rel(f))} for f in files}
    atomic_write_text(cache_file, json.dumps({"version": HASH_CACHE_VERSION, "files": new_cache}), mode=0o644)
    return m, digests


def _named(digests: dict[str, str], path: Path) -> dict[str, str]:
    """model-signing names a single-file model ``.``; show its file name instead."""
    return {(path.name if k == "." else k): v for k, v in digests.items()}


def _bundle_statement(bundle_file: Path) -> dict[str, Any]:
    try:
        bundle = json.loads(bundle_file.read_text("utf-8"))
        payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
        statement: dict[str, Any] = json.loads(payload)
        return statement
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"signature bundle {bundle_file} is unreadable: {exc}") from None


def sign_model(
    path: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    attest: dict[str, Any] | str | os.PathLike[str] | None = None,
    incremental: bool = False,
    allow: list[str] | None = None,
    allow_unsafe: bool = False,
) -> Path:
    """Sign a model file or directory with an ECDSA P-256 key; returns the bundle path (``PATH.sig``).

    The model is scanned first; an unsafe model (high/critical findings) is refused unless
    ``allow_unsafe``. ``attest`` adds an assessment (a dict or the path of an assessment JSON):
    its summary and dataset digests go into the attestation ``PATH.att.json``. With
    ``incremental`` only files whose size or mtime changed since the last signing are re-hashed.
    """
    from bastion.artifacts.attestation import assessment_evidence, build_statement, write_envelope
    from bastion.artifacts.scan import scan_path

    _, _, _, sign_ec_key, _, signing = _ms()
    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"model {p} does not exist")
    load_private_key(key_path)  # mode and format checks with Bastion's messages
    report = scan_path(p, allow=allow)
    verdict, reason = report.verdict_and_reason
    if verdict in ("unsafe", "error") and not allow_unsafe:
        worst = max(report.findings, key=lambda fx: fx[1].severity.rank) if verdict == "unsafe" else None
        what = f"{worst[1].code} {worst[1].global_name or ''} in {worst[0].path}" if worst else reason
        raise UnsafeArtifactError(f"refusing to sign {p}: scan verdict {verdict} ({what}); run: bastion model scan {p}")
    assessment = None
    datasets: list[dict[str, Any]] = []
    if isinstance(attest, dict):
        assessment, datasets = attest.get("assessment"), list(attest.get("datasets", []))
    elif attest is not None:
        assessment, datasets = assessment_evidence(attest)
    m, digests = _manifest(p, incremental)
    signer = sign_ec_key.Signer(Path(key_path))
    signature = signer.sign(signing.Payload(m))
    bundle_file = bundle_path_for(p)
    with tempfile.TemporaryDirectory(dir=bundle_file.parent) as tmp:
        tmp_file = Path(tmp) / "bundle.sig"
        signature.write(tmp_file)
        model_digest = _bundle_statement(tmp_file)["subject"][0]["digest"]["sha256"]
        binding = _binding(p, model_digest, digests, assessment)
        if assessment is not None and binding["assessment_target"] not in binding["accepted"]:
            raise SignatureError(
                f"refusing to attest {p}: the assessment ({(assessment or {}).get('file')}) assessed model "
                f"{binding['assessment_target']}, but the model being signed is {_describe(binding)}; "
                f"assess this model and sign again")
        os.replace(tmp_file, bundle_file)
    scan = {
        "verdict": report.verdict,
        "max_severity": report.max_severity.value if report.max_severity else "none",
        "allowlist_version": report.allowlist_version,
        "findings": len(report.findings),
        "files_scanned": len(report.scanned_files),
    }
    binding.pop("accepted")
    specs = _serving_specs(p)
    statement = build_statement(p.name, model_digest, {**digests, **{s["file"]: s["sha256"] for s in specs}}, scan,
                                datasets, assessment, binding)
    statement["predicate"]["serving_specs"] = specs
    write_envelope(statement, key_path, attestation_path_for(p))
    return bundle_file


def _binding(p: Path, model_digest: str, digests: dict[str, str], assessment: dict[str, Any] | None) -> dict[str, Any]:
    """What the attestation binds: the signed digest, the file digest, and what the assessment assessed.

    An assessment fingerprints a model file by its sha256 (``target.fingerprints.model``); a
    directory is bound by the signed manifest digest."""
    file_sha = digests.get(p.name) if p.is_file() else None
    accepted = {d for d in (model_digest, file_sha) if d}
    return {"model_digest": model_digest, "file_sha256": file_sha,
            "assessment_target": (assessment or {}).get("target_fingerprint"), "accepted": accepted}


def _describe(binding: dict[str, Any]) -> str:
    if binding.get("file_sha256"):
        return f"sha256 {binding['file_sha256']} (signed manifest digest {binding['model_digest']})"
    return f"signed manifest digest {binding['model_digest']}"


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``3600s`` or plain seconds → a ``timedelta`` (``InvalidInputError`` otherwise)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*", text or "")
    if not m:
        raise InvalidInputError(f"attestation age {text!r}: use a number with d, h, m or s (e.g. 30d)")
    return timedelta(seconds=float(m.group(1)) * {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}[m.group(2)])


def _check_attested(p: Path, att_file: Path, predicate: dict[str, Any], model_digest: str,
                    actual: dict[str, str], max_severity: Severity | None, max_age: timedelta | None) -> None:
    """Recompute the binding; apply ``max_severity`` to every attested finding and ``max_age``."""
    assessment = predicate.get("assessment")
    if assessment is not None:
        if "target_fingerprint" not in assessment:
            raise SignatureError(f"attestation {att_file} predates assessment binding (no target fingerprint); "
                                 f"sign it again: bastion model sign {p} --attest ASSESSMENT")
        binding = _binding(p, model_digest, actual, {"target_fingerprint": assessment["target_fingerprint"]})
        if binding["assessment_target"] not in binding["accepted"]:
            raise SignatureError(f"attestation {att_file} carries an assessment of model "
                                 f"{binding['assessment_target']}, not of {p} ({_describe(binding)})")
    if max_severity is not None:
        offenders = []
        scan = predicate.get("scan") or {}
        if scan.get("max_severity", "none") != "none" and Severity.parse(scan["max_severity"]) > max_severity:
            offenders.append(f"scan ({scan['max_severity']}, verdict {scan.get('verdict')})")
        for f in (assessment or {}).get("finding_list") or []:
            if Severity.parse(str(f.get("severity", "info"))) > max_severity:
                offenders.append(f"{f.get('check_id')}/{f.get('id')} ({f.get('severity')}): {f.get('title')}")
        if assessment and not assessment.get("finding_list"):
            sev = assessment.get("max_severity")
            if sev and sev != "none" and Severity.parse(str(sev)) > max_severity:
                offenders.append(f"assessment max severity {sev}")
        if offenders:
            more = f" (+{len(offenders) - 5} more)" if len(offenders) > 5 else ""
            raise SignatureError(f"{p}: {len(offenders)} attested finding(s) worse than {max_severity.value}: "
                                 + "; ".join(offenders[:5]) + more)
    if max_age is not None:
        stamp = (assessment or {}).get("created_at") or predicate.get("created_at")
        try:
            created = datetime.fromisoformat(str(stamp))
        except (TypeError, ValueError):
            raise SignatureError(f"attestation {att_file} has no readable creation time ({stamp!r})") from None
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        age = datetime.now(UTC) - created
        if age > max_age:
            what = "assessment" if assessment else "attestation"
            raise SignatureError(f"{p}: the attested {what} is {age.days} day(s) old ({stamp}), older than the "
                                 f"allowed {max_age}; assess and sign again")


def _diff(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    out = []
    changed = sorted(k for k in expected.keys() & actual.keys() if expected[k] != actual[k])
    added = sorted(actual.keys() - expected.keys())
    removed = sorted(expected.keys() - actual.keys())
    if changed:
        out.append("modified: " + ", ".join(changed))
    if added:
        out.append("added: " + ", ".join(added))
    if removed:
        out.append("removed: " + ", ".join(removed))
    return out


def verify_model(
    path: str | os.PathLike[str],
    pub_path: str | os.PathLike[str],
    require_attestation: bool = False,
    max_severity: Severity | None = None,
    bundle: str | os.PathLike[str] | None = None,
    max_attestation_age: timedelta | None = None,
) -> VerificationResult:
    """Verify ``PATH.sig`` (and ``PATH.att.json``) with the public key.

    Raises ``SignatureError`` naming every modified, added or removed file, a wrong key, a
    missing or invalid attestation (when required), an attestation for another digest or whose
    assessment assessed another model, any attested finding (scan or assessment) or current scan
    finding worse than ``max_severity`` (each offender named), or an attested assessment older
    than ``max_attestation_age``. The gateway registry verifies pushes through this function.
    """
    from bastion.artifacts.attestation import read_envelope
    from bastion.artifacts.scan import scan_path

    _, _, _, sign_ec_key, sign_sigstore_pb, _ = _ms()
    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"model {p} does not exist")
    bundle_file = Path(bundle) if bundle else bundle_path_for(p)
    if not bundle_file.is_file():
        raise SignatureError(f"{p} is not signed: no bundle at {bundle_file} (sign it with: bastion model sign {p})")
    load_public_key(pub_path)
    try:
        sig = sign_sigstore_pb.Signature.read(bundle_file)
        expected_manifest = sign_ec_key.Verifier(Path(pub_path)).verify(sig)
    except Exception as exc:  # the library raises ValueError/InvalidSignature/protobuf errors
        raise SignatureError(f"signature {bundle_file} does not verify with {pub_path}: {exc or type(exc).__name__}") from None
    expected = _named({rd.identifier: rd.digest.digest_hex for rd in expected_manifest.resource_descriptors()}, p)
    actual_manifest = _hashing_config().hash(p)
    actual = _named({rd.identifier: rd.digest.digest_hex for rd in actual_manifest.resource_descriptors()}, p)
    problems = _diff(expected, actual)
    if problems:
        raise SignatureError(f"{p} does not match its signature: {'; '.join(problems)}")
    model_digest = _bundle_statement(bundle_file)["subject"][0]["digest"]["sha256"]
    result = VerificationResult(str(p), str(bundle_file), public_key_fingerprint(pub_path), model_digest, expected)
    att_file = attestation_path_for(p)
    if sidecars_for(p) and not att_file.is_file():
        _check_serving_specs(p, None, att_file)
    if att_file.is_file() or require_attestation or max_attestation_age is not None:
        if not att_file.is_file():
            raise SignatureError(f"{p} has no attestation ({att_file}); sign it with --attest")
        statement = read_envelope(att_file, pub_path)
        subj = statement.get("subject") or [{}]
        if subj[0].get("digest", {}).get("sha256") != model_digest:
            raise SignatureError(f"attestation {att_file} names digest {subj[0].get('digest', {}).get('sha256')}, "
                                 f"but {bundle_file} signs {model_digest}")
        subjects = {s_.get("name"): s_.get("digest", {}).get("sha256") for s_ in subj[1:]}
        for name, digest in actual.items():
            key = name if name == p.name else f"{p.name}/{name}"
            if name.endswith(".bastion.json") and p.is_file():
                continue
            if subjects and subjects.get(key) != digest:
                raise SignatureError(f"attestation {att_file} does not name {name} with digest {digest}")
        result.attestation = statement.get("predicate")
        result.attested_scan = (statement.get("predicate") or {}).get("scan")
        _check_attested(p, att_file, result.attestation or {}, model_digest, actual, max_severity,
                        max_attestation_age)
        result.serving_specs = _check_serving_specs(p, result.attestation or {}, att_file)
    if max_severity is not None:
        report = scan_path(p)
        result.current_scan = {"verdict": report.verdict,
                               "max_severity": report.max_severity.value if report.max_severity else "none"}
        if report.max_severity is not None and report.max_severity > max_severity:
            raise SignatureError(
                f"{p}: current scan max severity {report.max_severity.value} is worse than {max_severity.value}")
    return result
