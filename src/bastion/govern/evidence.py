"""Collect the evidence Bastion has for each control: assessment files, and whatever the store holds.

Evidence comes from
- assessment files (``assessment.json``): each check result is evidence for the catalog control that
  takes its check id, judged by the check's status and the control's thresholds for the risk tier;
- the gateway's tables (``gateway_*``): signed/verified model versions, scan verdicts, the audit chain
  (verified with ``bastion.gateway.audit.verify_chain``);
- incident tables (``respond_*``), monitoring tables (``monitor_*``/``respond_*alert*``);
- governance tables (``govern_*``): classifications, the risk register, training records, ethics answers;
- files a person attaches to a control (``--evidence BC-GV-02=annex_iv.md``) and data manifests.

Other capabilities' tables are read through SQLAlchemy inspection, so a missing table means
"no evidence", never an error. Statuses are ``pass``, ``warn``, ``fail`` or ``no evidence``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from bastion.core.errors import InvalidInputError
from bastion.govern.catalog import Control, control, control_for_check, load_catalog
from bastion.report import load_assessment

EvidenceStatus = Literal["pass", "warn", "fail", "info"]
ControlStatus = Literal["pass", "warn", "fail", "no evidence"]
TierName = Literal["prohibited", "high", "limited", "minimal"]
_RANK = {"no evidence": 0, "info": 0, "pass": 1, "warn": 2, "fail": 3}


@dataclass
class EvidenceItem:
    """One piece of evidence for one control, with a link back to where it came from."""

    control_id: str
    source: str
    ref: str
    status: EvidenceStatus
    summary: str
    link: str | None = None
    at: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ControlResult:
    """A control's latest evidence and the status it adds up to."""

    control: Control
    status: ControlStatus
    evidence: list[EvidenceItem]

    def to_dict(self) -> dict[str, Any]:
        return {
            "control_id": self.control.id,
            "title": self.control.title,
            "capability": self.control.capability,
            "status": self.status,
            "evidence": [e.to_dict() for e in self.evidence],
            "commands": list(self.control.commands),
        }


@dataclass
class EvidenceSet:
    """Every evidence item found, and per-control results."""

    items: list[EvidenceItem]
    tier: TierName = "high"
    sources: dict[str, str] = field(default_factory=dict)

    def for_control(self, control_id: str) -> ControlResult:
        ctl = control(control_id)
        ev = [e for e in self.items if e.control_id == control_id]
        judged = [e for e in ev if e.status != "info"]
        if judged:
            worst = max(judged, key=lambda e: _RANK[e.status]).status
            status: ControlStatus = worst  # type: ignore[assignment]
        elif ev:
            status = "pass"
        else:
            status = "no evidence"
        return ControlResult(control=ctl, status=status, evidence=ev)

    def results(self) -> list[ControlResult]:
        return [self.for_control(c.id) for c in load_catalog().controls]

    def statuses(self) -> dict[str, ControlStatus]:
        return {r.control.id: r.status for r in self.results()}


# scan verdicts (safe|unsafe|error|unscanned; "suspicious" in records written before the vocabulary changed)
_SCAN_STATUS: dict[str, EvidenceStatus] = {"safe": "pass", "unsafe": "fail", "error": "fail",
                                           "unscanned": "warn", "suspicious": "warn"}


def scan_evidence_status(verdict: str) -> EvidenceStatus:
    """Evidence status of a scan verdict: ``error`` (a file not fully read) fails like ``unsafe``."""
    return _SCAN_STATUS.get(verdict, "warn")


def worst_status(statuses: list[str]) -> str:
    """The worst of some control statuses (``no evidence`` when none is judged)."""
    judged = [s for s in statuses if s in ("pass", "warn", "fail")]
    return max(judged, key=lambda s: _RANK[s]) if judged else "no evidence"


# --------------------------------------------------------------------------- assessments


def expand_assessment_paths(paths: Sequence[Path] | None) -> list[Path]:
    """Files and directories → assessment files: ``DIR/assessment.json``, or every ``DIR/*/assessment.json``."""
    out: list[Path] = []
    for p in paths or []:
        if p.is_dir() and not (p / "assessment.json").is_file():
            found = sorted(p.glob("*/assessment.json"))
            if not found:
                raise InvalidInputError(f"{p} holds no assessment.json (nor */assessment.json)")
            out += found
        else:
            out.append(p)
    return out


def judge_result(ctl: Control, status: str, metrics: dict[str, Any], tier: TierName) -> tuple[EvidenceStatus, str]:
    """Judge one check result against a control for a risk tier.

    Where the control has thresholds for a metric the result reports, the tier's bounds judge it: for the
    ``high`` (and ``prohibited``) tier the stricter of the check's own status and the bounds counts; for
    ``limited`` and ``minimal`` the bounds decide (a finding the check rates for a high-stakes use may be
    acceptable for a minimal-risk one). Without such a metric the check's status counts; an ``error`` or
    ``skipped`` result is ``info`` (it says nothing either way).
    """
    base: EvidenceStatus = {"pass": "pass", "warn": "warn", "fail": "fail"}.get(status, "info")  # type: ignore[assignment]
    notes: list[str] = []
    verdicts: list[EvidenceStatus] = []
    eff_tier = "high" if tier == "prohibited" else tier
    for th in ctl.thresholds:
        value = metrics.get(th.metric)
        bounds = th.tiers.get(eff_tier)  # type: ignore[call-overload]
        if not isinstance(value, int | float) or isinstance(value, bool) or not bounds:
            continue
        better = (lambda a, b: a >= b) if th.direction == "min" else (lambda a, b: a <= b)
        if "pass" in bounds and better(value, bounds["pass"]):
            verdicts.append("pass")
        elif "warn" in bounds and better(value, bounds["warn"]):
            verdicts.append("warn")
        else:
            verdicts.append("fail")
        op = "≥" if th.direction == "min" else "≤"
        notes.append(f"{th.metric}={value:.4g} (pass {op} {bounds.get('pass')} for tier {tier})")
    if not verdicts or base == "info":
        return base, "; ".join(notes)
    judged = max(verdicts, key=lambda v: _RANK[v])
    if eff_tier == "high" and _RANK[base] > _RANK[judged]:
        judged = base
    if judged != base:
        notes.append(f"check status {base}, judged by the {tier}-tier threshold")
    return judged, "; ".join(notes)


def assessment_evidence(paths: list[Path], tier: TierName = "high") -> list[EvidenceItem]:
    """Evidence from assessment files: the latest result of each check across all files."""
    latest: dict[str, tuple[str, Path, Any]] = {}
    for path in paths:
        a = load_assessment(path)
        for r in a.results:
            prev = latest.get(r.check_id)
            if prev is None or a.created_at >= prev[0]:
                latest[r.check_id] = (a.created_at, path, r)
    items: list[EvidenceItem] = []
    for check_id, (created, path, r) in sorted(latest.items()):
        ctl = control_for_check(check_id)
        if ctl is None:
            continue
        status, note = judge_result(ctl, r.status.value, r.metrics, tier)
        summary = r.summary or f"{r.title}: {r.status.value}"
        if r.error:
            summary = f"{r.title}: error: {r.error}"
        if note:
            summary = f"{summary} — {note}"
        headline = {k: v for k, v in r.metrics.items() if isinstance(v, int | float | str | bool)}
        items.append(EvidenceItem(ctl.id, "assessment", check_id, status, summary, str(path), created, headline))
    return items


# --------------------------------------------------------------------------- attached files


def _iso(v: Any) -> str | None:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, int | float):
        return datetime.fromtimestamp(float(v), UTC).isoformat(timespec="seconds")
    return None if v is None else str(v)


def attached_evidence(pairs: list[str]) -> list[EvidenceItem]:
    """``CONTROL_ID=PATH`` pairs a person attaches (documentation, DPIA, signed manifests …)."""
    items = []
    for pair in pairs:
        cid, sep, path = pair.partition("=")
        if not sep:
            raise InvalidInputError(f"--evidence {pair!r}: expected CONTROL_ID=PATH, e.g. BC-GV-02=annex_iv.md")
        ctl = control(cid.strip())
        p = Path(path.strip())
        if not p.exists():
            raise InvalidInputError(f"--evidence {pair!r}: {p} does not exist")
        from bastion.core.paths import sha256_file

        digest = sha256_file(p) if p.is_file() else ""
        items.append(EvidenceItem(ctl.id, "documentation", p.name, "pass",
                                  f"attached by a person: {p.name}" + (f" (sha256 {digest[:12]}…)" if digest else ""),
                                  str(p), _iso(datetime.fromtimestamp(p.stat().st_mtime, UTC)), {"sha256": digest}))
    return items


def manifest_evidence(specs: Sequence[str | Path], public_key: Path | None = None) -> list[EvidenceItem]:
    """Data integrity manifests as BC-DA-01 evidence.

    ``MANIFEST.json`` alone: a signed manifest is evidence toward provenance (pass), an unsigned one warns.
    ``MANIFEST.json=DATA_PATH``: the data is re-verified now with ``bastion.data.integrity.verify_manifest``
    (and ``public_key`` when given): any modified, added or removed file or row fails.
    """
    items = []
    for spec in specs:
        mpath, sep, data = str(spec).partition("=")
        p = Path(mpath)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"data manifest {p} cannot be read as JSON: {exc}") from None
        at = _iso(datetime.fromtimestamp(p.stat().st_mtime, UTC))
        signed = bool(doc.get("signature"))
        if not sep:
            items.append(EvidenceItem("BC-DA-01", "data_manifest", p.name, "pass" if signed else "warn",
                                      f"data manifest {p.name}" + (" (signed)" if signed else " (unsigned)")
                                      + f", Merkle root {str(doc.get('merkle_root', ''))[:16]}…", str(p), at))
            continue
        if not Path(data).exists():
            raise InvalidInputError(f"--manifest {spec}: data path {data} does not exist")
        from bastion.data.integrity import verify_manifest

        rep = verify_manifest([data], doc, public_key)
        changed = len(rep["added"]) + len(rep["removed"]) + len(rep["modified"])
        sig = rep["signature"].get("status", "unknown")
        summary = (f"{p.name}: {rep['files_checked']} file(s) of {data} verify against the manifest (signature {sig})"
                   if rep["ok"] else f"{p.name}: data does NOT match the manifest: {len(rep['added'])} added, "
                   f"{len(rep['removed'])} removed, {len(rep['modified'])} modified file(s); signature {sig}")
        items.append(EvidenceItem("BC-DA-01", "data_manifest", p.name, "pass" if rep["ok"] else "fail", summary,
                                  str(p), datetime.now(UTC).isoformat(timespec="seconds"),
                                  {"changed_files": changed, "signature": sig}))
    return items


def signature_evidence(pairs: list[str]) -> list[EvidenceItem]:
    """``MODEL_PATH=PUBLIC_KEY`` pairs: verify each model's OpenSSF signature (and attestation, if present)
    now, with ``bastion.artifacts.signing.verify_model`` — a tampered file or wrong key fails BC-SC-02."""
    from bastion.core.errors import SignatureError

    items = []
    for pair in pairs:
        model_path, sep, key = pair.partition("=")
        if not sep:
            raise InvalidInputError(f"--signed-model {pair!r}: expected MODEL_PATH=PUBLIC_KEY")
        mp, kp = Path(model_path.strip()), Path(key.strip())
        for p in (mp, kp):
            if not p.exists():
                raise InvalidInputError(f"--signed-model {pair!r}: {p} does not exist")
        from bastion.artifacts.signing import verify_model

        now = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            res = verify_model(mp, kp)
        except SignatureError as exc:
            items.append(EvidenceItem("BC-SC-02", "signature", mp.name, "fail",
                                      f"{mp.name}: signature does NOT verify: {exc}", str(mp), now))
            continue
        att = res.attestation is not None
        items.append(EvidenceItem("BC-SC-02", "signature", mp.name, "pass",
                                  f"{mp.name}: OpenSSF signature verifies (key {res.key_id[:16]}…, digest "
                                  f"{res.model_digest[:16]}…)" + ("; attestation verified" if att else
                                                                    "; no attestation"),
                                  res.bundle, now, {"key_id": res.key_id, "model_digest": res.model_digest,
                                                    "attested": att}))
        if res.current_scan:
            verdict = str(res.current_scan.get("verdict", "unknown"))
            st = scan_evidence_status(verdict)
            items.append(EvidenceItem("BC-SC-01", "signature", mp.name, st,
                                      f"{mp.name}: scan at verification: {verdict}", str(mp), now))
    return items


def collect_evidence(
    assessments: list[Path] | None = None,
    model: str | None = None,
    version: str | None = None,
    *,
    tier: TierName = "high",
    url: str | None = None,
    attached: list[str] | None = None,
    manifests: Sequence[str | Path] | None = None,
    signed_models: list[str] | None = None,
    manifest_key: Path | None = None,
    use_store: bool = True,
) -> EvidenceSet:
    """Everything Bastion knows about ``model`` (all systems when ``None``), as one ``EvidenceSet``."""
    sources: dict[str, str] = {}
    items = assessment_evidence(list(assessments or []), tier)
    sources["assessments"] = f"{len(assessments or [])} file(s)"
    if use_store:
        from bastion.govern.store_evidence import store_evidence

        items += store_evidence(model, version, url, sources)
    items += attached_evidence(list(attached or []))
    items += manifest_evidence(list(manifests or []), manifest_key)
    items += signature_evidence(list(signed_models or []))
    return EvidenceSet(items=items, tier=tier, sources=sources)
