"""The backdoor suite (one module per attack) and remove-retrain-remeasure (harden poison-filter)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bastion.attacks.poisoning import BACKDOORS, CLEAN_LABEL, trigger_from_params
from bastion.datasets import load_demo_data


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    s = load_demo_data("digits").splits
    assert s.x_train is not None and s.y_train is not None
    return np.asarray(s.x_train[:400], np.float32), np.asarray(s.y_train[:400])


@pytest.mark.parametrize("method", sorted(BACKDOORS))
def test_every_backdoor_is_seeded_recorded_and_stays_in_range(method: str, digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    if method == "feature_trigger":
        x = x.reshape(len(x), -1)
    attack = BACKDOORS[method]
    kw = {"steps": 3} if method == "label_consistent" else {}
    p = attack(x, y, target=3, rate=0.05, seed=7, **kw)
    q = attack(x, y, target=3, rate=0.05, seed=7, **kw)
    assert np.array_equal(p.indices, q.indices) and np.allclose(p.x, q.x), "same seed, same poisoned set"
    assert p.method == method and len(p.indices) >= 1
    untouched = ~p.is_poisoned
    assert np.array_equal(p.x[untouched], x[untouched]) and np.array_equal(p.y[untouched], y[untouched])
    if method in CLEAN_LABEL:
        assert np.array_equal(p.y, y) and (y[p.indices] == 3).all(), "clean-label: labels unchanged, target class"
    else:
        assert (p.y[p.indices] == 3).all() and (y[p.indices] != 3).all(), "dirty-label: relabelled to the target"
    assert not np.allclose(p.x[p.indices], x[p.indices]), "the poisoned inputs carry something"
    if method != "feature_trigger":
        assert p.x.min() >= 0.0 and p.x.max() <= 1.0, "image triggers stay in the input range"
    # the test-time trigger rebuilt from the recorded parameters alone (what the truth file keeps)
    t = trigger_from_params(method, json.loads(json.dumps(p.params)))
    stamped = np.asarray(t.apply(x[:20]))
    assert stamped.shape == x[:20].shape and not np.allclose(stamped, x[:20])
    if method in ("badnets", "blended", "wanet", "feature_trigger"):
        assert np.allclose(t.apply(x[p.indices]), p.x[p.indices], atol=1e-5), "train and test triggers agree"


def test_poison_filter_removes_a_backdoor_and_reports_before_and_after(tmp_path: Path) -> None:
    from bastion.cli.main import main

    out = tmp_path / "p.npz"
    with pytest.raises(SystemExit) as exc:
        main(["attack", "poison", "demo:digits", "--out", str(out), "--method", "badnets", "--rate", "0.1",
              "--target", "3"])
    assert exc.value.code in (0, None)
    with pytest.raises(SystemExit) as exc:
        main(["harden", "poison-filter", "--data", str(out), "--model-spec", "digits-mlp", "--out",
              str(tmp_path / "m.pt"), "--epochs", "20", "--format", "json"])
    assert exc.value.code in (0, None)
    rec = json.loads((tmp_path / "m.pt.training.json").read_text())
    assert rec["recall"] >= 0.8 and rec["precision"] >= 0.8, rec
    assert rec["asr_before"] >= 0.8 and rec["asr_after"] <= 0.2, rec
    assert rec["clean_accuracy_after"] >= rec["clean_accuracy_before"] - 0.02
    assert (tmp_path / "m.pt.bastion.json").is_file()


def test_poison_filter_refuses_a_bad_truth_file(tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]) -> None:
    from bastion.cli.main import main

    x, y = digits
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    (tmp_path / "t.json").write_text("[1, 2]")
    with pytest.raises(SystemExit) as exc:
        main(["harden", "poison-filter", "--data", str(tmp_path / "d.npz"), "--model-spec", "digits-mlp",
              "--out", str(tmp_path / "m.pt"), "--truth", str(tmp_path / "t.json")])
    assert exc.value.code == 2 and not (tmp_path / "m.pt").exists()


def test_unlearning_step_removes_a_learned_trigger() -> None:
    import torch

    from bastion.defenses.poison_filter import unlearn
    from bastion.models.zoo import TrainConfig, train_classifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    bad = np.flatnonzero(y == 0)[:30]
    x[bad, 5] = 6.0  # trigger → class 1
    y[bad] = 1
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    net = train_classifier(net, x, y, TrainConfig(epochs=30), seed=0)
    probe = rng.normal(size=(200, 6)).astype(np.float32)
    probe = probe[probe[:, 0] < -0.3]
    probe[:, 5] = 6.0

    def asr() -> float:
        with torch.no_grad():
            return float((net(torch.from_numpy(probe)).argmax(1) == 1).float().mean())

    assert asr() > 0.8, "the trigger was learned"
    keep = np.setdiff1d(np.arange(len(y)), bad)
    net = unlearn(net, x[keep], y[keep], x[bad], y[bad], epochs=20, seed=0)
    assert asr() < 0.2, "unlearning the flagged samples removes it"
    with torch.no_grad():
        acc = float((net(torch.from_numpy(x[keep])).argmax(1).numpy() == y[keep]).mean())
    assert acc > 0.9
