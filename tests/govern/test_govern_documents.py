"""Annex IV, DPIA and the ethics checklist."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bastion.core.errors import ConfigError
from bastion.govern.annex_iv import build_annex_iv, load_info
from bastion.govern.dpia import build_dpia, pii_summary
from bastion.govern.ethics import ITEMS, checklist, load_answers, record_answers


def _field(doc: dict, label: str) -> dict:
    return next(f for s in doc["sections"] for f in s["fields"] if f["label"] == label)


def test_annex_iv_fills_from_evidence_and_marks_the_rest(bastion_home: Path, assessment_file: Path,
                                                         tmp_path: Path) -> None:
    doc = build_annex_iv("digits", [assessment_file]).to_dict()
    assert [s["id"] for s in doc["sections"]] == [str(i) for i in range(1, 10)]
    assert "ab" * 32 in _field(doc, "Model format and fingerprint")["value"]
    tested = _field(doc, "Validation and testing procedures and results")
    assert "robust_accuracy=0.12" in tested["value"] and str(assessment_file) in tested["source"]
    assert _field(doc, "Intended purpose")["todo"]
    info = tmp_path / "info.yaml"
    info.write_text(yaml.safe_dump({"intended_purpose": "Reads handwritten digits on bank forms."}))
    filled = build_annex_iv("digits", [assessment_file], load_info(info))
    assert not _field(filled.to_dict(), "Intended purpose")["todo"]
    assert filled.todo_count == doc["to_write"] - 1
    md = filled.to_markdown()
    assert "## 9. Post-market monitoring plan (Art. 72)" in md and "TO BE WRITTEN BY A HUMAN" in md
    info.write_text(yaml.safe_dump({"intended_use": "typo"}))
    with pytest.raises(ConfigError, match="intended_use"):
        load_info(info)


def test_pii_summary_reads_any_shape() -> None:
    report = {"columns": [{"column": "email", "entities": [{"entity_type": "EMAIL_ADDRESS", "count": 40}]},
                          {"column": "notes", "findings": [{"entity_type": "US_SSN", "score": 0.9}]}]}
    s = pii_summary(report)
    assert s["entity_counts"] == {"EMAIL_ADDRESS": 40, "US_SSN": 1}
    assert s["columns"] == {"EMAIL_ADDRESS": ["email"], "US_SSN": ["notes"]}


def test_dpia_sections_and_pii(bastion_home: Path, assessment_file: Path, tmp_path: Path) -> None:
    pii = tmp_path / "pii.json"
    pii.write_text(json.dumps({"findings": [{"column": "name", "entity_type": "PERSON", "count": 12}]}))
    doc = build_dpia("digits", [assessment_file], [pii], {"purposes": "credit decisions"}).to_dict()
    assert [s["id"] for s in doc["sections"]] == ["a", "b", "c", "d"]
    assert "PERSON ×12 in name" in _field(doc, "Personal data found by the PII scan")["value"]
    assert _field(doc, "Membership inference leakage is measured")["value"].startswith("pass")
    assert _field(doc, "Purposes")["value"] == "credit decisions"
    assert _field(doc, "DPO opinion")["todo"]


def test_ethics_answers_recorded_latest_wins(bastion_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "ethics.yaml"
    path.write_text(yaml.safe_dump({"system": "loans", "answers": {
        "asilomar-06": {"answer": "partial", "owner": "sec-team", "notes": "no monitoring yet"},
        "aiact-art4": {"answer": True, "owner": "hr"}}}))
    system, answers = load_answers(path)
    record_answers(system, answers)
    record_answers(system, {"asilomar-06": {"answer": "yes", "owner": "sec-team", "notes": "monitoring on"}})
    items = {i.item: i for i in checklist("loans")}
    assert len(items) == len(ITEMS)
    assert items["asilomar-06"].answer == "yes" and items["aiact-art4"].owner == "hr"
    assert items["asilomar-16"].answer is None
    path.write_text(yaml.safe_dump({"system": "loans", "answers": {"asilomar-99": {"answer": "yes", "owner": "x"},
                                                                   "aiact-art4": {"answer": "maybe"}}}))
    with pytest.raises(ConfigError) as err:
        load_answers(path)
    assert "asilomar-99" in str(err.value) and "aiact-art4.answer" in str(err.value) and "owner" in str(err.value)


def test_documents_cli(cli: Callable, bastion_home: Path, assessment_file: Path, tmp_path: Path) -> None:
    res = cli(["govern", "annex-iv", "--model", "digits", "-a", str(assessment_file), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["kind"] == "annex-iv"
    out = tmp_path / "dpia.html"
    res = cli(["govern", "dpia", "--model", "digits", "-a", str(assessment_file), "--format", "html", "--out", str(out)])
    assert res.exit_code == 0 and "Art. 35(7)" in out.read_text()
    tpl = cli(["govern", "ethics", "--system", "loans", "--template"])
    assert tpl.exit_code == 0 and "asilomar-06" in tpl.stdout
    answers = tmp_path / "answers.yaml"
    doc = yaml.safe_load(tpl.stdout)
    for a in doc["answers"].values():
        a.update(answer="yes", owner="lead")
    answers.write_text(yaml.safe_dump(doc))
    res = cli(["govern", "ethics", "--answers", str(answers), "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["answered"] == len(ITEMS)
    bad = cli(["govern", "annex-iv", "--model", "digits", "--info", str(tmp_path / "missing.yaml")])
    assert bad.exit_code == 2


def test_pii_summary_reads_the_data_pii_scan() -> None:
    import pandas as pd

    from bastion.data.privacy.pii import scan_dataframe

    df = pd.DataFrame({"email": ["ada@example.com", "bob@example.org"], "amount": ["10", "12"]})
    s = pii_summary(json.loads(json.dumps(scan_dataframe(df))))
    assert s["entity_counts"].get("EMAIL_ADDRESS") == 2
    assert s["columns"]["EMAIL_ADDRESS"] == ["email"]
