"""The data checks inside ``bastion assess``: registered, applicable, and finding what was planted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bastion.assess.registry import CheckContext, get_check, load_checks
from bastion.attacks.poisoning import TriggerSpec, badnets, random_flip
from bastion.core.model import InputSpec
from bastion.core.severity import Status
from bastion.core.target import DataSplits, Target
from bastion.data.poisoning import train_reference_model
from bastion.data.privacy.synthetic import synthetic_people
from bastion.models.adapters import TorchAdapter
from bastion.models.zoo import demo_target

DATA_CHECKS = ["data.anomalies", "data.label_quality", "data.pii", "data.poisoning"]


@pytest.mark.parametrize("check_id", DATA_CHECKS)
def test_registered_with_controls(check_id: str) -> None:
    check = load_checks()[check_id]
    assert check.controls and all(":" in c for c in check.controls) and check.profiles


def test_label_quality_finds_flips() -> None:
    t = demo_target("digits")
    assert t.data.x_train is not None and t.data.y_train is not None
    flipped = random_flip(t.data.x_train, t.data.y_train, 0.06, seed=0)
    t = dataclasses.replace(t, data=DataSplits(flipped.x, flipped.y, t.data.x_test, t.data.y_test))
    res = get_check("data.label_quality").run(t, CheckContext(profile="standard"))
    assert res.status == Status.WARN
    found = set(res.findings[0].evidence["flagged_indices"])
    assert len(found & set(flipped.indices.tolist())) / len(flipped.indices) >= 0.8


@pytest.mark.slow
def test_poisoning_check_flags_backdoored_model_only() -> None:
    clean = demo_target("digits")
    ctx = CheckContext(profile="standard", options={"strip_overlays": 8})
    assert get_check("data.poisoning").run(clean, ctx).status == Status.PASS
    assert clean.data.x_train is not None and clean.data.y_train is not None
    p = badnets(clean.data.x_train, clean.data.y_train, target=5, rate=0.1, seed=0, trigger=TriggerSpec(size=2))
    module = train_reference_model(p.x, p.y, 10, seed=0)
    model = TorchAdapter(module, InputSpec((1, 8, 8), clip_min=0.0, clip_max=1.0), n_classes=10)
    bad = Target(name="backdoored", model=model, data=DataSplits(p.x, p.y))
    res = get_check("data.poisoning").run(bad, ctx)
    assert res.status == Status.FAIL and res.metrics["suspicious_classes"] == [5]
    assert res.artifacts["trigger_saliency.png"].startswith(b"\x89PNG")


def test_pii_and_anomaly_checks(tmp_path: Path) -> None:
    df, _ = synthetic_people(40)
    csv = tmp_path / "train.csv"
    df.to_csv(csv, index=False)
    t = dataclasses.replace(demo_target("breast-cancer"), data_path=str(csv))
    pii = get_check("data.pii")
    assert pii.applies(t)
    res = pii.run(t, CheckContext(profile="quick"))
    assert res.status == Status.FAIL and {"email", "notes"} <= {f.evidence["column"] for f in res.findings}
    assert not pii.applies(demo_target("digits"))
    assert t.data.x_train is not None
    x = t.data.x_train.copy()
    x[3, 0] = 50.0  # 50 standard deviations out
    t2 = dataclasses.replace(t, data=DataSplits(x, t.data.y_train))
    an = get_check("data.anomalies").run(t2, CheckContext(profile="quick"))
    rows = {r["row"]: r for r in an.findings[0].evidence["rows"]}
    assert an.status == Status.WARN and 3 in rows  # breast-cancer has real outliers too; ours is among them
    assert rows[3]["reasons"][0]["feature"] == "mean radius" and rows[3]["reasons"][0]["robust_z"] > 20
    assert np.isfinite(an.metrics["outlier_share"])
