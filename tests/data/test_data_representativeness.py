"""Representativeness of training data against a reference population: the demo (a selection-biased sample is
caught, a stratified one of the same size passes), cases the thresholds were not set on (a truncated range, a
missing category, plain random samples of a synthetic population), the CLI and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bastion.core.errors import InvalidInputError
from bastion.core.severity import Severity
from bastion.monitor.representativeness import representativeness


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from bastion.datasets.fairness_demo import build_fairness_demo

    return build_fairness_demo(tmp_path_factory.mktemp("fair"), seed=0)


def _ids(res) -> dict[str, Severity]:  # type: ignore[no-untyped-def]
    out: dict[str, Severity] = {}
    for f in res.findings:
        out[f.id] = max(out.get(f.id, f.severity), f.severity)
    return out


def test_skewed_sample_is_caught_and_stratified_sample_passes(demo: dict) -> None:
    pop = pd.read_csv(demo["population"])
    skewed = representativeness(pd.read_csv(demo["skewed"]["train"]), pop, ["sex"], "y")
    ids = _ids(skewed)
    assert skewed.to_dict()["verdict"] == "not_representative"
    assert ids["data.representativeness.intersection"] == Severity.HIGH
    cell = next(f for f in skewed.findings if f.id == "data.representativeness.intersection")
    assert cell.evidence["cell"] == {"sex": "2", "y": "1"} and cell.evidence["train_count"] == demo["skewed"]["sex2_high_rows"]
    assert {"eu-ai-act:Art10(3)", "nist-ai-rmf:MEASURE-2.11"} <= set(cell.controls)
    assert ids["data.representativeness.group_imbalance"] >= Severity.MEDIUM
    strat = representativeness(pd.read_csv(demo["stratified"]["train"]), pop, ["sex", "age"], "y")
    assert strat.to_dict()["verdict"] == "representative", [f.title for f in strat.findings]
    assert strat.max_severity is None or strat.max_severity <= Severity.LOW
    assert "age_band" in strat.groups  # a numeric group column becomes the reference's quartile bands


def _population(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east", "west", "islands"], n, p=[0.3, 0.3, 0.2, 0.15, 0.05])
    income = rng.lognormal(3.5, 0.4, n)
    age = rng.integers(18, 90, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(income - 35) / 10))).astype(int)
    return pd.DataFrame({"region": region, "income": income.round(2), "age": age, "y": y})


@pytest.mark.parametrize("seed", [11, 12, 13, 14, 15])
def test_plain_random_samples_of_a_fresh_population_pass(seed: int) -> None:
    pop = _population(5000, seed)
    sample = pop.sample(800, random_state=seed)
    res = representativeness(sample, pop, ["region", "age"], "y", seed=seed)
    assert res.max_severity is None or res.max_severity <= Severity.LOW, [f.title for f in res.findings]


def test_truncated_range_and_missing_category_are_coverage_findings() -> None:
    pop = _population(5000, 21)
    train = pop[(pop.income < pop.income.quantile(0.7)) & (pop.region != "islands")].sample(800, random_state=0)
    res = representativeness(train, pop, ["region"], "y")
    cov = {c["column"]: c for c in res.coverage}
    assert cov["income"]["coverage"] == pytest.approx(0.7, abs=0.05) and cov["income"]["missing"]
    assert cov["region"]["missing"] == ["islands"]
    by_col = {f.evidence.get("column"): f for f in res.findings if f.id == "data.representativeness.coverage"}
    assert by_col["income"].severity == Severity.HIGH and "eu-ai-act:Art10(4)" in by_col["income"].controls
    shifted = {f.evidence["column"] for f in res.findings if f.id == "data.representativeness.shift"}
    assert "income" in shifted
    assert res.mmd["pvalue"] is not None and res.mmd["pvalue"] < 0.05


def test_cli_writes_json_and_html_and_exits_1_on_findings(demo: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bastion.cli.main import build_app

    app, run = build_app(), CliRunner()
    out = tmp_path / "rep"
    r = run.invoke(app, ["data", "representativeness", demo["skewed"]["train"], "--reference", demo["population"],
                         "--groups", "sex", "--label", "y", "--out", str(out), "--format", "json"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert {"verdict", "coverage", "balance", "cells", "shift", "mmd", "findings", "params"} <= set(doc)
    page = (out / "representativeness.html").read_text()
    assert "Not representative" in page and page.count("data:image/png;base64,") >= 2
    assert json.loads((out / "representativeness.json").read_text())["verdict"] == "not_representative"
    r = run.invoke(app, ["data", "representativeness", demo["stratified"]["train"], "--reference", demo["population"],
                         "--groups", "sex", "--label", "y"])
    assert r.exit_code == 0, r.output
    r = run.invoke(app, ["data", "representativeness", demo["stratified"]["train"], "--reference", demo["population"],
                         "--groups", "gender"])
    assert isinstance(r.exception, InvalidInputError) and r.exception.exit_code == 2 and "gender" in str(r.exception)
