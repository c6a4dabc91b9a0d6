"""NIST AI RMF 1.0 view: for each subcategory Bastion can speak to, the evidence it has.

Worded as *evidence toward* a subcategory — an AI RMF outcome is an organisational achievement that
no tool can certify; Bastion shows what it measured and recorded.
"""

from __future__ import annotations

from typing import Any

from bastion.govern.catalog import load_catalog
from bastion.govern.evidence import EvidenceSet, worst_status

FUNCTIONS = ("GOVERN", "MAP", "MEASURE", "MANAGE")


def nist_view(evidence: EvidenceSet, only_addressed: bool = True) -> list[dict[str, Any]]:
    """Per subcategory: controls mapped, their status, evidence summaries, and a wording line."""
    cat = load_catalog()
    results = {r.control.id: r for r in evidence.results()}
    rows = []
    for item in cat.items:
        if item.framework != "nist-ai-rmf":
            continue
        ctls = [c for c in cat.controls if any(m.parsed.key == item.key for m in c.mappings)]
        if only_addressed and not ctls:
            continue
        ev = [e for c in ctls for e in results[c.id].evidence]
        status = worst_status([results[c.id].status for c in ctls]) if ctls else "not covered"
        wording = (f"Evidence toward {item.id}: " + "; ".join(sorted({e.summary for e in ev})[:4])
                   if ev else f"No evidence toward {item.id} yet: run " +
                   ", ".join(sorted({cmd for c in ctls for cmd in c.commands})[:3]))
        rows.append({"id": item.id, "function": item.id.split("-")[0], "title": item.title, "status": status,
                     "controls": [c.id for c in ctls], "evidence_items": len(ev), "wording": wording})
    return rows
