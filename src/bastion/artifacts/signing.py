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
    m, digests = _manifest(p, incremental)
    signer = sign_ec_key.Signer(Path(key_path))
    signature = signer.sign(signing.Payload(m))
    bundle_file = bundle_path_for(p)
    with tempfile.TemporaryDirectory(dir=bundle_file.parent) as tmp:
        tmp_file = Path(tmp) / "bundle.sig"
        signature.write(tmp_file)
        os.replace(tmp_file, bundle_file)
    model_digest = _bundle_statement(bundle_file)["subject"][0]["digest"]["sha256"]
    assessment = None
    datasets: list[dict[str, Any]] = []
    if isinstance(attest, dict):
        assessment, datasets = attest.get("assessment"), list(attest.get("datasets", []))
    elif attest is not None:
        assessment, datasets = assessment_evidence(attest)
    scan = {
        "verdict": report.verdict,
        "max_severity": report.max_severity.value if report.max_severity else "none",
        "allowlist_version": report.allowlist_version,
        "findings": len(report.findings),
        "files_scanned": len(report.scanned_files),
    }
    statement = build_statement(p.name, model_digest, digests, scan, datasets, assessment)
    write_envelope(statement, key_path, attestation_path_for(p))
    return bundle_file


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
) -> VerificationResult:
    """Verify ``PATH.sig`` (and ``PATH.att.json``) with the public key.

    Raises ``SignatureError`` naming every modified, added or removed file, a wrong key, a
    missing or invalid attestation (when required), an attestation for another digest, or an
    attested (or current) scan worse than ``max_severity``.
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
    if att_file.is_file() or require_attestation:
        if not att_file.is_file():
            raise SignatureError(f"{p} has no attestation ({att_file}); sign it with --attest")
        statement = read_envelope(att_file, pub_path)
        subj = statement.get("subject") or [{}]
        if subj[0].get("digest", {}).get("sha256") != model_digest:
            raise SignatureError(f"attestation {att_file} is for another model digest than {bundle_file}")
        result.attestation = statement.get("predicate")
        result.attested_scan = (statement.get("predicate") or {}).get("scan")
    if max_severity is not None:
        attested = (result.attested_scan or {}).get("max_severity", "none")
        if attested != "none" and Severity.parse(attested) > max_severity:
            raise SignatureError(f"{p}: attested scan max severity {attested} is worse than {max_severity.value}")
        report = scan_path(p)
        result.current_scan = {"verdict": report.verdict,
                               "max_severity": report.max_severity.value if report.max_severity else "none"}
        if report.max_severity is not None and report.max_severity > max_severity:
            raise SignatureError(
                f"{p}: current scan max severity {report.max_severity.value} is worse than {max_severity.value}")
    return result
