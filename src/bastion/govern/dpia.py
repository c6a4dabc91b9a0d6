"""DPIA helper: the four parts GDPR Art. 35(7) requires, pre-filled from the PII scan and the privacy
assessment (membership-inference results, DP privacy statements, encryption and anonymisation evidence).

The PII report is read generically (any JSON from ``bastion data pii --format json``): every object that
names an ``entity_type`` (or ``type``) and a column is counted, so the helper keeps working as that
report's shape evolves.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from bastion.core.errors import InvalidInputError
from bastion.govern.document import Document
from bastion.govern.evidence import collect_evidence
from bastion.report import load_assessment

DPIA_KEYS = ("processing_description", "purposes", "legitimate_interest", "data_subjects", "retention",
             "recipients", "necessity", "proportionality", "consultation", "dpo_opinion", "residual_risk_acceptance")


def pii_summary(doc: Any) -> dict[str, Any]:
    """Entity types and the columns they were found in, from any PII report shape."""
    types: Counter[str] = Counter()
    columns: dict[str, set[str]] = {}
    if isinstance(doc, dict) and isinstance(doc.get("entity_counts"), dict) and isinstance(doc.get("columns"), list):
        # the shape of bastion.data.privacy.pii.scan_dataframe (``bastion data pii --format json``)
        for c in doc["columns"]:
            if isinstance(c, dict) and isinstance(c.get("entities"), dict):
                for ent in c["entities"]:
                    columns.setdefault(str(ent), set()).add(str(c.get("column")))
        counts = {str(k): int(v) for k, v in doc["entity_counts"].items() if isinstance(v, int | float)}
        return {"entity_counts": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
                "columns": {k: sorted(v) for k, v in sorted(columns.items())}}

    def walk(node: Any, column: str | None = None) -> None:
        if isinstance(node, dict):
            col = node.get("column") or node.get("field") or column
            et = node.get("entity_type") or node.get("entity") or (node.get("type") if "score" in node or "count"
                                                                   in node else None)
            if isinstance(et, str):
                n = node.get("count", 1)
                types[et] += int(n) if isinstance(n, int) else 1
                if col:
                    columns.setdefault(et, set()).add(str(col))
            for k, v in node.items():
                walk(v, col if isinstance(col, str) else (k if isinstance(v, list | dict) and k not in
                                                          ("findings", "entities", "results", "columns") else column))
        elif isinstance(node, list):
            for v in node:
                walk(v, column)

    walk(doc)
    return {"entity_counts": dict(types.most_common()),
            "columns": {k: sorted(v) for k, v in sorted(columns.items())}}


def build_dpia(system: str, assessments: list[Path] | None = None, pii_reports: list[Path] | None = None,
               info: dict[str, str] | None = None, url: str | None = None) -> Document:
    """A DPIA skeleton (Art. 35(7)(a)–(d)) for ``system``."""
    info = info or {}
    ev = collect_evidence(assessments, system, url=url)
    results = {r.control.id: r for r in ev.results()}
    pii: dict[str, Any] = {"entity_counts": {}, "columns": {}}
    for p in pii_reports or []:
        try:
            s = pii_summary(json.loads(p.read_text()))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"PII report {p} cannot be read as JSON: {exc}") from None
        for k, v in s["entity_counts"].items():
            pii["entity_counts"][k] = pii["entity_counts"].get(k, 0) + v
        for k, cols in s["columns"].items():
            pii["columns"][k] = sorted(set(pii["columns"].get(k, [])) | set(cols))
    runs = [load_assessment(p) for p in assessments or []]
    statements = []
    for a in runs:
        mp = a.target.get("model_path")
        if mp:
            try:
                from bastion.defenses.dp import read_privacy_statement

                st = read_privacy_statement(mp)
            except ImportError:
                st = None
            if st is not None:
                statements.append(f"{Path(mp).name}: ε={st.epsilon:.3g}, δ={st.delta:g} ({st.accountant})")
    doc = Document("dpia", "Data protection impact assessment (GDPR Art. 35(7))", system,
                   "Pre-filled from Bastion's PII scan and privacy assessment. The controller must complete, "
                   "review and sign it, and seek the DPO's advice (Art. 35(2)).")
    sa = doc.section("a", "Systematic description of the processing and its purposes")
    sa.add("Processing operations", info.get("processing_description"), "info")
    sa.add("Purposes", info.get("purposes"), "info")
    sa.add("Legitimate interest pursued (if relied on)", info.get("legitimate_interest"), "info")
    sa.add("Categories of data subjects", info.get("data_subjects"), "info")
    found = "; ".join(f"{k} ×{v}" + (f" in {', '.join(pii['columns'].get(k, []))}" if pii["columns"].get(k) else "")
                      for k, v in pii["entity_counts"].items())
    from_checks = [f"{r.check_id}: {r.summary or r.status.value}" for a in runs for r in a.results
                   if r.check_id.startswith("data.pii")]
    sa.add("Personal data found by the PII scan",
           found or "; ".join(from_checks) or ("no personal data detected" if pii_reports else ""),
           ", ".join(str(p) for p in pii_reports or []) or ("assessment (data.pii)" if from_checks else ""))
    sa.add("Training data used by the model", "; ".join(f"{r.target.get('name')}: {r.target.get('n_train')} training "
                                                       f"rows, data sha256 {r.target.get('fingerprints', {}).get('data')}"
                                                       for r in runs), "assessment")
    sa.add("Retention", info.get("retention"), "info")
    sa.add("Recipients", info.get("recipients"), "info")
    sb = doc.section("b", "Necessity and proportionality")
    sb.add("Necessity", info.get("necessity"), "info")
    sb.add("Proportionality and data minimisation", info.get("proportionality") or _control_line(results, "BC-PI-01"),
          "info" if info.get("proportionality") else "control BC-PI-01")
    sc = doc.section("c", "Risks to the rights and freedoms of data subjects")
    for cid in ("BC-PR-01", "BC-PR-02", "BC-EX-01", "BC-PI-01"):
        r = results[cid]
        sc.add(r.control.title, _control_line(results, cid), f"control {cid}")
    sd = doc.section("d", "Measures to address the risks")
    sd.add("Differential privacy", "; ".join(statements) or _control_line(results, "BC-DP-01"),
          "privacy statement" if statements else "control BC-DP-01")
    for cid in ("BC-PI-02", "BC-AC-01", "BC-OP-01", "BC-LG-01", "BC-IR-01"):
        sd.add(results[cid].control.title, _control_line(results, cid), f"control {cid}")
    sd.add("Consultation of data subjects or representatives", info.get("consultation"), "info")
    sd.add("DPO opinion", info.get("dpo_opinion"), "info")
    sd.add("Acceptance of residual risk", info.get("residual_risk_acceptance"), "info")
    return doc


def _control_line(results: dict[str, Any], cid: str) -> str:
    r = results[cid]
    if not r.evidence:
        return ""
    return f"{r.status}: " + "; ".join(e.summary for e in r.evidence[:3])
