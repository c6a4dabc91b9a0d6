"""The audit-ready governance report for one model/system: JSON, HTML (Jinja2) and PDF (WeasyPrint).

Sections: executive summary; EU AI Act tier and why; risk register; control results with evidence
links (assessment runs, signatures and attestations, data manifests, monitoring history, incidents,
audit-log verification); NIST AI RMF evidence-toward view; training coverage per team; open actions.
The report never says a system is compliant: it shows evidence toward framework items, and gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bastion.core.severity import Severity
from bastion.govern.evidence import EvidenceSet, collect_evidence
from bastion.report import load_assessment

REPORT_SCHEMA = "bastion-governance-report/1"
WORDING = ("This report shows evidence toward framework items and where evidence is missing. It is not a "
           "statement of compliance; a qualified person must review it.")
SOURCE_SECTIONS = [
    ("assessment", "Assessment runs"),
    ("signature", "Signatures, attestations and scan verdicts"),
    ("data_manifest", "Data manifests"),
    ("monitoring", "Monitoring history"),
    ("incidents", "Incidents and their handling"),
    ("audit_log", "Audit-log verification"),
    ("training", "Training records"),
    ("ethics_review", "Ethics review"),
    ("risk_register", "Risk register"),
    ("classification", "AI Act classification"),
    ("documentation", "Attached documentation"),
]


def build_report(
    model: str,
    version: str | None = None,
    assessments: list[Path] | None = None,
    *,
    manifests: Sequence[str | Path] | None = None,
    attached: list[str] | None = None,
    signed_models: list[str] | None = None,
    manifest_key: Path | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    """Gather everything Bastion knows about ``model`` into one JSON-able report."""
    from bastion.govern.aiact import latest_classification
    from bastion.govern.nist import nist_view
    from bastion.govern.risk import list_risks
    from bastion.govern.training.records import team_coverage

    classification = latest_classification(model, url)
    tier = classification["tier"] if classification and classification["tier"] != "prohibited" else "high"
    ev = collect_evidence(assessments, model, version, tier=tier, url=url, attached=attached,  # type: ignore[arg-type]
                          manifests=manifests, signed_models=signed_models,
                          manifest_key=manifest_key)
    results = ev.results()
    statuses: dict[str, str] = {r.control.id: r.status for r in results}
    risks = [r.to_dict() for r in list_risks(model, statuses, url)]
    runs = _assessment_runs(assessments or [])
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "warn", "fail", "no evidence")}
    training = team_coverage(url)
    actions = _open_actions(ev, classification, risks, runs)
    return {
        "schema": REPORT_SCHEMA,
        "system": model,
        "version": version,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wording": WORDING,
        "executive_summary": {
            "tier": classification["tier"] if classification else "not classified",
            "tier_summary": classification["summary"] if classification else
            "No EU AI Act classification recorded: run 'bastion govern classify --answers system.yaml'.",
            "controls": counts,
            "controls_total": len(results),
            "assessment_runs": len(runs),
            "highest_residual_risks": [{"id": r["id"], "title": r["title"], "residual": r["residual"],
                                        "band": r["residual_band"]} for r in risks[:5]],
            "open_actions": len(actions),
            "training_teams": len(training),
        },
        "classification": classification,
        "thresholds_tier": tier,
        "risk_register": risks,
        "controls": [r.to_dict() for r in results],
        "evidence_by_source": _by_source(ev),
        "assessment_runs": runs,
        "nist_ai_rmf": nist_view(ev),
        "training": training,
        "open_actions": actions,
        "sources": ev.sources,
    }


def _assessment_runs(paths: list[Path]) -> list[dict[str, Any]]:
    runs = []
    for p in paths:
        a = load_assessment(p)
        s = a.summary()
        html = (p if p.is_dir() else p.parent) / "report.html"
        runs.append({"path": str(p), "report_html": str(html.resolve()) if html.is_file() else None, "created_at": a.created_at, "target": a.target.get("name"),
                     "profile": a.profile, "seed": a.seed, "verdict": s["verdict"], "checks": s["checks"],
                     "findings": s["findings"],
                     "top_findings": [{"id": f.id, "severity": f.severity.value, "title": f.title,
                                       "recommendation": f.recommendation}
                                      for f in sorted(a.findings, key=lambda f: f.severity.rank, reverse=True)
                                      if f.severity >= Severity.MEDIUM][:10]})
    return runs


def _by_source(ev: EvidenceSet) -> list[dict[str, Any]]:
    out = []
    for source, title in SOURCE_SECTIONS:
        items = [e.to_dict() for e in ev.items if e.source == source]
        note = ev.sources.get(source) or ev.sources.get({"assessment": "assessments",
                                                          "signature": "registry"}.get(source, ""), "")
        out.append({"source": source, "title": title, "items": items, "note": note or
                    ("no evidence" if not items else "")})
    return out


def _open_actions(ev: EvidenceSet, classification: dict[str, Any] | None, risks: list[dict[str, Any]],
                  runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    if classification is None:
        actions.append({"priority": "high", "action": "Classify the system under the EU AI Act",
                        "command": "bastion govern classify --answers system.yaml"})
    for r in ev.results():
        cmds = ", ".join(r.control.commands)
        if r.status == "fail":
            actions.append({"priority": "high", "action": f"{r.control.id} failing: {r.control.title}",
                            "command": cmds})
        elif r.status == "warn":
            actions.append({"priority": "medium", "action": f"{r.control.id} needs attention: {r.control.title}",
                            "command": cmds})
        elif r.status == "no evidence":
            actions.append({"priority": "low", "action": f"Produce evidence for {r.control.id}: {r.control.title}",
                            "command": cmds})
    for run in runs:
        for f in run["top_findings"]:
            if f["severity"] in ("high", "critical") and f["recommendation"]:
                actions.append({"priority": "high", "action": f"Finding {f['id']}: {f['title']}",
                                "command": f["recommendation"]})
    for risk in risks:
        if risk["status"] != "open":
            continue
        if not risk["owner"]:
            actions.append({"priority": "medium", "action": f"Assign an owner to risk {risk['id']}: {risk['title']}",
                            "command": f"bastion govern risks update {risk['id']} --owner NAME"})
        if risk["review_overdue"]:
            actions.append({"priority": "medium", "action": f"Review overdue for risk {risk['id']}",
                            "command": f"bastion govern risks update {risk['id']} --review-date YYYY-MM-DD"})
    order = {"high": 0, "medium": 1, "low": 2}
    return sorted(actions, key=lambda a: order[a["priority"]])


def render_report_html(report: dict[str, Any]) -> str:
    from bastion.govern.render import render_template

    return render_template("report.html.j2", r=report)


def render_report_pdf(report: dict[str, Any]) -> bytes:
    from bastion.govern.render import html_to_pdf

    return html_to_pdf(render_report_html(report))
