"""Evidence from the store: other capabilities' tables read by inspection, so an absent table is "no
evidence", never an error — the gateway registry (signatures, scan verdicts) and its hash-chained audit log
(re-verified with ``bastion.gateway.audit.verify_chain``), incidents (``respond_*``), monitoring tables, and the
governance tables (classifications, risk register, training records, ethics answers)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from bastion.govern.evidence import EvidenceItem, EvidenceStatus, _iso, scan_evidence_status


def _tables(url: str | None) -> set[str]:
    from sqlalchemy import inspect

    from bastion.store.db import get_engine

    try:
        return set(inspect(get_engine(url)).get_table_names())
    except Exception:  # an unreachable database is "no evidence", reported in sources
        return set()


def _rows(url: str | None, table: str, where: dict[str, Any] | None = None, limit: int = 500) -> list[dict]:
    from sqlalchemy import MetaData, Table, select

    from bastion.store.db import get_engine

    eng = get_engine(url)
    t = Table(table, MetaData(), autoload_with=eng)
    q = select(t)
    for col, val in (where or {}).items():
        if col in t.c and val is not None:
            q = q.where(t.c[col] == val)
    q = q.limit(limit)
    with eng.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def store_evidence(model: str | None, version: str | None = None, url: str | None = None,
                   sources: dict[str, str] | None = None) -> list[EvidenceItem]:
    """Evidence from the store's tables that exist; ``sources`` records what was found or absent."""
    notes = sources if sources is not None else {}
    tables = _tables(url)
    items: list[EvidenceItem] = []
    items += _registry_evidence(url, tables, model, version, notes)
    items += _audit_evidence(url, tables, notes)
    items += _respond_evidence(url, tables, model, notes)
    items += _govern_evidence(url, tables, model, notes)
    return items


def _registry_evidence(url: str | None, tables: set[str], model: str | None, version: str | None,
                       notes: dict[str, str]) -> list[EvidenceItem]:
    if "gateway_model_versions" not in tables:
        notes["registry"] = "no gateway registry table in the store"
        return []
    rows = _rows(url, "gateway_model_versions", {"name": model, "version": version})
    notes["registry"] = f"{len(rows)} registered version(s)" + (f" of {model}" if model else "")
    items = []
    for r in rows:
        ref = f"registry:{r['name']}@{r['version']}"
        at = _iso(r.get("created_at"))
        signed = bool(r.get("verified"))
        items.append(EvidenceItem(
            "BC-SC-02", "signature", ref, "pass" if signed else "fail",
            f"{r['name']} {r['version']}: signature " + (f"verified (signer {str(r.get('signer'))[:16]})"
                                                         if signed else "not verified (pushed unsigned by an admin)"),
            f"store:gateway_model_versions/{r['id']}", at, {"sha256": r.get("sha256")}))
        verdict = str(r.get("scan_verdict", "unknown"))
        scan_status = scan_evidence_status(verdict)
        items.append(EvidenceItem("BC-SC-01", "signature", ref, scan_status,
                                  f"{r['name']} {r['version']}: registry scan verdict {verdict}",
                                  f"store:gateway_model_versions/{r['id']}", at))
    return items


def _audit_evidence(url: str | None, tables: set[str], notes: dict[str, str]) -> list[EvidenceItem]:
    if "gateway_audit" not in tables:
        notes["audit_log"] = "no gateway audit table in the store"
        return []
    try:
        from bastion.gateway.audit import verify_chain

        rep = verify_chain(url)
    except Exception as exc:  # the gateway's verifier is theirs; record why it could not run
        notes["audit_log"] = f"audit verification could not run: {exc}"
        return [EvidenceItem("BC-LG-01", "audit_log", "gateway_audit", "warn",
                             f"audit log present but not verified: {exc}")]
    d = rep.to_dict()
    if d["records"] == 0:
        notes["audit_log"] = "audit log is empty"
        return []
    notes["audit_log"] = "verified" if rep.ok else f"BROKEN: {rep.problem}"
    summary = (f"hash chain of {d['records']} records and {d['checkpoints']} signed checkpoints verifies"
               if rep.ok else f"audit chain broken at record {d['first_bad_seq']}: {d['problem']}")
    items = [EvidenceItem("BC-LG-01", "audit_log", "bastion audit verify", "pass" if rep.ok else "fail",
                          summary, "store:gateway_audit", datetime.now(UTC).isoformat(timespec="seconds"), d)]
    items.append(EvidenceItem("BC-AC-01", "audit_log", "gateway_audit", "info",
                              f"gateway requests are authenticated and logged ({d['records']} audit records)",
                              "store:gateway_audit"))
    return items


def _respond_evidence(url: str | None, tables: set[str], model: str | None,
                      notes: dict[str, str]) -> list[EvidenceItem]:
    items: list[EvidenceItem] = []
    incident_tables = sorted(t for t in tables if t.startswith("respond_") and "incident" in t
                             and not any(x in t for x in ("event", "action", "note", "step")))
    if incident_tables:
        rows = _rows(url, incident_tables[0], {"model": model}, limit=2000)
        open_ = [r for r in rows if str(r.get("status", "")).lower() not in ("resolved", "closed")]
        serious = [r for r in rows if r.get("serious")]
        notes["incidents"] = f"{len(rows)} incident(s), {len(open_)} open"
        if rows:
            last = max((_iso(r.get("opened_at") or r.get("created_at")) or "" for r in rows), default=None)
            items.append(EvidenceItem(
                "BC-IR-01", "incidents", incident_tables[0], "warn" if open_ else "pass",
                f"{len(rows)} incident(s) recorded, {len(rows) - len(open_)} resolved, {len(open_)} open"
                + (f", {len(serious)} serious (Art. 73 clock)" if serious else ""),
                f"store:{incident_tables[0]}", last or None,
                {"incidents": len(rows), "open": len(open_), "serious": len(serious)}))
            kinds: dict[str, int] = {}
            for r in rows:
                kind = str(r.get("alert_type") or "")
                if kind:
                    kinds[kind] = kinds.get(kind, 0) + 1
            for kind, n in sorted(kinds.items()):
                cid = "BC-MO-02" if "extraction" in kind else "BC-MO-01"
                items.append(EvidenceItem(cid, "monitoring", f"{incident_tables[0]}:{kind}", "info",
                                          f"monitoring raised {n} '{kind}' alert(s) that became incidents",
                                          f"store:{incident_tables[0]}", last or None))
    else:
        notes["incidents"] = "no incident table in the store"
    alert_tables = sorted(t for t in tables if (t.startswith("monitor_") or t.startswith("respond_"))
                          and any(x in t for x in ("alert", "drift", "detection", "monitor")))
    if alert_tables:
        total = sum(len(_rows(url, t, limit=10000)) for t in alert_tables)
        notes["monitoring"] = f"{total} monitoring record(s) in {', '.join(alert_tables)}"
        items.append(EvidenceItem("BC-MO-01", "monitoring", ",".join(alert_tables), "info",
                                  f"monitoring history: {total} record(s)", f"store:{alert_tables[0]}"))
    else:
        notes["monitoring"] = "no monitoring table in the store"
    return items


def _govern_evidence(url: str | None, tables: set[str], model: str | None,
                     notes: dict[str, str]) -> list[EvidenceItem]:
    items: list[EvidenceItem] = []
    if "govern_classifications" in tables:
        rows = _rows(url, "govern_classifications", {"system": model})
        if rows:
            last = max(rows, key=lambda r: r["id"])
            items.append(EvidenceItem("BC-GV-01", "classification", f"classification/{last['id']}", "info",
                                      f"EU AI Act tier '{last['tier']}' for {last['system']}",
                                      f"store:govern_classifications/{last['id']}", _iso(last["created_at"])))
    if "govern_risks" in tables:
        rows = _rows(url, "govern_risks", {"system": model}, limit=5000)
        if rows:
            today = date.today()
            unowned = [r for r in rows if not r.get("owner")]
            overdue = [r for r in rows if r.get("review_date") and r["review_date"] < today
                       and r.get("status") == "open"]
            status: EvidenceStatus = "warn" if unowned or overdue else "pass"
            items.append(EvidenceItem("BC-GV-01", "risk_register", "govern_risks", status,
                                      f"{len(rows)} risk(s) registered; {len(unowned)} without owner, "
                                      f"{len(overdue)} past review date", "store:govern_risks"))
    if "govern_training_records" in tables:
        rows = _rows(url, "govern_training_records", limit=100000)
        passed = [r for r in rows if r.get("passed")]
        notes["training"] = f"{len(passed)} passed record(s) of {len(rows)}"
        if rows:
            learners = {r["learner"] for r in passed}
            items.append(EvidenceItem("BC-TR-01", "training", "govern_training_records",
                                      "pass" if passed else "warn",
                                      f"{len(learners)} learner(s) passed at least one lab or quiz "
                                      f"({len(passed)} of {len(rows)} records passed)",
                                      "store:govern_training_records"))
    if "govern_ethics_answers" in tables:
        rows = _rows(url, "govern_ethics_answers", {"system": model}, limit=5000)
        if rows:
            latest: dict[str, dict] = {}
            for r in sorted(rows, key=lambda r: r["id"]):
                latest[r["item_id"]] = r
            bad = [r for r in latest.values() if r["answer"] in ("no", "partial")]
            status2: EvidenceStatus = "warn" if bad else "pass"
            summary = f"{len(latest)} ethics item(s) reviewed, {len(bad)} answered no/partial"
            for cid in ("BC-GV-04", "BC-HO-01"):
                items.append(EvidenceItem(cid, "ethics_review", "govern_ethics_answers", status2, summary,
                                          "store:govern_ethics_answers"))
    return items
