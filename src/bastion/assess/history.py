"""Every assessment in the store: keyed by model digest, data digest, Bastion and catalog versions, profile.

``record`` stores a run (``bastion assess``, ``bastion watch run`` and ``bastion ci`` all call it);
``runs`` lists a model's runs newest first; ``last`` is the run ``bastion assess --compare last``
compares against; ``diff`` says what is new, worse, better or gone between two runs — the evidence
a watch incident carries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from bastion.core.results import Assessment
from bastion.core.severity import Severity
from bastion.store.db import session_scope
from bastion.store.models_assess import AssessRun


@dataclass(frozen=True)
class RunInfo:
    id: int
    model_key: str
    model_sha256: str
    data_sha256: str | None
    bastion_version: str
    catalog_version: str | None
    profile: str
    verdict: str
    max_severity: str | None
    n_findings: int
    findings: list[dict[str, Any]]
    source: str
    reason: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _info(r: AssessRun) -> RunInfo:
    return RunInfo(r.id, r.model_key, r.model_sha256, r.data_sha256, r.bastion_version, r.catalog_version, r.profile,
                   r.verdict, r.max_severity, r.n_findings, list(r.findings), r.source, r.reason,
                   r.created_at.isoformat(timespec="seconds"))


def compact_findings(assessment: Assessment) -> list[dict[str, Any]]:
    return [{"id": f.id, "check": r.check_id, "severity": f.severity.value, "title": f.title}
            for r in assessment.results for f in r.findings]


def record(assessment: Assessment, model_key: str | None = None, *, catalog_version: str | None = None,
           source: str = "assess", reason: str = "", db_url: str | None = None) -> int:
    """Store ``assessment``; returns the run id. ``model_key`` defaults to the target's name."""
    from bastion import __version__

    fp = assessment.target.get("fingerprints", {}) or {}
    ms = assessment.max_severity
    doc = json.loads(json.dumps(assessment.to_dict(), default=str))
    findings = compact_findings(assessment)
    with session_scope(db_url) as s:
        row = AssessRun(
            model_key=model_key or str(assessment.target.get("name") or fp.get("model", "model")),
            model_sha256=str(fp.get("model") or ""), data_sha256=fp.get("data"),
            bastion_version=str(assessment.environment.get("bastion") or __version__),
            catalog_version=catalog_version, profile=assessment.profile, verdict=assessment.summary()["verdict"],
            max_severity=ms.value if ms else None, n_findings=len(findings), findings=findings, source=source,
            reason=reason, duration_s=float(assessment.duration_s), assessment=doc, created_at=datetime.now(UTC))
        s.add(row)
        s.flush()
        return int(row.id)


def runs(model_key: str, limit: int = 50, db_url: str | None = None) -> list[RunInfo]:
    """A model's stored runs, newest first."""
    with session_scope(db_url) as s:
        rows = s.execute(select(AssessRun).where(AssessRun.model_key == model_key)
                         .order_by(AssessRun.id.desc()).limit(limit)).scalars().all()
        return [_info(r) for r in rows]


def get_run(run_id: int, db_url: str | None = None) -> RunInfo:
    from bastion.core.errors import ConfigError

    with session_scope(db_url) as s:
        row = s.get(AssessRun, run_id)
        if row is None:
            raise ConfigError(f"no stored assessment run {run_id}")
        return _info(row)


def load_run(run_id: int, db_url: str | None = None) -> Assessment:
    """The stored ``Assessment`` of a run (as ``assessment.json`` would give it)."""
    from bastion.core.errors import ConfigError

    with session_scope(db_url) as s:
        row = s.get(AssessRun, run_id)
        if row is None:
            raise ConfigError(f"no stored assessment run {run_id}")
        return Assessment.from_dict(dict(row.assessment))


def last(model_key: str, before: int | None = None, db_url: str | None = None) -> RunInfo | None:
    """The newest stored run of ``model_key`` (older than run ``before`` when given)."""
    with session_scope(db_url) as s:
        q = select(AssessRun).where(AssessRun.model_key == model_key)
        if before is not None:
            q = q.where(AssessRun.id < before)
        row = s.execute(q.order_by(AssessRun.id.desc()).limit(1)).scalar_one_or_none()
        return _info(row) if row is not None else None


def diff(before: RunInfo | None, after: RunInfo) -> dict[str, list[dict[str, Any]]]:
    """Findings ``new`` (id absent before), ``worse`` / ``better`` (severity moved), ``gone``; by finding id."""
    old = {f["id"]: f for f in (before.findings if before else [])}
    cur = {f["id"]: f for f in after.findings}
    out: dict[str, list[dict[str, Any]]] = {"new": [], "worse": [], "better": [], "gone": []}
    for fid, f in cur.items():
        if fid not in old:
            out["new"].append(f)
            continue
        a, b = Severity.parse(old[fid]["severity"]), Severity.parse(f["severity"])
        if b > a:
            out["worse"].append({**f, "was": a.value})
        elif b < a:
            out["better"].append({**f, "was": a.value})
    out["gone"] = [f for fid, f in old.items() if fid not in cur]
    return out


def trend(older: RunInfo | None, newer: RunInfo) -> str:
    """``worse`` / ``better`` / ``same`` / ``first`` by the worst severity, then by finding count."""
    if older is None:
        return "first"
    rank: dict[str, int] = {s.value: i for i, s in enumerate(Severity)}
    a, b = rank.get(older.max_severity or "", -1), rank.get(newer.max_severity or "", -1)
    if b != a:
        return "worse" if b > a else "better"
    if newer.n_findings != older.n_findings:
        return "worse" if newer.n_findings > older.n_findings else "better"
    return "same"


__all__ = ["RunInfo", "compact_findings", "diff", "get_run", "last", "load_run", "record", "runs", "trend"]
