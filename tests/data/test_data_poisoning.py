"""Poisoning attacks and detection: ground truth, detector recall/precision, CLI contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bastion.attacks.poisoning import (
    TriggerSpec,
    apply_trigger,
    badnets,
    clean_label,
    random_flip,
    targeted_flip,
)
from bastion.cli.main import build_app
from bastion.datasets import load_demo_data

runner = CliRunner()


def test_badnets_stamps_trigger_and_relabels() -> None:
    x = np.zeros((200, 1, 8, 8), dtype=np.float32)
    y = np.arange(200) % 10
    p = badnets(x, y, target=2, rate=0.1, seed=1, trigger=TriggerSpec(size=2, value=0.9))
    assert len(p.indices) == 20 and (y[p.indices] != 2).all() and (p.y[p.indices] == 2).all()
    assert np.allclose(p.x[p.indices, 0, -2:, -2:], 0.9) and p.x[~p.is_poisoned].sum() == 0


def test_flips_and_clean_label_ground_truth() -> None:
    x = np.random.default_rng(0).random((300, 6)).astype(np.float32)
    y = np.arange(300) % 3
    r = random_flip(x, y, 0.1, seed=0)
    assert (r.y != y).sum() == len(r.indices) == 30
    t = targeted_flip(x, y, source=1, target=2, rate=0.5, seed=0)
    assert set(np.flatnonzero(t.y != y)) == set(t.indices) and (y[t.indices] == 1).all()
    c = clean_label(x, y, target=0, rate=0.05, seed=0)
    assert (c.y == y).all() and (c.x[c.indices][:, -3:] == 1.0).all()
    assert np.allclose(apply_trigger(x[:2])[:, -3:], 1.0)


@pytest.fixture(scope="module")
def detection(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, np.ndarray, np.ndarray, Path]:
    """digits with an 8% BadNets backdoor (2x2 patch → class 3) plus 3% random flips, via the CLI."""
    tmp = tmp_path_factory.mktemp("poison")
    s = load_demo_data("digits").splits
    assert s.x_train is not None and s.y_train is not None
    bd = badnets(s.x_train, s.y_train, target=3, rate=0.08, seed=0, trigger=TriggerSpec(size=2))
    rng = np.random.default_rng(1)
    pool = np.setdiff1d(np.arange(len(bd.y)), bd.indices)
    flips = np.sort(rng.choice(pool, size=40, replace=False))
    y = bd.y.copy()
    y[flips] = (y[flips] + rng.integers(1, 10, size=40)) % 10
    data = tmp / "poisoned.npz"
    np.savez(data, x_train=bd.x, y_train=y, poison_indices=np.concatenate([bd.indices, flips]))
    res = runner.invoke(build_app(), ["data", "poison", str(data), "--out", str(tmp / "out"),
                                      "--strip-overlays", "6", "--format", "json"])
    assert res.exit_code == 1, res.output  # samples flagged → exit 1
    return json.loads(res.stdout), bd.indices, flips, tmp


@pytest.mark.slow
def test_detects_backdoor_and_flips(detection: tuple[dict, np.ndarray, np.ndarray, Path]) -> None:
    report, backdoor, flips, _ = detection
    flagged = set(report["flagged_indices"])
    assert report["suspicious_classes"] == [3]
    assert len(flagged & set(backdoor.tolist())) / len(backdoor) >= 0.8
    assert len(flagged & set(flips.tolist())) / len(flips) >= 0.8
    assert report["ground_truth"]["precision"] >= 0.8
    by_index = {f["index"]: f for f in report["flagged"]}
    assert all(0.0 <= f["score"] <= 1.0 and f["methods"] for f in by_index.values())
    assert len(report["scores"]) == report["n_samples"]
    # the combined detector: per-method evidence per flagged sample, per-class suspicion with a p-value
    cls = {c["class"]: c["p_value"] for c in report["class_suspicion"]}
    assert cls[3] == min(cls.values()) and cls[3] < 1e-6
    assert all(set(f["evidence"]) >= {"strip", "spectre", "class_outlier", "loss_dynamics"} for f in by_index.values())
    assert {"spectre", "class_outlier", "loss_dynamics"} <= set(report["methods"])


@pytest.mark.slow
def test_detection_writes_scores_and_saliency(detection: tuple[dict, np.ndarray, np.ndarray, Path]) -> None:
    report, _, _, _ = detection
    png = Path(report["artifacts"]["trigger_saliency"]).read_bytes()
    assert png.startswith(b"\x89PNG")
    with np.load(report["artifacts"]["scores"]) as z:
        assert len(z["scores"]) == report["n_samples"]
        assert sorted(z["flagged_indices"].tolist()) == sorted(report["flagged_indices"])


def test_attack_poison_cli_writes_set_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "p.npz"
    res = runner.invoke(build_app(), ["attack", "poison", "demo:digits", "--method", "flip-targeted", "--source", "1",
                                      "--target", "7", "--rate", "0.2", "--out", str(out), "--format", "json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    with np.load(out) as z:
        assert sorted(z["poison_indices"].tolist()) == info["poison_indices"]
        assert (z["y_train"][z["poison_indices"]] == 7).all() and "x_test" in z.files
    truth = json.loads((tmp_path / "p.npz.truth.json").read_text())
    assert truth["n_poisoned"] == len(info["poison_indices"]) > 0


def test_poison_cli_bad_input_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, features=np.zeros((3, 2)))
    res = subprocess.run([sys.executable, "-m", "bastion.cli.main", "data", "poison", str(bad)],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "x_train" in res.stderr and "Traceback" not in res.stderr
