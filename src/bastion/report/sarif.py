"""SARIF 2.1.0 output for code-scanning dashboards (GitHub, GitLab, Azure DevOps).

One rule per distinct finding id, one result per finding. Levels: critical/high → ``error``,
medium → ``warning``, low/info → ``note``; ``properties.security-severity`` carries a CVSS-like
score so GitHub ranks them. Checks that errored appear as tool execution notifications.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bastion.core.paths import atomic_write_text
from bastion.core.results import Assessment
from bastion.core.severity import Severity
from bastion.report.json_report import dumps

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
LEVELS = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
          Severity.LOW: "note", Severity.INFO: "note"}
SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5",
                     Severity.LOW: "3.0", Severity.INFO: "0.0"}


def to_sarif(assessment: Assessment) -> dict[str, Any]:
    """The assessment as a SARIF 2.1.0 log (a dict)."""
    from bastion import __version__

    target = assessment.target
    uri = target.get("model_path") or target.get("name") or "model"
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for res in assessment.results:
        if res.error:
            notifications.append({
                "level": "error",
                "message": {"text": f"{res.check_id}: {res.error}"},
                "descriptor": {"id": res.check_id},
            })
        for f in res.findings:
            if f.id not in index:
                index[f.id] = len(rules)
                rules.append({
                    "id": f.id,
                    "name": "".join(w.capitalize() for w in f.id.replace(".", "_").replace("-", "_").split("_")),
                    "shortDescription": {"text": f.title[:200]},
                    "fullDescription": {"text": f"{res.title}: {f.title}"},
                    "help": {"text": f.recommendation or "see the Bastion report", "markdown": f"`{f.recommendation}`"
                             if f.recommendation else "see the Bastion report"},
                    "defaultConfiguration": {"level": LEVELS[f.severity]},
                    "properties": {"tags": ["security", "machine-learning", *f.controls],
                                   "security-severity": SECURITY_SEVERITY[f.severity]},
                })
            results.append({
                "ruleId": f.id,
                "ruleIndex": index[f.id],
                "level": LEVELS[f.severity],
                "message": {"text": f"{f.title}. Fix: {f.recommendation}" if f.recommendation else f.title},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": str(uri)}}}],
                "partialFingerprints": {"bastionFinding/v1": f"{res.check_id}:{f.id}:{target.get('fingerprints', {}).get('model', '')[:16]}"},
                "properties": {"check_id": res.check_id, "severity": f.severity.value, "controls": f.controls,
                               "evidence": f.evidence},
            })
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": "Bastion",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": "https://github.com/bastion-ml/bastion",
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": not notifications,
                "toolExecutionNotifications": notifications,
                "properties": {"profile": assessment.profile, "seed": assessment.seed},
            }],
            "results": results,
            "properties": {"target": target.get("name"), "fingerprints": target.get("fingerprints", {}),
                           "input_range": target.get("input_range"),
                           "verdict": assessment.summary()["verdict"]},
        }],
    }


def write_sarif(assessment: Assessment, path: str | Path) -> Path:
    """Write ``assessment.sarif`` atomically."""
    p = Path(path)
    atomic_write_text(p, dumps(to_sarif(assessment), indent=2) + "\n")
    json.loads(p.read_text(encoding="utf-8"))
    return p
