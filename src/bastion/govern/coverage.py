"""The coverage matrix: framework items × controls × latest result, so a gap is visible at a glance.

Item status: the worst status of its controls that have evidence; ``no evidence`` when controls map to it
but none has evidence yet; ``not covered`` when no Bastion control maps to it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bastion.govern.catalog import FRAMEWORKS, load_catalog
from bastion.govern.evidence import EvidenceSet, worst_status

STATUS_ORDER = ("fail", "warn", "pass", "no evidence", "not covered")


def coverage_matrix(evidence: EvidenceSet, frameworks: list[str] | None = None) -> dict[str, Any]:
    """The matrix as plain JSON: per framework item, its controls and their latest status."""
    cat = load_catalog()
    results = {r.control.id: r for r in evidence.results()}
    wanted = frameworks or list(FRAMEWORKS)
    rows: list[dict[str, Any]] = []
    for item in cat.items:
        if item.framework not in wanted:
            continue
        cells = []
        for ctl in cat.controls:
            for m in ctl.mappings:
                if m.parsed.key == item.key:
                    cells.append({"control_id": ctl.id, "title": ctl.title, "relation": m.relation,
                                  "status": results[ctl.id].status})
        status = worst_status([c["status"] for c in cells]) if cells else "not covered"
        rows.append({"ref": item.pinned, "key": item.key, "framework": item.framework, "id": item.id,
                     "title": item.title, "kind": item.kind, "status": status, "controls": cells})
    summary: dict[str, Any] = {}
    for fw in wanted:
        fw_rows = [r for r in rows if r["framework"] == fw]
        counts = {s: sum(r["status"] == s for r in fw_rows) for s in STATUS_ORDER}
        summary[fw] = {"name": FRAMEWORKS[fw], "version": cat.framework_versions[fw],  # type: ignore[index]
                       "items": len(fw_rows), **counts}
    return {
        "catalog_version": cat.version,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tier": evidence.tier,
        "wording": "evidence toward framework items; not a statement of compliance",
        "sources": evidence.sources,
        "summary": summary,
        "controls": [r.to_dict() for r in results.values()],
        "items": rows,
    }


def render_coverage_html(matrix: dict[str, Any]) -> str:
    """Self-contained HTML of the matrix (no external assets)."""
    from bastion.govern.render import render_template

    return render_template("coverage.html.j2", m=matrix, frameworks=FRAMEWORKS)
