"""Schema inference and validation (row/column violations), anomaly scoring with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bastion.cli.main import build_app
from bastion.data.privacy.synthetic import synthetic_people
from bastion.data.validation import infer_schema, score_anomalies, validate

runner = CliRunner()


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    return synthetic_people(200, seed=4)[0]


def test_violations_listed_with_row_and_column(people: pd.DataFrame) -> None:
    schema = infer_schema(people)
    assert validate(people, schema)["ok"] is True
    bad = people.copy()
    bad.loc[5, "age"] = 150
    bad.loc[7, "gender"] = "X"
    bad.loc[9, "customer_id"] = bad.loc[8, "customer_id"]
    report = validate(bad, schema)
    found = {(v["row"], v["column"]) for v in report["violations"]}
    assert {(5, "age"), (7, "gender"), (8, "customer_id"), (9, "customer_id")} <= found
    assert report["rows_with_violations"] == 4


def test_anomalies_rank_injected_rows_first_with_reasons(people: pd.DataFrame) -> None:
    bad = people.copy()
    bad.loc[3, "age"] = 400
    bad.loc[12, "gender"] = "unknown"
    top = score_anomalies(bad, reference=people, top=2)["top"]
    assert {r["row"] for r in top} == {3, 12}
    reasons = {r["row"]: r["reasons"][0] for r in top}
    assert reasons[3]["feature"] == "age" and "range" in reasons[3]["why"]
    assert reasons[12]["feature"] == "gender"


def test_cli_profile_validate_anomalies(tmp_path: Path, people: pd.DataFrame) -> None:
    app = build_app()
    ref, new, schema = tmp_path / "ref.csv", tmp_path / "new.csv", tmp_path / "schema.json"
    people.to_csv(ref, index=False)
    assert runner.invoke(app, ["data", "profile", str(ref), "--out", str(schema)]).exit_code == 0
    assert json.loads(schema.read_text())["columns"]["age"]["kind"] == "int"
    ok = runner.invoke(app, ["data", "validate", str(ref), "--schema", str(schema), "--format", "json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    bad = people.copy()
    bad.loc[2, "age"] = -1
    bad.to_csv(new, index=False)
    res = runner.invoke(app, ["data", "validate", str(new), "--schema", str(schema), "--format", "json"])
    assert res.exit_code == 1 and json.loads(res.stdout)["violations"][0]["row"] == 2
    an = runner.invoke(app, ["data", "anomalies", str(new), "--reference", str(ref), "--top", "1", "--format", "json"])
    assert an.exit_code == 0 and json.loads(an.stdout)["top"][0]["row"] == 2
