"""Reports: JSON validates against the schema, SARIF structure, HTML verdict + embedded images, compare."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bastion.assess.runner import run_assessment
from bastion.assess.target import build_target
from bastion.core.errors import InvalidInputError
from bastion.core.results import Assessment
from bastion.report import (
    assessment_schema,
    compare_assessments,
    load_assessment,
    schema_errors,
    to_sarif,
    write_reports,
)


@pytest.fixture
def report_dir(fake_checks, tmp_path: Path) -> tuple[Assessment, Path]:  # type: ignore[no-untyped-def]
    a = run_assessment(build_target(demo="digits"), "quick", out_dir=tmp_path, only=["test_assess"], progress=False)
    write_reports(a, tmp_path)
    return a, tmp_path


def test_json_validates_and_round_trips(report_dir) -> None:  # type: ignore[no-untyped-def]
    _, out = report_dir
    doc = json.loads((out / "assessment.json").read_text())

    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(assessment_schema())
    assert schema_errors(doc) == []
    assert doc["summary"]["findings"]["high"] == 1
    assert load_assessment(out).to_dict()["results"] == doc["results"]


def test_schema_rejects_broken_documents(report_dir) -> None:  # type: ignore[no-untyped-def]
    _, out = report_dir
    doc = json.loads((out / "assessment.json").read_text())
    bad = copy.deepcopy(doc)
    bad["results"][0]["status"] = "exploded"
    bad["results"][0]["findings"] = [{"id": "x", "severity": "urgent", "title": "t", "evidence": {},
                                      "recommendation": "", "controls": ["no-prefix"]}]
    del bad["target"]["fingerprints"]
    errors = schema_errors(bad)
    assert any("exploded" in e for e in errors) and any("urgent" in e for e in errors)
    assert any("fingerprints" in e for e in errors) and any("no-prefix" in e for e in errors)
    (out / "broken.json").write_text(json.dumps(bad))
    with pytest.raises(InvalidInputError, match="schema"):
        load_assessment(out / "broken.json")


def test_sarif_structure(report_dir) -> None:  # type: ignore[no-untyped-def]
    a, out = report_dir
    sarif = json.loads((out / "assessment.sarif").read_text())

    assert sarif["version"] == "2.1.0" and "sarif-2.1.0" in sarif["$schema"]
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] == "Bastion"
    assert [r["id"] for r in rules] == ["test_assess.weak.weak"]
    assert rules[0]["properties"]["security-severity"] == "8.0"
    (res,) = run["results"]
    assert res["ruleId"] == "test_assess.weak.weak" and res["level"] == "error" and res["ruleIndex"] == 0
    assert "harden adversarial-training" in res["message"]["text"]
    assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert run["invocations"][0]["executionSuccessful"] is False and "diverged" in notes[0]["message"]["text"]
    assert to_sarif(a) == sarif


def test_html_has_verdict_findings_and_embedded_images(report_dir) -> None:  # type: ignore[no-untyped-def]
    _, out = report_dir
    html = (out / "report.html").read_text()

    assert "Serious weaknesses were found" in html
    assert html.index('id="verdict"') < html.index("Checks in detail")
    assert "data:image/png;base64,iVBORw0KGgo" in html  # the robustness curve PNG, inline
    assert "bastion harden adversarial-training --model M --data D" in html
    assert "mitre-atlas:AML.T0015" in html and "the attack diverged" in html
    assert "File scan before loading</th><td>safe" in html
    assert "http://" not in html and "https://" not in html.replace("https://json-schema", "")  # no CDN


def test_compare_before_after(report_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before, _ = report_dir
    after = Assessment.from_dict(copy.deepcopy(before.to_dict()))
    weak = after.result("test_assess.weak")
    assert weak is not None
    weak.metrics["robust_accuracy"] = 0.8
    weak.metrics["curve"] = [{"eps": p["eps"], "robust_accuracy": 0.9 - p["eps"]} for p in weak.metrics["curve"]]
    weak.findings = []

    cmp = compare_assessments(before, after)
    paths = write_reports(after, tmp_path / "after", compare_with=before)

    delta = next(m for m in cmp.metrics if m.check_id == "test_assess.weak" and m.metric == "robust_accuracy")
    assert delta.after == 0.8 and delta.delta == pytest.approx(0.8 - delta.before)
    assert cmp.findings["before"]["high"] == 1 and cmp.findings["after"]["high"] == 0
    assert cmp.plots["test_assess.weak.png"].startswith(b"\x89PNG")
    html = paths["html"].read_text()
    assert "Before and after" in html and html.count("data:image/png;base64,") >= 2
    assert json.loads(paths["compare"].read_text())["curves"]["test_assess.weak"]["after"][0]["robust_accuracy"] == 0.9
