"""``fairness.group_metrics`` and ``data.representativeness`` inside ``bastion assess``: the demo's model trained on a
selection-biased sample fails the four-fifths rule, the one trained on a stratified sample passes; intervals,
thresholds, side columns, and the report section beside the SHAP reliance check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bastion.assess.registry import CheckContext, get_check
from bastion.core.severity import Severity, Status


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from bastion.datasets.fairness_demo import build_fairness_demo

    return build_fairness_demo(tmp_path_factory.mktemp("fair"), seed=0)


def _target(demo: dict, which: str):  # type: ignore[no-untyped-def]
    from bastion.assess.target import build_target
    from bastion.cli.assess import declare_groups

    t = build_target(model=demo[which]["model"], data=demo[which]["assess"], label="y")
    declare_groups(t, ["sex"], Path(demo["population"]), "y")
    return t


def test_skewed_model_fails_four_fifths_and_stratified_passes(demo: dict) -> None:
    check = get_check("fairness.group_metrics")
    ctx = CheckContext(profile="quick", seed=0)
    skewed = check.run(_target(demo, "skewed"), ctx)
    m = skewed.metrics
    assert skewed.status == Status.FAIL
    assert m["demographic_parity_ratio"] < 0.5 and m["ci95"]["selection_rate"]["ratio"][1] < 0.8
    dp = next(f for f in skewed.findings if f.id == "fairness.demographic_parity")
    assert dp.severity == Severity.HIGH and "sex=2" in dp.title
    assert {g["group"]["sex"] for g in m["by_group"]} == {"1", "2"}
    assert sum(int(g["count"]) for g in m["by_group"]) == m["samples"] == demo["n_test"]
    lo, hi = m["ci95"]["selection_rate"]["ratio"]
    assert lo <= m["demographic_parity_ratio"] <= hi
    assert skewed.params["n_boot"] == 100 and skewed.artifacts["fairness_by_group.png"].startswith(b"\x89PNG")
    strat = check.run(_target(demo, "stratified"), ctx)
    assert strat.status == Status.PASS, [f.title for f in strat.findings]
    assert strat.metrics["demographic_parity_ratio"] > 0.8


def test_representativeness_runs_in_assess_when_a_reference_is_given(demo: dict) -> None:
    check = get_check("data.representativeness")
    t = _target(demo, "skewed")
    assert check.applies(t)
    res = check.run(t, CheckContext(profile="quick", seed=0))
    assert res.status == Status.FAIL and res.metrics["verdict"] == "not_representative"
    assert any(f.id == "data.representativeness.intersection" and f.evidence["cell"] == {"sex": "2", "y": "1"}
               for f in res.findings)
    t.metadata.extra.pop("reference_population")
    assert not check.applies(t)


def test_thresholds_at_their_boundaries_and_ci_cap() -> None:
    from bastion.assess.checks.fairness import DP_RATIO, EO_DIFF, _cap, _grade

    assert _grade(0.79, DP_RATIO, below=True) == Severity.HIGH
    assert _grade(0.80, DP_RATIO, below=True) == Severity.LOW
    assert _grade(0.90, DP_RATIO, below=True) is None
    assert _grade(0.20, EO_DIFF, below=False) == Severity.HIGH
    assert _grade(0.19, EO_DIFF, below=False) == Severity.MEDIUM
    assert _grade(0.049, EO_DIFF, below=False) is None
    assert _cap(Severity.HIGH, ci_passes=True) == Severity.LOW  # the interval reaches the passing side
    assert _cap(Severity.HIGH, ci_passes=False) == Severity.HIGH


def test_side_column_and_numeric_bands() -> None:
    """A sensitive attribute the model does not take (Python API: metadata.extra) and a numeric one cut in bands."""
    from bastion.assess.checks.fairness import group_labels, sensitive_columns
    from bastion.core.target import DataSplits, Target, TargetMetadata

    ages = np.arange(18, 98, dtype=float)
    bands = group_labels(ages, 4)
    assert len(set(bands)) == 4 and bands[0].startswith("[18")
    x = np.zeros((80, 2), np.float32)
    meta = TargetMetadata(feature_names=["a", "b"], sensitive_features=["gender"],
                          extra={"sensitive_values": {"gender": {"test": np.array(["f", "m"] * 40)}}})
    t = Target(name="t", model=None, data=DataSplits(x_test=x, y_test=np.zeros(80, int)), metadata=meta)  # type: ignore[arg-type]
    cols = sensitive_columns(t, x, "test", 4)
    assert list(cols) == ["gender"] and set(cols["gender"]) == {"f", "m"}
    meta.sensitive_features = ["nope"]
    from bastion.core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="nope"):
        sensitive_columns(t, x, "test", 4)


def test_report_shows_fairness_beside_shap_reliance(demo: dict, tmp_path: Path) -> None:
    from bastion.assess.runner import run_assessment
    from bastion.report.html import render_html

    t = _target(demo, "skewed")
    a = run_assessment(t, profile="quick", seed=0, out_dir=tmp_path, progress=False,
                       only=["fairness.group_metrics", "explain.sensitive_features"],
                       options={"explain_samples": 40})
    page = render_html(a, tmp_path)
    section = page[page.index('id="bias"'):page.index("Checks in detail")]
    assert "Outcomes per group" in section and "Reliance on the sensitive features (SHAP)" in section
    assert "selection-rate ratio (four-fifths rule" in section and "95% bootstrap interval" in section


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_no_false_alarm_on_a_fresh_multiclass_model_with_a_random_group(seed: int, tmp_path: Path) -> None:
    """Wine (3 classes, gradient boosting, never used to set a threshold) with a group assigned at random: whatever
    the model does, it cannot treat the groups differently beyond chance, so the check must not fail."""
    import pandas as pd
    import skops.io as sio
    from sklearn.datasets import load_wine
    from sklearn.ensemble import GradientBoostingClassifier

    from bastion.assess.target import build_target
    from bastion.cli.assess import declare_groups

    x, y = load_wine(return_X_y=True, as_frame=True)
    rng = np.random.default_rng(seed)
    x = x.assign(group=rng.integers(0, 2, len(x)))
    split = np.where(rng.random(len(x)) < 0.6, "train", "test")
    model = GradientBoostingClassifier(random_state=seed).fit(x[split == "train"].to_numpy(float), y[split == "train"])
    (tmp_path / "m.skops").write_bytes(sio.dumps(model))
    pd.concat([x, y.rename("label")], axis=1).assign(split=split).to_csv(tmp_path / "d.csv", index=False)
    t = build_target(model=tmp_path / "m.skops", data=tmp_path / "d.csv", label="label")
    declare_groups(t, ["group"], None, "label")
    res = get_check("fairness.group_metrics").run(t, CheckContext(profile="quick", seed=seed))
    assert res.status != Status.FAIL, [f.title for f in res.findings]
    assert res.params["positive_class"] == 1 and res.metrics["groups"] == 2
