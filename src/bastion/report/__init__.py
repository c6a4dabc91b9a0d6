"""Rendering an Assessment: JSON (versioned schema), HTML, SARIF, and before/after comparison.

``write_reports(assessment, out_dir, compare_with=None)`` writes ``assessment.json``,
``report.html`` and ``assessment.sarif`` (and ``compare.json`` with a comparison).
"""

from __future__ import annotations

from pathlib import Path

from bastion.core.paths import atomic_write_bytes, atomic_write_text
from bastion.core.results import Assessment
from bastion.report.compare import Comparison, compare_assessments
from bastion.report.html import render_html, write_html
from bastion.report.json_report import (
    assessment_schema,
    dumps,
    load_assessment,
    schema_errors,
    validate_assessment,
    write_json,
)
from bastion.report.sarif import to_sarif, write_sarif

REPORT_FILES = {"json": "assessment.json", "html": "report.html", "sarif": "assessment.sarif"}


def write_reports(assessment: Assessment, out_dir: str | Path, compare_with: Assessment | None = None) -> dict[str, Path]:
    """Write every report format into ``out_dir``; returns ``{"json": path, "html": path, "sarif": path, …}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(assessment, out / REPORT_FILES["json"])}
    comparison: Comparison | None = None
    if compare_with is not None:
        comparison = compare_assessments(compare_with, assessment)
        for name, png in comparison.plots.items():
            atomic_write_bytes(out / "artifacts" / "compare" / name, png, mode=0o644)
        paths["compare"] = out / "compare.json"
        atomic_write_text(paths["compare"], dumps(comparison.to_dict()) + "\n")
    paths["html"] = write_html(assessment, out / REPORT_FILES["html"], out, comparison)
    paths["sarif"] = write_sarif(assessment, out / REPORT_FILES["sarif"])
    return paths


__all__ = [
    "REPORT_FILES",
    "Comparison",
    "assessment_schema",
    "compare_assessments",
    "load_assessment",
    "render_html",
    "schema_errors",
    "to_sarif",
    "validate_assessment",
    "write_html",
    "write_json",
    "write_reports",
    "write_sarif",
]
