"""Evidence collection and the coverage matrix."""

from __future__ import annotations

import json
from pathlib import Path

from bastion.govern.catalog import control
from bastion.govern.coverage import coverage_matrix, render_coverage_html
from bastion.govern.evidence import collect_evidence, judge_result


def test_thresholds_depend_on_tier() -> None:
    ev = control("BC-EV-01")
    assert judge_result(ev, "pass", {"robust_accuracy": 0.45}, "high")[0] == "warn"
    assert judge_result(ev, "pass", {"robust_accuracy": 0.45}, "limited")[0] == "pass"
    assert judge_result(ev, "pass", {"robust_accuracy": 0.01}, "minimal")[0] == "fail"
    assert judge_result(ev, "error", {}, "high")[0] == "info"
    assert judge_result(ev, "fail", {"robust_accuracy": 0.43}, "minimal")[0] == "pass"
    assert judge_result(ev, "fail", {"robust_accuracy": 0.43}, "high")[0] == "fail"
    assert judge_result(ev, "warn", {"clean_accuracy": 0.9}, "minimal")[0] == "warn"


def test_latest_assessment_wins_and_matrix_shows_gaps(bastion_home: Path, tmp_path: Path, assessment_factory) -> None:
    make_assessment = assessment_factory
    old = tmp_path / "old.json"
    old.write_text(json.dumps(make_assessment(0.9, created_at="2025-01-01T00:00:00+00:00").to_dict()))
    new = tmp_path / "new.json"
    new.write_text(json.dumps(make_assessment(0.1, created_at="2026-06-01T00:00:00+00:00").to_dict()))
    ev = collect_evidence([old, new])
    assert ev.for_control("BC-EV-01").status == "fail"
    assert ev.for_control("BC-PR-01").status == "pass"
    assert ev.for_control("BC-IR-01").status == "no evidence"
    m = coverage_matrix(ev)
    rows = {r["key"]: r for r in m["items"]}
    assert rows["mitre-atlas:AML.T0015"]["status"] == "fail"
    assert rows["owasp-ml:ML04:2023"]["status"] == "pass"
    assert rows["owasp-ml:ML07:2023"]["status"] == "not covered"
    assert rows["eu-ai-act:Art73"]["status"] == "no evidence"
    assert m["summary"]["owasp-ml"]["items"] == 10
    html = render_coverage_html(m)
    assert "AML.T0015" in html and "not covered" in html and "compliant" not in html.lower().replace(
        "not a statement of compliance", "")


def test_coverage_cli_json_html_and_bad_input(cli, bastion_home: Path, assessment_file: Path, tmp_path: Path) -> None:
    res = cli(["govern", "coverage", "--assessment", str(assessment_file), "--framework", "owasp-ml",
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert {r["framework"] for r in doc["items"]} == {"owasp-ml"}
    assert next(r for r in doc["items"] if r["id"] == "ML01:2023")["status"] == "fail"
    out = tmp_path / "coverage.html"
    res = cli(["govern", "coverage", "--assessment", str(assessment_file), "--format", "html",
                              "--out", str(out)])
    assert res.exit_code == 0 and out.read_text().startswith("<!doctype html>")
    bad = cli(["govern", "coverage", "--assessment", str(tmp_path / "nope.json")])
    assert bad.exit_code == 2
    runs = assessment_file.parent.parent  # a directory of runs: */assessment.json
    res = cli(["govern", "coverage", "-a", str(runs), "--framework", "owasp-ml", "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["sources"]["assessments"] == "1 file(s)"
    assert cli(["govern", "coverage", "-a", str(tmp_path / "empty-dir-does-not-exist")]).exit_code == 2
    bad = cli(["govern", "coverage", "--framework", "iso"])
    assert bad.exit_code == 2
