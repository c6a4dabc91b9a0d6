"""The AI risk register: likelihood × impact, inherent vs residual risk, owners, review dates, history.

Scores are 1–5 for likelihood and impact; the score is their product (1–25), banded
``low`` ≤ 4 < ``medium`` ≤ 9 < ``high`` ≤ 15 < ``critical``. *Residual* risk lowers the likelihood by
one step for every control treating the risk that has passing evidence (never below 1); impact is
unchanged — Bastion's controls make attacks harder, they do not make their consequences smaller.

Risks are seeded from the catalog (one per control that names a risk) and from an assessment's
findings (severity medium or above). Every change writes a history row. EU AI Act tiering lives in
``bastion.govern.aiact`` and is re-exported here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import select

from bastion.core.errors import InvalidInputError
from bastion.core.results import Assessment
from bastion.core.severity import Severity
from bastion.govern.aiact import Classification, Questionnaire, classify, load_questionnaire
from bastion.govern.catalog import control, control_for_check, load_catalog
from bastion.govern.store import ensure_schema
from bastion.store.db import session_scope
from bastion.store.models_govern import GovernRisk, GovernRiskHistory

__all__ = [
    "Classification", "Questionnaire", "RiskView", "add_risk", "band", "classify", "get_risk", "list_risks",
    "load_questionnaire", "residual_likelihood", "risk_history", "seed_risks", "update_risk",
]

RiskStatus = Literal["open", "mitigated", "accepted", "closed"]
RISK_STATUSES: tuple[str, ...] = ("open", "mitigated", "accepted", "closed")
_SEVERITY_LIKELIHOOD = {Severity.MEDIUM: 3, Severity.HIGH: 4, Severity.CRITICAL: 5}
_SEVERITY_IMPACT = {Severity.MEDIUM: 3, Severity.HIGH: 4, Severity.CRITICAL: 5}
_EDITABLE = ("title", "description", "likelihood", "impact", "owner", "status", "treatment", "review_date",
             "control_ids", "system")


def band(score: int) -> str:
    """Band a likelihood × impact score."""
    return "low" if score <= 4 else "medium" if score <= 9 else "high" if score <= 15 else "critical"


def residual_likelihood(likelihood: int, control_statuses: list[str]) -> int:
    """Likelihood after controls: one step lower per control with passing evidence, floor 1."""
    return max(1, likelihood - sum(s == "pass" for s in control_statuses))


@dataclass
class RiskView:
    """A risk as reported: stored fields plus inherent and residual scores."""

    id: int
    key: str
    title: str
    system: str | None
    source: str
    control_ids: list[str]
    likelihood: int
    impact: int
    inherent: int
    inherent_band: str
    residual_likelihood: int
    residual: int
    residual_band: str
    controls_passing: list[str]
    owner: str | None
    status: str
    review_date: str | None
    review_overdue: bool
    treatment: str
    description: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _snapshot(r: GovernRisk) -> dict[str, Any]:
    return {
        "key": r.key, "title": r.title, "description": r.description, "system": r.system, "source": r.source,
        "control_ids": list(r.control_ids or []), "likelihood": r.likelihood, "impact": r.impact,
        "owner": r.owner, "status": r.status, "treatment": r.treatment,
        "review_date": r.review_date.isoformat() if r.review_date else None,
    }


def _view(r: GovernRisk, statuses: dict[str, str]) -> RiskView:
    cids = list(r.control_ids or [])
    passing = [c for c in cids if statuses.get(c) == "pass"]
    rl = residual_likelihood(r.likelihood, [statuses.get(c, "no evidence") for c in cids])
    today = date.today()
    return RiskView(
        id=r.id, key=r.key, title=r.title, system=r.system, source=r.source, control_ids=cids,
        likelihood=r.likelihood, impact=r.impact, inherent=r.likelihood * r.impact,
        inherent_band=band(r.likelihood * r.impact), residual_likelihood=rl, residual=rl * r.impact,
        residual_band=band(rl * r.impact), controls_passing=passing, owner=r.owner, status=r.status,
        review_date=r.review_date.isoformat() if r.review_date else None,
        review_overdue=bool(r.review_date and r.review_date < today and r.status == "open"),
        treatment=r.treatment, description=r.description, updated_at=r.updated_at.isoformat(),
    )


def _validate(fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    for k in ("likelihood", "impact"):
        if k in out and out[k] is not None and not (isinstance(out[k], int) and 1 <= out[k] <= 5):
            raise InvalidInputError(f"{k} must be an integer from 1 to 5, got {out[k]!r}")
    if out.get("status") is not None and out["status"] not in RISK_STATUSES:
        raise InvalidInputError(f"status must be one of {', '.join(RISK_STATUSES)}, got {out['status']!r}")
    rd = out.get("review_date")
    if isinstance(rd, str):
        try:
            out["review_date"] = date.fromisoformat(rd)
        except ValueError:
            raise InvalidInputError(f"review date {rd!r} is not an ISO date (YYYY-MM-DD)") from None
    for cid in out.get("control_ids") or []:
        control(cid)  # RegistryError names an unknown control
    return out


def add_risk(title: str, likelihood: int, impact: int, *, controls: list[str] | None = None,
             owner: str | None = None, system: str | None = None, review_date: str | date | None = None,
             description: str = "", treatment: str = "", key: str | None = None, source: str = "manual",
             actor: str = "cli", url: str | None = None) -> int:
    """Add a risk; returns its id. ``key`` defaults to a slug of system and title."""
    f = _validate({"likelihood": likelihood, "impact": impact, "control_ids": controls or [],
                   "review_date": review_date})
    ensure_schema(url)
    now = datetime.now(UTC)
    slug = key or f"{system or 'all'}:manual:{'-'.join(title.lower().split())[:100]}"
    with session_scope(url) as s:
        if s.scalars(select(GovernRisk).where(GovernRisk.key == slug)).first() is not None:
            raise InvalidInputError(f"a risk with key {slug!r} already exists; use 'bastion govern risks update'")
        r = GovernRisk(key=slug, title=title, description=description, system=system, source=source,
                       control_ids=f["control_ids"], likelihood=likelihood, impact=impact, owner=owner,
                       status="open", treatment=treatment, review_date=f["review_date"], created_at=now,
                       updated_at=now)
        s.add(r)
        s.flush()
        s.add(GovernRiskHistory(risk_id=r.id, changed_at=now, changed_by=actor, action="create", changes={},
                                snapshot=_snapshot(r)))
        return int(r.id)


def _find(s: Any, ident: int | str) -> GovernRisk:
    q = select(GovernRisk).where(GovernRisk.id == int(ident)) if str(ident).isdigit() else \
        select(GovernRisk).where(GovernRisk.key == str(ident))
    r = s.scalars(q).first()
    if r is None:
        raise InvalidInputError(f"no risk {ident!r} in the register (see 'bastion govern risks list')")
    return r


def update_risk(ident: int | str, *, actor: str = "cli", url: str | None = None, **changes: Any) -> dict[str, Any]:
    """Change fields of a risk (by id or key) and record the change; returns ``{field: [old, new]}``."""
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise InvalidInputError(f"cannot update {', '.join(sorted(unknown))}; editable: {', '.join(_EDITABLE)}")
    f = _validate({k: v for k, v in changes.items() if v is not None})
    ensure_schema(url)
    now = datetime.now(UTC)
    with session_scope(url) as s:
        r = _find(s, ident)
        before = _snapshot(r)
        for k, v in f.items():
            setattr(r, k, v)
        after = _snapshot(r)
        diff = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        if diff:
            r.updated_at = now
            s.add(GovernRiskHistory(risk_id=r.id, changed_at=now, changed_by=actor, action="update",
                                    changes=diff, snapshot=after))
        return diff


def get_risk(ident: int | str, statuses: dict[str, str] | None = None, url: str | None = None) -> RiskView:
    ensure_schema(url)
    with session_scope(url) as s:
        return _view(_find(s, ident), statuses or {})


def list_risks(system: str | None = None, statuses: dict[str, str] | None = None, url: str | None = None,
               include_closed: bool = True) -> list[RiskView]:
    """Risks (of ``system``, or all), highest residual first; ``statuses`` maps control id → evidence status."""
    ensure_schema(url)
    with session_scope(url) as s:
        q = select(GovernRisk)
        if system is not None:
            q = q.where((GovernRisk.system == system) | (GovernRisk.system.is_(None)))
        rows = [_view(r, statuses or {}) for r in s.scalars(q)]
    if not include_closed:
        rows = [r for r in rows if r.status != "closed"]
    return sorted(rows, key=lambda v: (-v.residual, -v.inherent, v.id))


def risk_history(ident: int | str, url: str | None = None) -> list[dict[str, Any]]:
    ensure_schema(url)
    with session_scope(url) as s:
        r = _find(s, ident)
        rows = s.scalars(select(GovernRiskHistory).where(GovernRiskHistory.risk_id == r.id)
                         .order_by(GovernRiskHistory.id)).all()
        return [{"changed_at": h.changed_at.isoformat(), "changed_by": h.changed_by, "action": h.action,
                 "changes": h.changes} for h in rows]


def seed_risks(system: str | None = None, assessments: list[Assessment] | None = None, *,
               owner: str | None = None, actor: str = "seed", url: str | None = None) -> dict[str, int]:
    """Create risks from the catalog and from findings (medium+); existing keys are left as they are."""
    created = skipped = 0
    scope = system or "all"
    specs: list[dict[str, Any]] = []
    for ctl in load_catalog().controls:
        if ctl.risk is not None:
            specs.append({"key": f"{scope}:{ctl.id}", "title": ctl.risk.title, "likelihood": ctl.risk.likelihood,
                          "impact": ctl.risk.impact, "controls": [ctl.id], "source": "catalog",
                          "description": f"Seeded from control {ctl.id}: {ctl.objective}"})
    for a in assessments or []:
        for r in a.results:
            check_ctl = control_for_check(r.check_id)
            for f in r.findings:
                if f.severity < Severity.MEDIUM:
                    continue
                specs.append({"key": f"{scope}:finding:{r.check_id}:{f.id}"[:160], "title": f.title,
                              "likelihood": _SEVERITY_LIKELIHOOD[f.severity], "impact": _SEVERITY_IMPACT[f.severity],
                              "controls": [check_ctl.id] if check_ctl else [], "source": "finding",
                              "description": f"Finding {f.id} ({f.severity.value}) from check {r.check_id}; "
                                             f"fix: {f.recommendation}"})
    ensure_schema(url)
    with session_scope(url) as s:
        existing = set(s.scalars(select(GovernRisk.key)))
    for spec in specs:
        if spec["key"] in existing:
            skipped += 1
            continue
        add_risk(spec["title"], spec["likelihood"], spec["impact"], controls=spec["controls"], owner=owner,
                 system=system, description=spec["description"], key=spec["key"], source=spec["source"],
                 actor=actor, url=url)
        existing.add(spec["key"])
        created += 1
    return {"created": created, "existing": skipped}
