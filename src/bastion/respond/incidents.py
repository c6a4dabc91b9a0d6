"""Incidents: opened (or updated) by alerts, acknowledged, resolved; every change on the timeline.

``open_or_update`` is idempotent per alert: while an incident with the same ``dedupe_key``
(alert type + model + client) is not resolved, a repeated alert increments ``occurrences`` and
appends to the timeline instead of opening a new incident.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from bastion.core.errors import InvalidInputError
from bastion.core.severity import Severity
from bastion.monitor.alerts import Alert
from bastion.respond.clocks import regulatory_clocks
from bastion.store.db import session_scope
from bastion.store.models_respond import RespondIncident

ATLAS_BY_ALERT = {
    "drift": ["AML.T0031"],  # Erode AI Model Integrity
    "adversarial_inputs": ["AML.T0015", "AML.T0043"],  # Evade AI Model; Craft Adversarial Data
    "extraction": ["AML.T0024.002", "AML.T0040"],  # Extract AI Model; AI Model Inference API Access
    "anomaly_rate": ["AML.T0015"],
}


def _now() -> datetime:
    return datetime.now(UTC)


def _event(action: str, actor: str, **details: Any) -> dict[str, Any]:
    return {"ts": _now().isoformat(timespec="seconds"), "action": action, "actor": actor, **details}


def incident_dict(row: RespondIncident) -> dict[str, Any]:
    opened = row.opened_at if row.opened_at.tzinfo else row.opened_at.replace(tzinfo=UTC)
    return {
        "id": row.id, "title": row.title, "alert_type": row.alert_type, "severity": row.severity,
        "status": row.status, "owner": row.owner, "model": row.model, "version": row.version,
        "model_sha256": row.model_sha256, "evidence": row.evidence, "affected_clients": row.affected_clients,
        "timeline": row.timeline, "atlas": row.atlas, "aiid": row.aiid, "personal_data": row.personal_data,
        "serious": row.serious, "opened_at": opened.isoformat(timespec="seconds"),
        "updated_at": row.updated_at.isoformat(timespec="seconds"),
        "closed_at": row.closed_at.isoformat(timespec="seconds") if row.closed_at else None,
        "occurrences": row.occurrences, "actions_done": row.actions_done, "notes": row.notes,
        "regulatory_clocks": regulatory_clocks(opened, row.personal_data, row.serious),
    }


def open_or_update(alert: Alert, db_url: str | None = None) -> tuple[dict[str, Any], bool]:
    """Open an incident for ``alert`` or update the open one; returns (incident, created)."""
    now = _now()
    with session_scope(db_url) as s:
        row = s.execute(select(RespondIncident).where(
            RespondIncident.dedupe_key == alert.dedupe_key, RespondIncident.status != "resolved"
        ).order_by(RespondIncident.id.desc()).limit(1)).scalar_one_or_none()
        created = row is None
        if row is None:
            row = RespondIncident(
                dedupe_key=alert.dedupe_key, title=alert.title, alert_type=alert.type,
                severity=alert.severity.value, status="open", model=alert.model, version=alert.version,
                model_sha256=alert.model_sha256, evidence=alert.evidence,
                affected_clients=[alert.client] if alert.client else [],
                timeline=[_event("opened", "monitor", evidence=alert.evidence)],
                atlas=ATLAS_BY_ALERT.get(alert.type, []),
                aiid={"title": alert.title, "date": now.date().isoformat(),
                      "description": f"{alert.title} on model {alert.model} version {alert.version}",
                      "alleged_deployer": None, "alleged_developer": None, "harmed_parties": []},
                personal_data=alert.personal_data, serious=alert.serious, opened_at=now, updated_at=now,
                occurrences=1, actions_done=[], notes="",
            )
            s.add(row)
        else:
            row.occurrences += 1
            row.updated_at = now
            row.evidence = {**row.evidence, "latest": alert.evidence}
            if alert.client and alert.client not in row.affected_clients:
                row.affected_clients = [*row.affected_clients, alert.client]
            if Severity.parse(alert.severity) > Severity.parse(row.severity):
                row.severity = alert.severity.value
            row.timeline = [*row.timeline, _event("alert repeated", "monitor", evidence=alert.evidence)]
        s.flush()
        return incident_dict(row), created


def record_action(incident_id: int, action: str, result: dict[str, Any], db_url: str | None = None,
                  actor: str = "playbook") -> None:
    with session_scope(db_url) as s:
        row = _get(s, incident_id)
        row.actions_done = [*row.actions_done, action]
        row.timeline = [*row.timeline, _event(action, actor, result=result)]
        row.updated_at = _now()


def _get(s: Any, incident_id: int) -> RespondIncident:
    row = s.get(RespondIncident, int(incident_id))
    if row is None:
        raise InvalidInputError(f"no incident with id {incident_id}")
    return row


def list_incidents(status: str | None = None, db_url: str | None = None) -> list[dict[str, Any]]:
    with session_scope(db_url) as s:
        q = select(RespondIncident).order_by(RespondIncident.id)
        if status:
            q = q.where(RespondIncident.status == status)
        return [incident_dict(r) for r in s.execute(q).scalars()]


def get_incident(incident_id: int, db_url: str | None = None) -> dict[str, Any]:
    with session_scope(db_url) as s:
        return incident_dict(_get(s, incident_id))


def acknowledge(incident_id: int, owner: str, db_url: str | None = None) -> dict[str, Any]:
    with session_scope(db_url) as s:
        row = _get(s, incident_id)
        if row.status == "resolved":
            raise InvalidInputError(f"incident {incident_id} is already resolved")
        row.status, row.owner, row.updated_at = "acknowledged", owner, _now()
        row.timeline = [*row.timeline, _event("acknowledged", owner)]
        return incident_dict(row)


def resolve(incident_id: int, actor: str, note: str = "", db_url: str | None = None) -> dict[str, Any]:
    with session_scope(db_url) as s:
        row = _get(s, incident_id)
        if row.status != "resolved":
            row.status, row.closed_at, row.updated_at = "resolved", _now(), _now()
            row.notes = (row.notes + "\n" + note).strip()
            row.timeline = [*row.timeline, _event("resolved", actor, note=note)]
        return incident_dict(row)


class IncidentBook:
    """The dashboard's incident book (``bastion.gateway.incidents.IncidentBook``), over the incident tables.

    Registered under the ``bastion.incident_books`` entry point, so the gateway reads incidents without
    importing this package.
    """

    def list(self, db_url: str | None) -> list[dict[str, Any]]:
        return list_incidents(db_url=db_url)

    def get(self, incident_id: int, db_url: str | None) -> dict[str, Any]:
        return get_incident(incident_id, db_url)

    def record_action(self, incident_id: int, action: str, result: dict[str, Any], db_url: str | None,
                      actor: str) -> None:
        record_action(incident_id, action, result, db_url, actor)
